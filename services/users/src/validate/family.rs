//! Guardians, their phone numbers and their links to students.

use phoenix_common::page::PageRequest;
use phoenix_common::validate::{
    Update, finish, optional_id, optional_text, page, required, required_id, required_text, update,
};
use phoenix_common::{FieldViolations, Result};
use phoenix_proto::users::v1 as pb;

use crate::enums;
use crate::repo::guardians::{GuardianFields, GuardianFilter, LinkFields, PhoneFields};

/// Updatable fields of a guardian.
pub const GUARDIAN_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "email",
    "address_street",
    "address_city",
    "address_postal_code",
    "preferred_contact_method",
    "language_preference",
    "occupation",
    "employer",
    "notes",
];
/// Updatable fields of a phone number.
pub const PHONE_FIELDS: &[&str] = &["phone_number", "phone_type", "label", "is_primary", "priority"];
/// Updatable fields of a student ↔ guardian link.
pub const LINK_FIELDS: &[&str] =
    &["relationship_type", "is_primary", "is_emergency_contact", "can_pickup", "pickup_notes", "emergency_priority"];

/// Trims and lower-cases an e-mail address and checks its shape (`local@domain.tld`).
pub fn normalize_email(raw: &str) -> std::result::Result<String, String> {
    let e = raw.trim().to_lowercase();
    let ok = match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if ok { Ok(e) } else { Err(format!("must be an e-mail address like name@example.org, got {raw:?}")) }
}

/// Trims a phone number and checks it: only digits, spaces and `+ - ( )`, at least 3 digits.
pub fn normalize_phone(raw: &str) -> std::result::Result<String, String> {
    let p = raw.trim();
    if p.is_empty() || !p.chars().all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')')) {
        return Err("may contain only digits, spaces and + - ( )".into());
    }
    if p.chars().filter(char::is_ascii_digit).count() < 3 {
        return Err("must contain at least 3 digits".into());
    }
    Ok(p.to_owned())
}

fn enum_value<E: TryFrom<i32>>(field: &str, raw: Option<i32>, v: &mut FieldViolations) -> Option<E> {
    let raw = raw?;
    match E::try_from(raw) {
        Ok(e) => Some(e),
        Err(_) => {
            v.add(field, format!("unknown value {raw}"));
            None
        }
    }
}

fn contact_method(raw: Option<i32>, v: &mut FieldViolations) -> String {
    const FIELD: &str = "guardian.preferred_contact_method";
    match enum_value::<pb::ContactMethod>(FIELD, raw, v) {
        // Unset: the reference's default.
        None => "phone".into(),
        Some(c) => match enums::contact_to_db(c) {
            Some(s) => s.into(),
            None => {
                v.add(FIELD, "must not be CONTACT_METHOD_UNSPECIFIED (leave unset for PHONE)");
                "phone".into()
            }
        },
    }
}

fn set_guardian(g: &pb::Guardian, paths: &[&str], f: &mut GuardianFields, v: &mut FieldViolations) {
    for path in paths {
        match *path {
            "first_name" => f.first_name = required_text("guardian.first_name", &g.first_name, v),
            "last_name" => f.last_name = required_text("guardian.last_name", &g.last_name, v),
            "email" => {
                f.email = optional_text(g.email.clone()).and_then(|e| match normalize_email(&e) {
                    Ok(e) => Some(e),
                    Err(msg) => {
                        v.add("guardian.email", msg);
                        None
                    }
                })
            }
            "address_street" => f.address_street = optional_text(g.address_street.clone()),
            "address_city" => f.address_city = optional_text(g.address_city.clone()),
            "address_postal_code" => f.address_postal_code = optional_text(g.address_postal_code.clone()),
            "preferred_contact_method" => f.preferred_contact_method = contact_method(g.preferred_contact_method, v),
            "language_preference" => {
                f.language_preference = optional_text(g.language_preference.clone())
                    .map(|l| l.to_lowercase())
                    .unwrap_or_else(|| "de".into())
            }
            "occupation" => f.occupation = optional_text(g.occupation.clone()),
            "employer" => f.employer = optional_text(g.employer.clone()),
            "notes" => f.notes = optional_text(g.notes.clone()),
            _ => {}
        }
    }
}

/// CreateGuardian → the new row.
pub fn create_guardian(req: pb::CreateGuardianRequest) -> Result<GuardianFields> {
    let g = required("guardian", req.guardian)?;
    let mut v = FieldViolations::default();
    let mut f = GuardianFields::default();
    set_guardian(&g, GUARDIAN_FIELDS, &mut f, &mut v);
    v.into_result()?;
    Ok(f)
}

