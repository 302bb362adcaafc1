//! Proto enums ⇄ the `text` + CHECK columns that store them, in one place.

use phoenix_proto::users::v1::{ContactMethod, PhoneType, RelationshipType};

/// The column value of a relationship type (`None` for UNSPECIFIED).
pub fn relationship_to_db(r: RelationshipType) -> Option<&'static str> {
    match r {
        RelationshipType::Unspecified => None,
        RelationshipType::Parent => Some("parent"),
        RelationshipType::Guardian => Some("guardian"),
        RelationshipType::Relative => Some("relative"),
        RelationshipType::Other => Some("other"),
    }
}

/// The relationship type of a column value.
pub fn relationship_from_db(s: &str) -> RelationshipType {
    match s {
        "parent" => RelationshipType::Parent,
        "guardian" => RelationshipType::Guardian,
        "relative" => RelationshipType::Relative,
        "other" => RelationshipType::Other,
        _ => RelationshipType::Unspecified,
    }
}

/// The column value of a contact method (`None` for UNSPECIFIED).
pub fn contact_to_db(c: ContactMethod) -> Option<&'static str> {
    match c {
        ContactMethod::Unspecified => None,
        ContactMethod::Email => Some("email"),
        ContactMethod::Phone => Some("phone"),
        ContactMethod::Mobile => Some("mobile"),
        ContactMethod::Sms => Some("sms"),
    }
}

/// The contact method of a column value.
pub fn contact_from_db(s: &str) -> ContactMethod {
    match s {
        "email" => ContactMethod::Email,
        "phone" => ContactMethod::Phone,
        "mobile" => ContactMethod::Mobile,
        "sms" => ContactMethod::Sms,
        _ => ContactMethod::Unspecified,
    }
}

/// The column value of a phone type (`None` for UNSPECIFIED).
pub fn phone_type_to_db(p: PhoneType) -> Option<&'static str> {
    match p {
        PhoneType::Unspecified => None,
        PhoneType::Mobile => Some("mobile"),
        PhoneType::Home => Some("home"),
        PhoneType::Work => Some("work"),
        PhoneType::Other => Some("other"),
    }
}

/// The phone type of a column value.
pub fn phone_type_from_db(s: &str) -> PhoneType {
    match s {
        "mobile" => PhoneType::Mobile,
        "home" => PhoneType::Home,
        "work" => PhoneType::Work,
        "other" => PhoneType::Other,
        _ => PhoneType::Unspecified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_round_trips_and_unspecified_has_no_column_value() {
        for r in
            [RelationshipType::Parent, RelationshipType::Guardian, RelationshipType::Relative, RelationshipType::Other]
        {
            assert_eq!(relationship_from_db(relationship_to_db(r).unwrap()), r);
        }
        for c in [ContactMethod::Email, ContactMethod::Phone, ContactMethod::Mobile, ContactMethod::Sms] {
            assert_eq!(contact_from_db(contact_to_db(c).unwrap()), c);
        }
        for p in [PhoneType::Mobile, PhoneType::Home, PhoneType::Work, PhoneType::Other] {
            assert_eq!(phone_type_from_db(phone_type_to_db(p).unwrap()), p);
        }
        assert_eq!(relationship_to_db(RelationshipType::Unspecified), None);
        assert_eq!(contact_to_db(ContactMethod::Unspecified), None);
        assert_eq!(phone_type_to_db(PhoneType::Unspecified), None);
    }
}
