//! Proto ⇄ domain: the feedback value, rows → messages.

use phoenix_common::convert::format_date;
use phoenix_common::time::to_timestamp;
use phoenix_proto::feedback::v1 as pb;

use crate::repo::{CommentRow, EntryRow};

/// Time-of-day format on the wire and in the reference (§6).
pub(crate) const TIME_FORMAT: &str = "%H:%M:%S";

/// A pupil's rating: the three values the table's CHECK allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value {
    Positive,
    Neutral,
    Negative,
}

impl Value {
    /// The stored text.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Value::Positive => "positive",
            Value::Neutral => "neutral",
            Value::Negative => "negative",
        }
    }
}

/// `UNSPECIFIED` (or an unknown number) is not a value.
impl TryFrom<i32> for Value {
    type Error = String;

    fn try_from(raw: i32) -> Result<Self, Self::Error> {
        match pb::FeedbackValue::try_from(raw) {
            Ok(pb::FeedbackValue::Positive) => Ok(Value::Positive),
            Ok(pb::FeedbackValue::Neutral) => Ok(Value::Neutral),
            Ok(pb::FeedbackValue::Negative) => Ok(Value::Negative),
            Ok(pb::FeedbackValue::Unspecified) => {
                Err("is required: FEEDBACK_VALUE_POSITIVE, _NEUTRAL or _NEGATIVE".to_owned())
            }
            Err(_) => Err(format!("unknown feedback value {raw}; use POSITIVE, NEUTRAL or NEGATIVE")),
        }
    }
}

/// The wire value of a stored text; an unexpected text (impossible under the CHECK) is
/// reported as unspecified rather than failing the read.
fn value_of(stored: &str) -> pb::FeedbackValue {
    match stored {
        "positive" => pb::FeedbackValue::Positive,
        "neutral" => pb::FeedbackValue::Neutral,
        "negative" => pb::FeedbackValue::Negative,
        _ => pb::FeedbackValue::Unspecified,
    }
}

/// A feedback entry.
pub(crate) fn entry(row: EntryRow) -> pb::FeedbackEntry {
    pb::FeedbackEntry {
        id: row.id,
        student_id: row.student_id,
        value: value_of(&row.value) as i32,
        day: format_date(row.day),
        time: row.time.format(TIME_FORMAT).to_string(),
        is_mensa_feedback: row.is_mensa_feedback,
        device_id: row.device_id.unwrap_or(0),
        create_time: Some(to_timestamp(row.created_at)),
    }
}

/// A staff comment on an entry.
pub(crate) fn comment(row: CommentRow) -> pb::FeedbackComment {
    pb::FeedbackComment {
        id: row.id,
        entry_id: row.entry_id,
        author_account_id: row.author_account_id.unwrap_or(0),
        body: row.body,
        create_time: Some(to_timestamp(row.created_at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_unspecified_is_rejected() {
        for v in [Value::Positive, Value::Neutral, Value::Negative] {
            let wire = value_of(v.as_str()) as i32;
            assert_eq!(Value::try_from(wire), Ok(v));
        }
        assert!(Value::try_from(0).is_err());
        assert!(Value::try_from(42).is_err());
    }
}
