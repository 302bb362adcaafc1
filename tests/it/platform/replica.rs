//! The read replica (`PHOENIX_DATABASE_READ_URL`, docs/database.md): a real streaming replica
//! of a private cluster (`pg_basebackup -R`), per-domain roles on. Reads that tolerate lag
//! (here facilities' `ListRooms`) go to it — proved by pausing replay and writing on the
//! primary: the list does not show the new row — a replica lagging beyond
//! `PHOENIX_DATABASE_READ_MAX_LAG_MS` is bypassed, and a stopped one falls back to the
//! primary without an error.

use std::time::{Duration, Instant};

use diesel::sql_types::BigInt;
use diesel::{QueryableByName, sql_query};
use diesel_async::RunQueryDsl as _;
use phoenix_common::db::ReadTarget;
use phoenix_common::domain::Domain;
use phoenix_proto::facilities::v1 as pb;
use phoenix_proto::facilities::v1::facilities_service_client::FacilitiesServiceClient;
use phoenix_tests::TestApp;
use phoenix_tests::auth::TestChannel;
use phoenix_tests::db::{PrivateCluster, Replica};

type Client = FacilitiesServiceClient<TestChannel>;

/// A primary, its replica, and facilities reading from the replica within `max_lag`.
struct Setup {
    app: TestApp,
    client: Client,
    replica: Replica,
    _cluster: PrivateCluster,
}

impl Setup {
    async fn start(max_lag: Duration) -> Self {
        let cluster = PrivateCluster::start().await;
        let replica = cluster.start_replica().await;
        let app = cluster
            .scope(TestApp::spawn_with(&[Domain::Facilities], |c| {
                let primary = c.database_url.clone().expect("test database URL");
                c.database_read_url = Some(replica.url_of(&primary));
                c.database_read_max_lag = max_lag;
            }))
            .await;
        assert!(app.config.db_roles, "the replica is tested with per-domain roles on");
        let client = FacilitiesServiceClient::new(app.test_channel(Domain::Facilities).await);
        let setup = Self { app, client, replica, _cluster: cluster };
        // The test database was created on the primary a moment ago: the replica serves reads
        // once it has replayed it.
        setup.replica.catch_up(&mut setup.app.db.conn().await).await;
        setup.wait_for_target(ReadTarget::Replica).await;
        setup
    }

    fn target(&self) -> ReadTarget {
        self.app.context.read_pool_for(Domain::Facilities).target()
    }

    async fn wait_for_target(&self, want: ReadTarget) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.target() != want {
            assert!(Instant::now() < deadline, "reads did not move to {want:?} within 15 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn create_room(&mut self, name: &str) -> i64 {
        let room = pb::Room { name: name.into(), ..Default::default() };
        self.client
            .create_room(pb::CreateRoomRequest { room: Some(room) })
            .await
            .expect("create room")
            .into_inner()
            .room
            .expect("room")
            .id
    }

    async fn listed(&mut self) -> Vec<String> {
        let rooms =
            self.client.list_rooms(pb::ListRoomsRequest::default()).await.expect("list rooms").into_inner().rooms;
        let mut names: Vec<String> = rooms.into_iter().map(|r| r.name).collect();
        names.sort();
        names
    }

    /// Rooms named `name` in the test database on the replica itself.
    async fn rooms_on_replica(&self, name: &str) -> i64 {
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        sql_query("SELECT count(*) AS n FROM facilities.rooms WHERE name = $1")
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result::<N>(&mut self.replica.conn(self.app.db.name()).await)
            .await
            .expect("count on the replica")
            .n
    }
}

#[tokio::test]
async fn lists_read_from_the_replica_and_miss_a_write_it_has_not_replayed() {
    let mut s = Setup::start(Duration::from_secs(60)).await;
    s.create_room("Raum A").await;
    s.replica.catch_up(&mut s.app.db.conn().await).await;
    assert_eq!(s.listed().await, ["Raum A"]);

    s.replica.pause_replay().await;
    s.create_room("Raum B").await;
    // The write went to the primary; the replica holds it back, and so does the list.
    assert_eq!(s.rooms_on_replica("Raum B").await, 0, "replay is paused");
    assert_eq!(s.target(), ReadTarget::Replica, "lag stays within the 60 s bound");
    assert_eq!(s.listed().await, ["Raum A"], "the list is read on the replica");
    let lag = s.app.context.read_pool_for(Domain::Facilities).replica_lag();
    assert!(lag.is_some(), "the lag is measured");

    s.replica.resume_replay().await;
    s.replica.catch_up(&mut s.app.db.conn().await).await;
    assert_eq!(s.listed().await, ["Raum A", "Raum B"]);
    s.app.stop().await;
}

#[tokio::test]
async fn a_replica_lagging_beyond_the_bound_is_bypassed_until_it_catches_up() {
    let mut s = Setup::start(Duration::from_millis(300)).await;
    s.create_room("Raum A").await;
    s.replica.catch_up(&mut s.app.db.conn().await).await;
    s.wait_for_target(ReadTarget::Replica).await;

    s.replica.pause_replay().await;
    s.create_room("Raum B").await;
    s.wait_for_target(ReadTarget::Primary).await;
    let lag = s.app.context.read_pool_for(Domain::Facilities).replica_lag().expect("replica reachable");
    assert!(lag > Duration::from_millis(300), "bypassed for a lag of {lag:?}");
    assert_eq!(s.listed().await, ["Raum A", "Raum B"], "the primary answers while the replica lags");
    assert_eq!(s.rooms_on_replica("Raum B").await, 0, "the replica still lacks it: the list came from the primary");

    s.replica.resume_replay().await;
    s.wait_for_target(ReadTarget::Replica).await;
    assert_eq!(s.listed().await, ["Raum A", "Raum B"]);
    s.app.stop().await;
}

#[tokio::test]
async fn a_stopped_replica_falls_back_to_the_primary_without_an_error() {
    let mut s = Setup::start(Duration::from_secs(60)).await;
    s.create_room("Raum A").await;
    s.replica.catch_up(&mut s.app.db.conn().await).await;
    assert_eq!(s.listed().await, ["Raum A"]);

    s.replica.stop().await;
    s.create_room("Raum B").await;
    // The first read may still pick the replica: its checkout fails fast and the primary answers.
    let started = Instant::now();
    assert_eq!(s.listed().await, ["Raum A", "Raum B"]);
    assert!(started.elapsed() < Duration::from_secs(5), "fell back in {:?}", started.elapsed());
    assert_eq!(s.target(), ReadTarget::Primary);
    assert_eq!(s.app.context.read_pool_for(Domain::Facilities).replica_lag(), None, "unreachable");
    assert_eq!(s.listed().await, ["Raum A", "Raum B"]);
    s.app.stop().await;
}
