//! Privacy consents and pickup schedules, exceptions and notes of a student.

use chrono::Utc;
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use phoenix_common::access::Caller;
use phoenix_common::{Error, Result};
use phoenix_proto::users::v1 as pb;

use super::{Users, require_full_access};
use crate::repo::care as repo;
use crate::repo::students::{self, StudentRow};
use crate::validate::care as validate;
use crate::{convert, error};

/// Locks the student and checks full access; `missing` is the error when there is none.
async fn student_for_write(
    conn: &mut AsyncPgConnection,
    caller: &Caller,
    student_id: i64,
    missing: impl FnOnce() -> Error,
) -> Result<StudentRow> {
    let student = students::lock_student(conn, student_id).await?.ok_or_else(missing)?;
    require_full_access(conn, caller, &student).await?;
    Ok(student)
}

impl Users {
    pub(super) async fn do_get_consent(
        &self,
        caller: Caller,
        req: pb::GetPrivacyConsentRequest,
    ) -> Result<pb::GetPrivacyConsentResponse> {
        let student_id = crate::validate::id("student_id", req.student_id)?;
        let mut conn = self.conn().await?;
        let student = students::find_student(&mut conn, student_id)
            .await?
            .ok_or_else(|| Error::not_found("student", student_id))?;
        require_full_access(&mut conn, &caller, &student.student).await?;
        let consent = match repo::newest_accepted_consent(&mut conn, student_id).await? {
            Some(c) => convert::consent(c, Utc::now()),
            None => convert::default_consent(student_id),
        };
        Ok(pb::GetPrivacyConsentResponse { consent: Some(consent) })
    }

    pub(super) async fn do_upsert_consent(
        &self,
        caller: Caller,
        req: pb::UpsertPrivacyConsentRequest,
    ) -> Result<pb::UpsertPrivacyConsentResponse> {
        let input = validate::upsert_consent(req)?;
        let mut conn = self.conn().await?;
        let row = conn
            .transaction::<_, Error, _>(async move |c| {
                let id = input.student_id;
                // The student row lock also serialises concurrent upserts of one version.
                student_for_write(c, &caller, id, || Error::not_found("student", id)).await?;
                let stored = repo::lock_consent_of_version(c, id, &input.policy_version).await?;
                let fields = validate::consent_fields(&input, stored.as_ref(), Utc::now());
                Ok(match stored {
                    Some(s) => repo::write_consent(c, s.id, &fields).await?,
                    None => repo::insert_consent(c, &fields).await?,
                })
            })
            .await?;
        tracing::info!(
            student_id = row.student_id,
            consent_id = row.id,
            accepted = row.accepted,
            "privacy consent stored"
        );
        Ok(pb::UpsertPrivacyConsentResponse { consent: Some(convert::consent(row, Utc::now())) })
    }

    pub(super) async fn do_get_pickup(
        &self,
        req: pb::GetPickupScheduleRequest,
    ) -> Result<pb::GetPickupScheduleResponse> {
        let student_id = crate::validate::id("student_id", req.student_id)?;
        let mut conn = self.conn().await?;
        if students::find_student(&mut conn, student_id).await?.is_none() {
            return Err(Error::not_found("student", student_id));
        }
        Ok(pb::GetPickupScheduleResponse {
            schedules: repo::schedules_of(&mut conn, student_id).await?.into_iter().map(convert::schedule).collect(),
            exceptions: repo::exceptions_of(&mut conn, student_id).await?.into_iter().map(convert::exception).collect(),
            notes: repo::notes_of(&mut conn, student_id).await?.into_iter().map(convert::note).collect(),
        })
    }

    pub(super) async fn do_set_schedule(
        &self,
        caller: Caller,
        req: pb::SetPickupScheduleRequest,
    ) -> Result<pb::SetPickupScheduleResponse> {
        let (student_id, entries) = validate::set_schedule(req)?;
        let mut conn = self.conn().await?;
        let rows = conn
            .transaction::<_, Error, _>(async move |c| {
                student_for_write(c, &caller, student_id, || Error::not_found("student", student_id)).await?;
                repo::replace_schedules(c, student_id, &entries, caller.staff_id).await?;
                Ok(repo::schedules_of(c, student_id).await?)
            })
            .await?;
        tracing::info!(student_id, "pickup schedule set");
        Ok(pb::SetPickupScheduleResponse { schedules: rows.into_iter().map(convert::schedule).collect() })
    }