/// UpdateGuardian → id + mask.
pub fn update_guardian(req: pb::UpdateGuardianRequest) -> Result<Update<pb::Guardian>> {
    let g = required("guardian", req.guardian)?;
    update("guardian.id", g.id, g, req.update_mask.as_ref(), GUARDIAN_FIELDS)
}

/// The stored fields with the masked changes of `u` applied.
pub fn apply_guardian(u: &Update<pb::Guardian>, mut f: GuardianFields) -> Result<GuardianFields> {
    let mut v = FieldViolations::default();
    set_guardian(&u.message, &u.paths, &mut f, &mut v);
    v.into_result()?;
    Ok(f)
}

/// ListGuardians → filter + page.
pub fn list_guardians(req: pb::ListGuardiansRequest) -> Result<(GuardianFilter, PageRequest)> {
    let mut v = FieldViolations::default();
    let filter = GuardianFilter {
        name_contains: optional_text(req.name_contains),
        student_id: optional_id("student_id", req.student_id, &mut v),
    };
    let page = page("guardians", &format!("{filter:?}"), req.page_size, &req.page_token, &mut v);
    let page = finish(v, page)?;
    Ok((filter, page))
}

fn set_phone(p: &pb::GuardianPhoneNumber, paths: &[&str], f: &mut PhoneFields, v: &mut FieldViolations) {
    for path in paths {
        match *path {
            "phone_number" => match normalize_phone(&p.phone_number) {
                Ok(n) => f.phone_number = n,
                Err(msg) => v.add("phone_number.phone_number", msg),
            },
            "phone_type" => {
                f.phone_type = match enum_value::<pb::PhoneType>("phone_number.phone_type", p.phone_type, v) {
                    None => "mobile".into(),
                    Some(t) => match enums::phone_type_to_db(t) {
                        Some(s) => s.into(),
                        None => {
                            v.add(
                                "phone_number.phone_type",
                                "must not be PHONE_TYPE_UNSPECIFIED (leave unset for MOBILE)",
                            );
                            "mobile".into()
                        }
                    },
                }
            }
            "label" => f.label = optional_text(p.label.clone()),
            "is_primary" => f.is_primary = p.is_primary,
            "priority" => {
                f.priority = match p.priority {
                    0 => 1,
                    n if n < 0 => {
                        v.add("phone_number.priority", format!("must be 1 or more (0 = 1), got {n}"));
                        1
                    }
                    n => n,
                }
            }
            _ => {}
        }
    }
}

/// AddGuardianPhoneNumber → (guardian, number).
pub fn add_phone(req: pb::AddGuardianPhoneNumberRequest) -> Result<(i64, PhoneFields)> {
    let mut v = FieldViolations::default();
    let guardian_id = required_id("guardian_id", req.guardian_id, &mut v);
    let p = req.phone_number.unwrap_or_default();
    let mut f = PhoneFields {
        phone_number: String::new(),
        phone_type: "mobile".into(),
        label: None,
        is_primary: false,
        priority: 1,
    };
    set_phone(&p, PHONE_FIELDS, &mut f, &mut v);
    v.into_result()?;
    Ok((guardian_id, f))
}

/// UpdateGuardianPhoneNumber → id + mask.
pub fn update_phone(req: pb::UpdateGuardianPhoneNumberRequest) -> Result<Update<pb::GuardianPhoneNumber>> {
    let p = required("phone_number", req.phone_number)?;
    update("phone_number.id", p.id, p, req.update_mask.as_ref(), PHONE_FIELDS)
}

/// The stored fields with the masked changes of `u` applied.
pub fn apply_phone(u: &Update<pb::GuardianPhoneNumber>, mut f: PhoneFields) -> Result<PhoneFields> {
    let mut v = FieldViolations::default();
    set_phone(&u.message, &u.paths, &mut f, &mut v);
    v.into_result()?;
    Ok(f)
}

fn set_link(l: &pb::StudentGuardian, paths: &[&str], f: &mut LinkFields, v: &mut FieldViolations) {
    for path in paths {
        match *path {
            "relationship_type" => {
                let t = pb::RelationshipType::try_from(l.relationship_type).ok().and_then(enums::relationship_to_db);
                match t {
                    Some(t) => f.relationship_type = t.into(),
                    None => v.add("link.relationship_type", "is required: PARENT, GUARDIAN, RELATIVE or OTHER"),
                }
            }
            "is_primary" => f.is_primary = l.is_primary,
            "is_emergency_contact" => f.is_emergency_contact = l.is_emergency_contact,
            "can_pickup" => f.can_pickup = l.can_pickup,
            "pickup_notes" => f.pickup_notes = optional_text(l.pickup_notes.clone()),
            "emergency_priority" => {
                f.emergency_priority = match l.emergency_priority {
                    0 => 1,
                    n if n < 0 => {
                        v.add("link.emergency_priority", format!("must be 1 or more (0 = 1), got {n}"));
                        1
                    }
                    n => n,
                }
            }
            _ => {}
        }
    }
}

