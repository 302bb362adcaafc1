//! Audit rows → proto messages, one function per message.

use phoenix_common::time::to_timestamp;
use phoenix_proto::audit::v1 as pb;

use crate::export::ExportRow;
use crate::trail::{AuthEventRow, DeletionRow};

/// A recorded deletion.
pub fn deletion(row: DeletionRow) -> pb::DataDeletion {
    let deletion_type = match row.deletion_type.as_str() {
        "visit_retention" => pb::DeletionType::VisitRetention,
        "manual" => pb::DeletionType::Manual,
        "gdpr_request" => pb::DeletionType::GdprRequest,
        _ => pb::DeletionType::Unspecified,
    };
    pb::DataDeletion {
        id: row.id,
        entity_type: row.entity_type,
        entity_id: row.entity_id,
        deletion_type: deletion_type as i32,
        records_deleted: row.records_deleted,
        reason: row.reason.unwrap_or_default(),
        deleted_by: row.deleted_by,
        delete_time: Some(to_timestamp(row.deleted_at)),
        metadata_json: row.metadata.to_string(),
    }
}

/// An auth event (no user agent, no metadata).
pub fn auth_event(row: AuthEventRow) -> pb::AuthEvent {
    pb::AuthEvent {
        id: row.id,
        account_id: row.account_id,
        client_id: row.client_id.unwrap_or_default(),
        event_type: row.event_type,
        success: row.success,
        ip_address: row.ip_address.map(|ip| ip.ip().to_string()).unwrap_or_default(),
        error_message: row.error_message.unwrap_or_default(),
        create_time: Some(to_timestamp(row.created_at)),
    }
}

/// A recorded subject-access export.
pub fn data_export(row: ExportRow) -> pb::DataExport {
    pb::DataExport {
        id: row.id,
        student_id: row.subject_id,
        exported_by: row.exported_by,
        export_time: Some(to_timestamp(row.exported_at)),
        sections_json: row.sections.to_string(),
    }
}
