//! `phoenix`: one binary for every role — the whole system locally (`dev`), any subset of
//! services (`serve`, one per Kubernetes Deployment), migrations, demo data, the first admin.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use phoenix::dev::{DevOptions, DevStack};
use phoenix::services::{self, ServiceContext};
use phoenix_common::config::Config;
use phoenix_common::db::{self, PoolOptions};
use phoenix_common::domain::Domain;
use phoenix_common::server::{self, ShutdownToken};
use phoenix_db::MigrationCommand;
use phoenix_gateway::broker_acl::MqttLogin;

#[derive(Parser)]
#[command(name = "phoenix", version, about = "Where every pupil is, in real time: Phoenix school presence backend")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything locally: database (started for you when DATABASE_URL is unset),
    /// migrations, demo data, all services, the gateway and an MQTT broker.
    Dev {
        /// Where the private database and generated dev secrets live.
        #[arg(long, env = "PHOENIX_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Do not load the demo school into an empty database.
        #[arg(long)]
        no_demo: bool,
    },
    /// Serve some domains (as on Kubernetes). Needs DATABASE_URL; does not migrate.
    Serve {
        /// `all` or a comma list: auth,users,education,facilities,activities,active,schedule,iot,feedback,config,audit.
        #[arg(long, env = "PHOENIX_SERVICES", default_value = "all")]
        services: String,
    },
    /// Run the edge alone: the browser entry point (dashboard; every domain's API over gRPC and
    /// grpc-web, forwarded to PHOENIX_<DOMAIN>_URL) and the MQTT reader bridge (as on
    /// Kubernetes). Needs DATABASE_URL, PHOENIX_DEVICE_KEY_SECRET and the gateway's service
    /// credential (PHOENIX_GATEWAY_CLIENT_SECRET); uses MQTT_URL, or starts the embedded
    /// broker when it is unset.
    Gateway,
    /// A simulated RFID reader: signs scans with the device key, publishes them, waits for
    /// each Result (re-sending every 5 s) and prints it.
    ReaderSim {
        /// The reader's device id (the demo school has reader-01 … reader-12 and entrance-01).
        #[arg(long, default_value = "reader-01")]
        device: String,
        /// Card UID to scan (repeat for several scans in a row).
        #[arg(long)]
        tag: Vec<String>,
        /// Scan the card of demo pupil N (0–199) instead of giving --tag.
        #[arg(long)]
        pupil: Vec<usize>,
        /// An offline buffer to replay at once: lines `tag` or `tag,scanned_at` (RFC 3339).
        #[arg(long)]
        replay: Option<PathBuf>,
        /// The device key. Default: derived from PHOENIX_DEVICE_KEY_SECRET (or the dev data
        /// directory's secret) and --key-version, as an operator holding the server secret can.
        #[arg(long, env = "PHOENIX_DEVICE_KEY", hide_env_values = true)]
        key: Option<String>,
        /// Key version to derive the key for (the demo readers have version 1).
        #[arg(long, default_value_t = 1)]
        key_version: i32,
        /// The dev data directory holding the generated device-key secret.
        #[arg(long, env = "PHOENIX_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Broker URL (default: MQTT_URL, else mqtt://127.0.0.1:PHOENIX_MQTT_PORT).
        #[arg(long)]
        broker: Option<String>,
        /// Seconds to wait for each Result.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
        /// The reader's broker password (default: derived from the device key, as the
        /// embedded broker and `phoenix mqtt-passwords` expect; the username is the device id).
        #[arg(long, env = "PHOENIX_READER_MQTT_PASSWORD", hide_env_values = true)]
        mqtt_password: Option<String>,
    },
    /// Print the Mosquitto password file of the readers' broker (deploy/mosquitto): one
    /// `mosquitto_passwd` line (PBKDF2-SHA512, `$7$`) for the gateway (PHOENIX_MQTT_USERNAME /
    /// PHOENIX_MQTT_PASSWORD, else derived) and for every registered reader (its device id
    /// and key-derived password). Needs DATABASE_URL and PHOENIX_DEVICE_KEY_SECRET; re-run
    /// after registering, deleting or rotating a reader.
    MqttPasswords,
    /// Print a reader's broker login (username = device id, password derived from its device
    /// key) for the installer. With --key no database is needed; otherwise needs DATABASE_URL
    /// and PHOENIX_DEVICE_KEY_SECRET and uses the reader's current key version.
    ReaderCredentials {
        /// The reader's device id.
        device: String,
        /// The device key (as RegisterDevice / RotateDeviceKey showed it).
        #[arg(long, env = "PHOENIX_DEVICE_KEY", hide_env_values = true)]
        key: Option<String>,
    },
    /// Monthly reports as CSV or XLSX (docs/reports.md; needs DATABASE_URL), as the administration.
    Report {
        #[command(subcommand)]
        action: ReportAction,
    },
    /// The school-year rollover (docs/reports.md; needs DATABASE_URL): every pupil of each
    /// old group to its new group, leavers deactivated, in one audited transaction.
    Rollover {
        /// The mapping: one `old,new` (or `old→new`) per line; an empty new side: leavers.
        #[arg(long)]
        mapping: PathBuf,
        /// Print exactly what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The reason kept in every audit row (default "school-year rollover").
        #[arg(long)]
        reason: Option<String>,
    },
    /// Run the retention purge now (needs DATABASE_URL): completed visits and scan receipts
    /// past each pupil's retention, presence events past 48 h, audited. Refused while
    /// another run (a replica's schedule, the RPC) holds the lock.
    Cleanup {
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Rows per batch (one transaction each).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        batch_size: i64,
    },
    /// The scheduled jobs (docs/jobs.md): list them with their last run, or run one now on
    /// the same lock as the schedule (needs DATABASE_URL).
    Jobs {
        #[command(subcommand)]
        action: JobsAction,
    },
    /// Database health (needs DATABASE_URL; docs/operations.md): schema sizes, bloat, index
    /// usage, dead tuples and vacuum times, connections per role, replication lag.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
    /// Back up the whole database or one schema with pg_dump (custom format) and a manifest
    /// next to it (FILE.manifest.json; needs DATABASE_URL; docs/operations.md).
    Backup {
        /// Only this domain's schema (e.g. `users`); default: the whole database.
        #[arg(long)]
        schema: Option<String>,
        /// The archive to write; default: phoenix-<schema|all>-<UTC time>.dump here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Restore an archive of `phoenix backup` into DATABASE_URL in one transaction: the whole
    /// database, or one schema (its objects replaced, other schemas' foreign keys into it
    /// checked again). Refused over a different migration version. Stop the services first.
    Restore {
        /// The archive (its FILE.manifest.json must lie next to it).
        file: PathBuf,
        /// Restore only this schema (from a one-schema or a whole-database archive).
        #[arg(long)]
        schema: Option<String>,
        /// Own the restored objects as the connecting role (into a cluster without the original owners).
        #[arg(long)]
        no_owner: bool,
        /// Leave out the archive's GRANTs (into a cluster without the roles they name).
        #[arg(long)]
        no_privileges: bool,
    },
    /// Apply, revert or list database migrations (needs DATABASE_URL).
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Import from a file (docs/import.md; needs DATABASE_URL).
    Import {
        #[command(subcommand)]
        action: ImportAction,
    },
    /// Load the demo school into an empty database (needs DATABASE_URL).
    SeedDemo,
    /// Create the first admin account (needs DATABASE_URL).
    CreateAdmin {
        /// Login email.
        #[arg(long, env = "PHOENIX_ADMIN_EMAIL")]
        email: String,
        /// Password (8+ characters with upper, lower, digit and symbol).
        #[arg(long, env = "PHOENIX_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Create a service client (e.g. the gateway) or rotate its secret; prints the secret
    /// once (needs DATABASE_URL).
    CreateServiceClient {
        /// Client id: 1–64 characters of a-z, 0-9, _ and -.
        #[arg(long)]
        client_id: String,
        /// Permissions its tokens carry, comma-separated, e.g. `scans:process`.
        #[arg(long, value_delimiter = ',')]
        permissions: Vec<String>,
        /// Leave an existing client as it is (no rotation): for jobs that run on every deploy.
        #[arg(long)]
        if_missing: bool,
        /// Take the secret from this environment variable (32+ characters, e.g. the gateway's
        /// PHOENIX_GATEWAY_CLIENT_SECRET from its Kubernetes Secret) instead of generating one;
        /// it is not printed, and a client that already has it is left alone.
        #[arg(long, value_name = "VAR")]
        secret_from_env: Option<String>,
    },
}

#[derive(Subcommand)]
enum ImportAction {
    /// Pupils with their guardians, phone numbers and RFID cards from a CSV or XLSX file:
    /// all or nothing, audited; prints the counts, or every problem by row and column.
    Students {
        /// The CSV or XLSX file.
        file: PathBuf,
        /// Check the file and print what the import would do; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum JobsAction {
    /// Every job: its domain, schedule, last run, outcome and counts.
    List,
    /// Run one job now (as its schedule would), e.g. `phoenix jobs run session_end --dry-run`.
    Run {
        /// The job's name, as `phoenix jobs list` shows it.
        name: String,
        /// Count what it would change; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum DbAction {
    /// Print schema sizes, table bloat, index usage, dead tuples and last autovacuum,
    /// connections per role and replication lag.
    Stats {
        /// The schema whose tables to detail.
        #[arg(long, default_value = "active")]
        schema: String,
    },
}

#[derive(Subcommand)]
enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Revert the newest migrations.
    Down {
        /// How many to revert.
        #[arg(long, default_value_t = 1, conflicts_with = "all")]
        steps: usize,
        /// Revert all of them.
        #[arg(long)]
        all: bool,
    },
    /// List migrations and whether each is applied.
    Status,
}

#[derive(Subcommand)]
enum ReportAction {
    /// Attendance per pupil and group: days present, first arrival, last leave, days closed
    /// by the system, sick days.
    Attendance {
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        /// Only this education group (id).
        #[arg(long)]
        group: Option<i64>,
        /// csv or xlsx.
        #[arg(long, default_value = "csv")]
        format: String,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Room utilisation per room and day: sessions, visits, distinct pupils, peak occupancy
    /// against capacity.
    Rooms {
        /// The month, YYYY-MM.
        #[arg(long)]
        month: String,
        /// Only this room (id).
        #[arg(long)]
        room: Option<i64>,
        /// csv or xlsx.
        #[arg(long, default_value = "csv")]
        format: String,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Whether `command` reads `PHOENIX_SECRET_KEY`: only the auth domain does (it seals the
/// signing keys and keys email hashes), so only `dev` and a `serve` that includes auth.
fn uses_secret_key(command: &Command) -> bool {
    match command {
        Command::Dev { .. } => true,
        Command::Serve { services } => Domain::parse_list(services).map_or(true, |d| d.contains(&Domain::Auth)),
        _ => false,
    }
}

/// The configuration for `command`. Production requires `PHOENIX_SECRET_KEY` only of a process
/// that reads it ([`uses_secret_key`]): the gateway, the other domains, migrations and the CLI
/// run without it, so their pods never hold it (deploy/kubernetes). Such a process, when the
/// key is unset, gets a random one of its own that nothing in it reads.
fn load_config(command: &Command) -> Result<Config, phoenix_common::config::ConfigError> {
    let unset = std::env::var("PHOENIX_SECRET_KEY").map_or(true, |v| v.is_empty());
    if uses_secret_key(command) || !unset {
        return Config::from_env();
    }
    use rand::RngExt as _;
    let bytes: [u8; 32] = rand::rng().random();
    let stand_in: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Config::from_lookup(|name| match name {
        "PHOENIX_SECRET_KEY" => Some(stand_in.clone()),
        _ => std::env::var(name).ok(),
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load_config(&cli.command) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn require_database_url(config: &Config) -> anyhow::Result<&str> {
    config
        .database_url
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL is not set (only `phoenix dev` starts a database by itself)"))
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let _telemetry = phoenix_common::telemetry::init("phoenix", config.log_format, config.otlp_endpoint.as_deref())?;
    if matches!(command, Command::Dev { .. } | Command::Serve { .. } | Command::Gateway)
        && config.metrics_port.is_some()
    {
        // Before the pools exist, so they are watched too (docs/observability.md).
        phoenix_common::metrics::install();
    }
    match command {
        Command::Dev { data_dir, no_demo } => {
            let data_dir = data_dir.unwrap_or_else(phoenix::dev::default_data_dir);
            println!("Starting Phoenix (data directory {}) …", data_dir.display());
            let stack = DevStack::start(DevOptions { config, data_dir, demo: !no_demo, port_fallback: true }).await?;
            print_dev_summary(&stack);
            server::cancel_on_signal(stack.shutdown_token());
            stack.run_until_shutdown().await?;
            println!("Phoenix stopped.");
        }
        Command::Serve { services: list } => {
            let domains = Domain::parse_list(&list).map_err(|e| anyhow::anyhow!("--services: {e}"))?;
            let url = require_database_url(&config)?;
            let pool = db::connect(url, PoolOptions::from_config(&config)).await?;
            let shutdown = ShutdownToken::new();
            server::cancel_on_signal(shutdown.clone());
            phoenix_common::metrics::start(&config, false, shutdown.clone()).await?;
            let ctx = ServiceContext::serving(pool, config.clone(), url, &domains).await?;
            let running =
                services::start(&domains, &ctx, config.listen_host, config.grpc_base_port, false, &shutdown).await?;
            for r in running {
                r.task.await??;
            }
        }
        Command::Gateway => run_gateway(config).await?,
        Command::ReaderSim {
            device,
            mut tag,
            pupil,
            replay,
            key,
            key_version,
            data_dir,
            broker,
            timeout,
            mqtt_password,
        } => {
            tag.extend(pupil.into_iter().map(phoenix::demo::demo_tag));
            anyhow::ensure!(!tag.is_empty() || replay.is_some(), "nothing to send: give --tag, --pupil or --replay");
            let key = match key {
                Some(k) => k,
                None => {
                    let data_dir = data_dir.unwrap_or_else(phoenix::dev::default_data_dir);
                    let secret = config
                        .device_key_secret
                        .clone()
                        .or_else(|| phoenix::admin::read_dev_device_key_secret(&data_dir))
                        .ok_or_else(|| {
                            anyhow::anyhow!(
                                "no --key, no PHOENIX_DEVICE_KEY_SECRET and no dev secret in {}",
                                data_dir.display()
                            )
                        })?;
                    phoenix_reader_protocol::derive_device_key(secret.expose().as_bytes(), &device, key_version)
                }
            };
            let broker =
                broker.or(config.mqtt_url.clone()).unwrap_or_else(|| format!("mqtt://127.0.0.1:{}", config.mqtt_port));
            phoenix::reader_sim::run(phoenix::reader_sim::SimOptions {
                broker,
                prefix: config.mqtt_prefix.clone(),
                device,
                key,
                tags: tag,
                replay,
                timeout: std::time::Duration::from_secs(timeout),
                mqtt_password,
            })
            .await?;
        }
        Command::MqttPasswords => {
            let pool = db::connect(require_database_url(&config)?, PoolOptions::from_config(&config)).await?;
            let secret = require_device_key_secret(&config)?;
            let gateway = MqttLogin::gateway(&config).ok_or_else(|| anyhow::anyhow!("no gateway MQTT password"))?;
            let mut logins = vec![gateway];
            for (device, version) in registered_readers(&pool).await? {
                if device == config.mqtt_username {
                    eprintln!("skipped reader {device:?}: its device id is the gateway's MQTT username");
                    continue;
                }
                let key = phoenix_reader_protocol::derive_device_key(secret.as_bytes(), &device, version);
                logins.push(MqttLogin::reader(&device, &key));
            }
            for login in &logins {
                use rand::RngExt as _;
                let salt: [u8; 12] = rand::rng().random();
                println!("{}", phoenix_gateway::broker_acl::mosquitto_password_line(login, &salt));
            }
        }
        Command::ReaderCredentials { device, key } => {
            let key = match key {
                Some(k) => k,
                None => {
                    let pool = db::connect(require_database_url(&config)?, PoolOptions::from_config(&config)).await?;
                    let secret = require_device_key_secret(&config)?;
                    let credentials = phoenix_iot::presence::credentials(&pool, &device)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no reader {device:?} is registered"))?;
                    phoenix_reader_protocol::derive_device_key(secret.as_bytes(), &device, credentials.key_version)
                }
            };
            let login = MqttLogin::reader(&device, &key);
            println!("MQTT username  {}", login.username);
            println!("MQTT password  {}", login.password.expose());
        }
        Command::Migrate { action } => {
            let url = require_database_url(&config)?;
            let command = match action {
                MigrateAction::Up => MigrationCommand::Up,
                MigrateAction::Down { all: true, .. } => MigrationCommand::DownAll,
                MigrateAction::Down { steps, .. } => MigrationCommand::Down(steps),
                MigrateAction::Status => MigrationCommand::Status,
            };
            // Over TLS when the URL's sslmode asks for it (docs/database.md).
            let conn = db::establish(url).await.map_err(|e| anyhow::anyhow!("cannot connect to the database: {e}"))?;
            for m in phoenix_db::migrate_on(conn, command).await? {
                println!("[{}] {}", if m.applied { "x" } else { " " }, m.name);
            }
        }
        Command::Jobs { action } => {
            let pool = db::connect(require_database_url(&config)?, PoolOptions::from_config(&config)).await?;
            let ctx = ServiceContext::new(pool, config.clone());
            let text = match action {
                JobsAction::List => phoenix::jobs::list(&ctx).await?,
                JobsAction::Run { name, dry_run } => phoenix::jobs::run(&ctx, &name, dry_run).await?,
            };
            println!("{}", text.trim_end());
        }
        Command::Report { action } => {
            let pool = db::connect(require_database_url(&config)?, PoolOptions::from_config(&config)).await?;
            let (kind, month, id, format, out) = match action {
                ReportAction::Attendance { month, group, format, out } => {
                    (phoenix::report::Kind::Attendance, month, group, format, out)
                }
                ReportAction::Rooms { month, room, format, out } => {
                    (phoenix::report::Kind::Rooms, month, room, format, out)
                }
            };
            println!("{}", phoenix::report::write(&pool, config.timezone, kind, &month, id, &format, &out).await?);
        }
        Command::Rollover { mapping, dry_run, reason } => {
            let pool = db::connect(require_database_url(&config)?, PoolOptions::from_config(&config)).await?;
            println!("{}", phoenix::report::rollover(&pool, &mapping, dry_run, reason).await?);
        }
        Command::Db { action: DbAction::Stats { schema } } => {
            let pool = db::connect(require_database_url(&config)?, PoolOptions::from_config(&config)).await?;
            print!("{}", phoenix::db_ops::stats(&pool, &schema).await?);
        }
        Command::Backup { schema, out } => {
            let url = require_database_url(&config)?;
            let tools = phoenix::backup::Tools::find()?;
            let out =
                out.unwrap_or_else(|| phoenix::backup::default_archive_name(schema.as_deref(), chrono::Utc::now()));
            let m = phoenix::backup::backup(url, &tools, schema.as_deref(), &out).await?;
            println!(
                "Backed up {} to {} ({} bytes, migration {}); manifest {}",
                m.schema.as_deref().map_or("the whole database".to_owned(), |s| format!("schema {s}")),
                out.display(),
                m.archive_bytes,
                m.migration_version(),
                phoenix::backup::manifest_path(&out).display()
            );
        }
        Command::Restore { file, schema, no_owner, no_privileges } => {
            let url = require_database_url(&config)?;
            let tools = phoenix::backup::Tools::find()?;
            let options = phoenix::backup::RestoreOptions { schema, no_owner, no_privileges };
            let r = phoenix::backup::restore(url, &tools, &file, &options).await?;
            println!(
                "Restored {} from {} (taken {}, migration {}).",
                r.schema.as_deref().map_or("the whole database".to_owned(), |s| format!("schema {s}")),
                file.display(),
                r.manifest.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                r.manifest.migration_version()
            );
            if !r.foreign_keys_restored.is_empty() {
                println!(
                    "  {} foreign keys of other schemas into it added again and validated.",
                    r.foreign_keys_restored.len()
                );
            }
        }
        Command::Cleanup { dry_run, batch_size } => {
            let pool = db::connect(require_database_url(&config)?, PoolOptions::from_config(&config)).await?;
            let ctx = ServiceContext::new(pool.clone(), config.clone());
            let options = phoenix_config::retention::RetentionOptions { batch_size, ..ctx.retention_options() };
            let settings = ctx.config_cache().await.live_settings(&config);
            let trigger = phoenix_config::retention::Trigger::Cli;
            match phoenix_config::retention::run(&pool, &settings, options, trigger, dry_run).await? {
                phoenix_config::retention::RunOutcome::AlreadyRunning => {
                    println!("A retention purge is already running (another replica or process); nothing done.");
                }
                phoenix_config::retention::RunOutcome::Done(r) => {
                    let verb = if r.dry_run { "would delete" } else { "deleted" };
                    println!(
                        "Retention purge {verb}: {} visits, {} scan receipts, {} presence events ({} students; \
                         school default {} days).",
                        r.visits, r.scan_receipts, r.presence_events, r.students, r.default_retention_days
                    );
                    if !r.dry_run {
                        println!("  audit records written: {}", r.audit_records);
                    }
                    if !r.complete {
                        println!("  stopped at the time budget; run again to continue.");
                    }
                }
            }
        }
        Command::Import { action: ImportAction::Students { file, dry_run } } => {
            let pool = db::connect(require_database_url(&config)?, PoolOptions::from_config(&config)).await?;
            println!("{}", phoenix::import::students(&pool, &file, dry_run).await?);
        }
        Command::SeedDemo => {
            let pool = db::connect(require_database_url(&config)?, PoolOptions::from_config(&config)).await?;
            if phoenix::demo::seed_if_empty(&pool).await? {
                println!("Demo school loaded ({} pupils).", phoenix::demo::DEMO_STUDENTS);
            } else {
                println!("The database already has pupils; demo data not loaded.");
            }
        }
        Command::CreateAdmin { email, password } => {
            let pool = db::connect(require_database_url(&config)?, PoolOptions::from_config(&config)).await?;
            if phoenix::admin::create_admin(&pool, &email, &password).await? {
                println!("Admin account created.");
            } else {
                println!("An account with that email exists; nothing changed.");
            }
        }
        Command::CreateServiceClient { client_id, permissions, if_missing, secret_from_env } => {
            let given = match &secret_from_env {
                Some(var) => Some(
                    std::env::var(var)
                        .ok()
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| anyhow::anyhow!("--secret-from-env: {var} is not set"))?,
                ),
                None => None,
            };
            let pool = db::connect(require_database_url(&config)?, PoolOptions::from_config(&config)).await?;
            use phoenix::admin::ServiceClientOutcome as Outcome;
            match phoenix::admin::ensure_service_client(&pool, &client_id, &permissions, given.as_deref(), if_missing)
                .await?
            {
                Outcome::Created(Some(secret)) | Outcome::Updated(Some(secret)) => {
                    println!("Service client {client_id:?} ready; its secret (shown once, store it now):");
                    println!("{secret}");
                }
                Outcome::Created(None) => println!("Service client {client_id:?} created with the given secret."),
                Outcome::Updated(None) => {
                    println!("Service client {client_id:?} updated to the given secret and permissions.")
                }
                Outcome::Unchanged => println!("Service client {client_id:?} exists; nothing changed."),
            }
        }
    }
    Ok(())
}

fn require_device_key_secret(config: &Config) -> anyhow::Result<String> {
    config
        .device_key_secret
        .as_ref()
        .map(|s| s.expose().to_owned())
        .ok_or_else(|| anyhow::anyhow!("PHOENIX_DEVICE_KEY_SECRET is not set: reader passwords derive from it"))
}

/// Every registered reader's device id and key version.
async fn registered_readers(pool: &db::DbPool) -> anyhow::Result<Vec<(String, i32)>> {
    use diesel::{ExpressionMethods as _, QueryDsl as _};
    use diesel_async::RunQueryDsl as _;
    use phoenix_db::schema::iot::devices;
    let mut conn = db::conn(pool).await?;
    Ok(devices::table
        .order(devices::device_id.asc())
        .select((devices::device_id, devices::key_version))
        .load::<(String, i32)>(&mut conn)
        .await?)
}

async fn run_gateway(config: Config) -> anyhow::Result<()> {
    let url = require_database_url(&config)?;
    let pool = phoenix_common::db_roles::gateway_pool(&config, url, PoolOptions::from_config(&config)).await?;
    let mqtt_url = match &config.mqtt_url {
        Some(url) => url.clone(),
        None => {
            let auth = phoenix_gateway::broker_acl::BrokerAuth::from_config(&config, pool.clone())?;
            phoenix_gateway::broker::EmbeddedBroker::start(config.listen_host, config.mqtt_port, false, auth)
                .await?
                .url()
        }
    };
    let shutdown = ShutdownToken::new();
    server::cancel_on_signal(shutdown.clone());
    phoenix_common::metrics::start(&config, false, shutdown.clone()).await?;
    let listener = server::bind(config.listen_host, config.gateway_port, false).await?;
    println!("gateway on http://{} (dashboard, gRPC and grpc-web), MQTT broker {mqtt_url}", listener.local_addr()?);
    // Tokens are verified (keys from the shared database) only to rate-limit by account.
    let verifier = std::sync::Arc::new(phoenix_common::authz::TokenVerifier::new(pool.clone()));
    let options = phoenix::edge::web_options(&config, |_| None, Some(verifier));
    let web = tokio::spawn(phoenix_gateway::web::serve(listener, options, shutdown.clone()));
    let active = phoenix::edge::active_url(&config, None);
    let secret = config.gateway_client_secret.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "PHOENIX_GATEWAY_CLIENT_SECRET is not set: create the gateway's credential with \
             `phoenix create-service-client --client-id gateway --permissions scans:process`"
        )
    })?;
    let auth = phoenix::edge::auth_url(&config, None);
    let tokens = phoenix::edge::gateway_credentials(&config, &auth, secret.expose(), shutdown.clone()).await?;
    let bridge = phoenix::edge::start_bridge(&config, pool, &mqtt_url, &active, tokens, shutdown)?;
    bridge.join().await?;
    web.await??;
    Ok(())
}

fn print_dev_summary(stack: &DevStack) {
    println!();
    println!("Phoenix is running.");
    println!("  data directory  {}", stack.data_dir.display());
    match &stack.local_pg {
        Some(pg) => println!("  database        {} (private cluster in {})", stack.database_url, pg.dir().display()),
        None => println!("  database        from DATABASE_URL"),
    }
    println!("  MQTT broker     {}", stack.mqtt_url);
    println!("  gateway         http://{} (dashboard; every API over gRPC and grpc-web)", stack.gateway);
    for (domain, addr) in &stack.services {
        println!("  {:<15} {addr}  {}", domain.name(), domain.grpc_service());
    }
    if stack.demo_loaded {
        println!(
            "  demo data       loaded ({} pupils, rooms with readers, groups, staff)",
            phoenix::demo::DEMO_STUDENTS
        );
    }
    if let Some(admin) = &stack.admin {
        println!("  admin login     {} / {}", admin.email, admin.password);
    }
    println!();
    println!("  reader bridge   {p}/readers/+/scan → ProcessScan → {p}/readers/<device>/result", p = stack.mqtt_prefix);
    println!();
    println!("Try: grpcurl -plaintext {} grpc.health.v1.Health/Check", stack.services[0].1);
    if stack.demo_loaded || stack.local_pg.is_some() {
        println!("Readers: sessions run in Raum 101 (reader-01), Raum 102 (reader-02), Turnhalle (reader-07).");
        println!("  phoenix reader-sim --broker {} --device reader-01 --pupil 0   # checked_in", stack.mqtt_url);
        println!("  phoenix reader-sim --broker {} --device reader-02 --pupil 0   # transferred", stack.mqtt_url);
        println!("  phoenix reader-sim --broker {} --device reader-02 --pupil 0   # checked_out", stack.mqtt_url);
    }
    if let (Some(admin), Some((_, auth))) = (&stack.admin, stack.services.iter().find(|(d, _)| *d == Domain::Auth)) {
        println!(
            "Log in: grpcurl -plaintext -d '{{\"email\":\"{}\",\"password\":\"…\"}}' {auth} phoenix.auth.v1.AuthService/Login",
            admin.email
        );
        println!("  then send the access token as: -H 'authorization: Bearer <access_token>'");
    }
    println!("Press Ctrl-C to stop.");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("phoenix").chain(args.iter().copied())).expect("parses").command
    }

    #[test]
    fn only_processes_serving_auth_read_the_secret_key() {
        assert!(uses_secret_key(&command(&["dev"])));
        assert!(uses_secret_key(&command(&["serve", "--services", "auth"])));
        assert!(uses_secret_key(&command(&["serve", "--services", "users,auth"])));
        assert!(uses_secret_key(&command(&["serve", "--services", "all"])));
        assert!(!uses_secret_key(&command(&["serve", "--services", "users"])));
        assert!(!uses_secret_key(&command(&["gateway"])));
        assert!(!uses_secret_key(&command(&["migrate", "up"])));
        assert!(!uses_secret_key(&command(&["create-admin", "--email", "a@b.de", "--password", "x"])));
        let bootstrap = [
            "create-service-client",
            "--client-id",
            "gateway",
            "--permissions",
            "scans:process",
            "--if-missing",
            "--secret-from-env",
            "PHOENIX_GATEWAY_CLIENT_SECRET",
        ];
        assert!(!uses_secret_key(&command(&bootstrap)));
    }
}
