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
    /// Apply, revert or list database migrations (needs DATABASE_URL).
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
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
            let ctx = ServiceContext::new(pool, config.clone());
            let running =
                services::start(&domains, &ctx, config.listen_host, config.grpc_base_port, false, &shutdown).await?;
            for r in running {
                r.task.await??;
            }
        }
        Command::Migrate { action } => {
            let url = require_database_url(&config)?;
            let command = match action {
                MigrateAction::Up => MigrationCommand::Up,
                MigrateAction::Down { all: true, .. } => MigrationCommand::DownAll,
                MigrateAction::Down { steps, .. } => MigrationCommand::Down(steps),
                MigrateAction::Status => MigrationCommand::Status,
            };
            for m in phoenix_db::migrate(url, command).await? {
                println!("[{}] {}", if m.applied { "x" } else { " " }, m.name);
            }
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
        Command::CreateServiceClient { client_id, permissions } => {
            let pool = db::connect(require_database_url(&config)?, PoolOptions::from_config(&config)).await?;
            let secret = phoenix_auth::service_clients::create_or_rotate(&pool, &client_id, &permissions).await?;
            println!("Service client {client_id:?} ready; its secret (shown once, store it now):");
            println!("{secret}");
        }
    }
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
    println!("  gateway         http://{} (grpc-web, health, reflection)", stack.gateway);
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
    println!("Try: grpcurl -plaintext {} grpc.health.v1.Health/Check", stack.services[0].1);
    if let (Some(admin), Some((_, auth))) = (&stack.admin, stack.services.iter().find(|(d, _)| *d == Domain::Auth)) {
        println!(
            "Log in: grpcurl -plaintext -d '{{\"email\":\"{}\",\"password\":\"…\"}}' {auth} phoenix.auth.v1.AuthService/Login",
            admin.email
        );
        println!("  then send the access token as: -H 'authorization: Bearer <access_token>'");
    }
    println!("Press Ctrl-C to stop.");
}