    pub(super) async fn do_create_exception(
        &self,
        caller: Caller,
        req: pb::CreatePickupExceptionRequest,
    ) -> Result<pb::CreatePickupExceptionResponse> {
        let (student_id, fields) = validate::create_exception(req)?;
        let mut conn = self.conn().await?;
        let row = conn
            .transaction::<_, Error, _>(async move |c| {
                student_for_write(c, &caller, student_id, || {
                    Error::invalid("exception.student_id", format!("student {student_id} does not exist"))
                })
                .await?;
                repo::insert_exception(c, student_id, &fields, caller.staff_id).await.map_err(error::exception_write)
            })
            .await?;
        tracing::info!(student_id, exception_id = row.id, "pickup exception created");
        Ok(pb::CreatePickupExceptionResponse { exception: Some(convert::exception(row)) })
    }

    pub(super) async fn do_update_exception(
        &self,
        caller: Caller,
        req: pb::UpdatePickupExceptionRequest,
    ) -> Result<pb::UpdatePickupExceptionResponse> {
        let update = validate::update_exception(req)?;
        let mut conn = self.conn().await?;
        let row = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored = repo::lock_exception(c, update.id)
                    .await?
                    .ok_or_else(|| Error::not_found("pickup exception", update.id))?;
                let sid = stored.student_id;
                student_for_write(c, &caller, sid, || Error::not_found("student", sid)).await?;
                let fields = update.apply(repo::ExceptionFields {
                    exception_date: stored.exception_date,
                    pickup_time: stored.pickup_time,
                    reason: stored.reason.clone(),
                })?;
                repo::write_exception(c, stored.id, &fields).await.map_err(error::exception_write)
            })
            .await?;
        tracing::info!(exception_id = row.id, "pickup exception updated");
        Ok(pb::UpdatePickupExceptionResponse { exception: Some(convert::exception(row)) })
    }

    pub(super) async fn do_delete_exception(
        &self,
        caller: Caller,
        req: pb::DeletePickupExceptionRequest,
    ) -> Result<pb::DeletePickupExceptionResponse> {
        let id = crate::validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async move |c| {
            let stored = repo::lock_exception(c, id).await?.ok_or_else(|| Error::not_found("pickup exception", id))?;
            let sid = stored.student_id;
            student_for_write(c, &caller, sid, || Error::not_found("student", sid)).await?;
            repo::delete_exception(c, id).await?;
            Ok(())
        })
        .await?;
        tracing::info!(exception_id = id, "pickup exception deleted");
        Ok(pb::DeletePickupExceptionResponse {})
    }

    pub(super) async fn do_create_note(
        &self,
        caller: Caller,
        req: pb::CreatePickupNoteRequest,
    ) -> Result<pb::CreatePickupNoteResponse> {
        let (student_id, fields) = validate::create_note(req)?;
        let mut conn = self.conn().await?;
        let row = conn
            .transaction::<_, Error, _>(async move |c| {
                student_for_write(c, &caller, student_id, || {
                    Error::invalid("note.student_id", format!("student {student_id} does not exist"))
                })
                .await?;
                Ok(repo::insert_note(c, student_id, &fields, caller.staff_id).await?)
            })
            .await?;
        tracing::info!(student_id, note_id = row.id, "pickup note created");
        Ok(pb::CreatePickupNoteResponse { note: Some(convert::note(row)) })
    }

    pub(super) async fn do_update_note(
        &self,
        caller: Caller,
        req: pb::UpdatePickupNoteRequest,
    ) -> Result<pb::UpdatePickupNoteResponse> {
        let update = validate::update_note(req)?;
        let mut conn = self.conn().await?;
        let row = conn
            .transaction::<_, Error, _>(async move |c| {
                let stored =
                    repo::lock_note(c, update.id).await?.ok_or_else(|| Error::not_found("pickup note", update.id))?;
                let sid = stored.student_id;
                student_for_write(c, &caller, sid, || Error::not_found("student", sid)).await?;
                let fields =
                    update.apply(repo::NoteFields { note_date: stored.note_date, content: stored.content.clone() })?;
                Ok(repo::write_note(c, stored.id, &fields).await?)
            })
            .await?;
        tracing::info!(note_id = row.id, "pickup note updated");
        Ok(pb::UpdatePickupNoteResponse { note: Some(convert::note(row)) })
    }

    pub(super) async fn do_delete_note(
        &self,
        caller: Caller,
        req: pb::DeletePickupNoteRequest,
    ) -> Result<pb::DeletePickupNoteResponse> {
        let id = crate::validate::id("id", req.id)?;
        let mut conn = self.conn().await?;
        conn.transaction::<_, Error, _>(async move |c| {
            let stored = repo::lock_note(c, id).await?.ok_or_else(|| Error::not_found("pickup note", id))?;
            let sid = stored.student_id;
            student_for_write(c, &caller, sid, || Error::not_found("student", sid)).await?;
            repo::delete_note(c, id).await?;
            Ok(())
        })
        .await?;
        tracing::info!(note_id = id, "pickup note deleted");
        Ok(pb::DeletePickupNoteResponse {})
    }
}
