//! Shared helpers of the activity management tests (manage, sub_resources, listing): the
//! environment with real staff tokens, supervisors, schedules and masked updates.

use diesel::sql_types::BigInt;
use diesel::{QueryableByName, sql_query};
use diesel_async::RunQueryDsl;
use pb::activities_service_client::ActivitiesServiceClient;
use phoenix_common::domain::Domain;
use phoenix_proto::activities::v1 as pb;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::grpc::{As, mask, request};
use phoenix_tests::{TestApp, fixtures};

pub(super) type Client = ActivitiesServiceClient<TestChannel>;

pub(super) const NOT_YOURS: &str = "you can only modify activities that you created or supervise";

pub(super) struct Env {
    pub(super) app: TestApp,
    pub(super) c: Client,
}

pub(super) async fn env() -> Env {
    let app = TestApp::spawn(&[Domain::Activities]).await;
    let c = ActivitiesServiceClient::new(app.test_channel(Domain::Activities).await);
    Env { app, c }
}

#[derive(QueryableByName)]
pub(super) struct N {
    #[diesel(sql_type = BigInt)]
    pub(super) n: i64,
}

impl Env {
    pub(super) async fn staff(&self, last: &str) -> i64 {
        fixtures::staff(&mut self.app.db.conn().await, "Frau", last).await
    }

    pub(super) async fn students(&self, n: usize) -> Vec<i64> {
        let mut conn = self.app.db.conn().await;
        let mut ids = Vec::new();
        for i in 0..n {
            ids.push(fixtures::student(&mut conn, &format!("Kind{i}"), "Test", &fixtures::tag(i)).await);
        }
        ids
    }

    pub(super) async fn room(&self, name: &str) -> i64 {
        fixtures::room(&mut self.app.db.conn().await, name, None).await
    }

    /// A timeframe on a winter Monday, local Berlin times `HH:MM`.
    pub(super) async fn timeframe(&self, start: &str, end: &str) -> i64 {
        fixtures::insert_returning_id(
            &mut self.app.db.conn().await,
            &format!(
                "INSERT INTO schedule.timeframes (start_time, end_time, is_active) VALUES \
                 ('2025-01-06 {start} Europe/Berlin', '2025-01-06 {end} Europe/Berlin', true) RETURNING id"
            ),
        )
        .await
    }

    pub(super) async fn category(&self, name: &str) -> i64 {
        fixtures::insert_returning_id(
            &mut self.app.db.conn().await,
            &format!("SELECT id FROM activities.categories WHERE name = '{name}'"),
        )
        .await
    }

    pub(super) async fn count(&self, sql: &str) -> i64 {
        sql_query(sql).get_result::<N>(&mut self.app.db.conn().await).await.unwrap_or_else(|e| panic!("{sql}: {e}")).n
    }

    /// Creates an activity as `who` (category Sport, 10 places, open).
    pub(super) async fn create(&mut self, who: As, name: &str, supervisors: Vec<i64>) -> pb::Activity {
        let category_id = self.category("Sport").await;
        let activity =
            pb::Activity { name: name.into(), max_participants: 10, is_open: true, category_id, ..Default::default() };
        self.c
            .create_activity(request(
                who,
                pb::CreateActivityRequest { activity: Some(activity), supervisor_staff_ids: supervisors },
            ))
            .await
            .expect("create activity")
            .into_inner()
            .activity
            .expect("activity")
    }

    pub(super) async fn get(&mut self, id: i64) -> pb::Activity {
        self.c.get_activity(pb::GetActivityRequest { id }).await.expect("get").into_inner().activity.expect("activity")
    }
}

pub(super) fn sup(staff_id: i64, is_primary: bool) -> pb::Supervisor {
    pb::Supervisor { staff_id, is_primary }
}

pub(super) fn sched(weekday: i32, timeframe_id: i64) -> pb::ActivitySchedule {
    pb::ActivitySchedule { weekday, timeframe_id, ..Default::default() }
}

pub(super) fn update(activity: pb::Activity, paths: &[&str]) -> pb::UpdateActivityRequest {
    pb::UpdateActivityRequest { activity: Some(activity), update_mask: mask(paths) }
}

pub(super) fn weekly(s: &[pb::ActivitySchedule]) -> Vec<(i32, i64, &str, &str)> {
    s.iter().map(|s| (s.weekday, s.timeframe_id, s.start_time.as_str(), s.end_time.as_str())).collect()
}