/// LinkGuardian → (student, guardian, link fields).
pub fn link(req: pb::LinkGuardianRequest) -> Result<(i64, i64, LinkFields)> {
    let l = required("link", req.link)?;
    let mut v = FieldViolations::default();
    let student_id = required_id("link.student_id", l.student_id, &mut v);
    let guardian_id = required_id("link.guardian_id", l.guardian_id, &mut v);
    let mut f = LinkFields {
        relationship_type: String::new(),
        is_primary: false,
        is_emergency_contact: false,
        can_pickup: false,
        pickup_notes: None,
        emergency_priority: 1,
    };
    set_link(&l, LINK_FIELDS, &mut f, &mut v);
    v.into_result()?;
    Ok((student_id, guardian_id, f))
}

/// UpdateStudentGuardian → id + mask.
pub fn update_link(req: pb::UpdateStudentGuardianRequest) -> Result<Update<pb::StudentGuardian>> {
    let l = required("link", req.link)?;
    update("link.id", l.id, l, req.update_mask.as_ref(), LINK_FIELDS)
}

/// The stored fields with the masked changes of `u` applied.
pub fn apply_link(u: &Update<pb::StudentGuardian>, mut f: LinkFields) -> Result<LinkFields> {
    let mut v = FieldViolations::default();
    set_link(&u.message, &u.paths, &mut f, &mut v);
    v.into_result()?;
    Ok(f)
}

/// ListStudentGuardians → exactly one of student / guardian.
pub fn list_links(req: pb::ListStudentGuardiansRequest) -> Result<(Option<i64>, Option<i64>)> {
    let mut v = FieldViolations::default();
    let s = optional_id("student_id", req.student_id, &mut v);
    let g = optional_id("guardian_id", req.guardian_id, &mut v);
    if s.is_some() == g.is_some() {
        v.add("student_id", "give exactly one of student_id and guardian_id");
    }
    v.into_result()?;
    Ok((s, g))
}

#[cfg(test)]
mod tests {
    use phoenix_common::Error;

    use super::*;

    #[test]
    fn emails_are_normalised_or_rejected() {
        assert_eq!(normalize_email(" Petra.Muster@Example.ORG ").unwrap(), "petra.muster@example.org");
        for bad in ["petra", "@example.org", "a@b", "a@@b.de", "a b@c.de", "a@.de", "a@b."] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phone_numbers_need_three_digits_and_allowed_characters() {
        assert_eq!(normalize_phone(" +49 (30) 123-45 ").unwrap(), "+49 (30) 123-45");
        for bad in ["12", "030/1234", "abc123", "", "+ - ( )"] {
            assert!(normalize_phone(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn guardian_defaults_and_explicit_unspecified() {
        let f = create_guardian(pb::CreateGuardianRequest {
            guardian: Some(pb::Guardian { first_name: "P".into(), last_name: "M".into(), ..Default::default() }),
        })
        .unwrap();
        assert_eq!((f.preferred_contact_method.as_str(), f.language_preference.as_str()), ("phone", "de"));
        let err = create_guardian(pb::CreateGuardianRequest {
            guardian: Some(pb::Guardian {
                first_name: "P".into(),
                last_name: "M".into(),
                preferred_contact_method: Some(0),
                email: Some("nope".into()),
                ..Default::default()
            }),
        })
        .unwrap_err();
        let Error::InvalidArgument(v) = err else { panic!("InvalidArgument") };
        let fields: Vec<_> = v.iter().map(|(f, _)| f.to_owned()).collect();
        assert_eq!(fields, ["guardian.email", "guardian.preferred_contact_method"]);
    }

    #[test]
    fn a_link_needs_a_relationship_and_a_positive_priority() {
        let err = link(pb::LinkGuardianRequest {
            link: Some(pb::StudentGuardian {
                student_id: 1,
                guardian_id: 2,
                emergency_priority: -1,
                ..Default::default()
            }),
        })
        .unwrap_err();
        let Error::InvalidArgument(v) = err else { panic!("InvalidArgument") };
        let fields: Vec<_> = v.iter().map(|(f, _)| f.to_owned()).collect();
        assert_eq!(fields, ["link.relationship_type", "link.emergency_priority"]);
    }
}
