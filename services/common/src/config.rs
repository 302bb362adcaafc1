//! Configuration: one typed struct read from environment variables. (Long by nature: one
//! declaration per variable, ~50 of them, in one list so none is written twice.)
//!
//! Every variable is declared once, in the `config!` list below: its field, its name, its
//! default, its README text and its parser. [`Config::VARIABLES`] (the README's configuration
//! table) and [`Config::from_lookup`] are generated from that list; a bad value fails start-up
//! with an error that names the variable, the value and what was expected.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use chrono::NaiveTime;

use crate::client_addr::Cidr;
use crate::domain::Domain;

/// A configuration value that could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{var}: {reason} (got {value:?})")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// The value it held.
    pub value: String,
    /// What was expected instead.
    pub reason: String,
}

/// Which kind of deployment this is; production refuses unsafe defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Local development and tests: generated secrets are allowed.
    Development,
    /// Production: secrets must be provided and strong.
    Production,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// One environment variable as the README's configuration table shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var {
    /// The variable's name.
    pub name: &'static str,
    /// The value used when it is unset, or `(…)`: what happens without one.
    pub default: &'static str,
    /// What it means.
    pub help: &'static str,
}

/// Declares [`Config`], [`Config::VARIABLES`] and [`Config::from_lookup`] from one list, in
/// README order. Three kinds of entry:
///
/// - `field: Type = "VAR", "default", "help", |v| parse;` — a field read from one variable;
///   `v` is its [`Value`] (the set value, else the default unless that is a `(…)` text) and
///   `parse` gives `Result<Type, ConfigError>`. An entry may use the fields declared above it.
/// - `documented "VAR", "default", "help";` — a variable read elsewhere, listed for the table.
/// - `field: Type = per_domain name |env| parse, { Domain: "VAR", "default", "help"; … }` — one
///   variable per domain; also defines `pub const fn name(Domain) -> &'static str`.
///
/// A field's doc is its variable and README text; `///` lines before an entry add to it.
macro_rules! config {
    (@munch $env:ident [$($f:tt)*] [$($r:tt)*] [$($s:tt)*] [$($n:tt)*];
        documented $name:literal, $default:literal, $help:literal; $($rest:tt)*) => {
        config!(@munch $env [$($f)*] [$($r)* Var { name: $name, default: $default, help: $help },]
            [$($s)*] [$($n)*]; $($rest)*);
    };
    (@munch $env:ident [$($f:tt)*] [$($r:tt)*] [$($s:tt)*] [$($n:tt)*];
        $(#[$attr:meta])* $field:ident: $ty:ty = per_domain $var_fn:ident |$v:ident| $parse:expr,
        { $($domain:ident: $name:literal, $default:literal, $help:literal;)* } $($rest:tt)*) => {
        /// The variable of `domain` in [`Config::VARIABLES`].
        pub const fn $var_fn(domain: Domain) -> &'static str {
            match domain { $(Domain::$domain => $name,)* }
        }
        config!(@munch $env
            [$($f)* $(#[$attr])* pub $field: $ty,]
            [$($r)* $(Var { name: $name, default: $default, help: $help },)*]
            [$($s)* let $field: $ty = { let $v = &$env; $parse }?;]
            [$($n)* $field]; $($rest)*);
    };
    (@munch $env:ident [$($f:tt)*] [$($r:tt)*] [$($s:tt)*] [$($n:tt)*];
        $(#[$attr:meta])* $field:ident: $ty:ty = $name:literal, $default:literal, $help:literal,
        |$v:ident| $parse:expr; $($rest:tt)*) => {
        config!(@munch $env
            [$($f)* #[doc = concat!("`", $name, "`: ", $help, ".")] $(#[$attr])* pub $field: $ty,]
            [$($r)* Var { name: $name, default: $default, help: $help },]
            [$($s)* let $field: $ty = { let $v = $env.value($name, $default); $parse }?;]
            [$($n)* $field]; $($rest)*);
    };
    (@munch $env:ident [$($f:tt)*] [$($r:tt)*] [$($s:tt)*] [$($n:ident)*];) => {
        /// All settings of a Phoenix process; each field names the variable it is read from.
        #[derive(Debug, Clone)]
        pub struct Config { $($f)* }

        impl Config {
            /// Every variable Phoenix reads, its default and its meaning (the README's table).
            pub const VARIABLES: &'static [Var] = &[$($r)*];

            /// Reads settings through `lookup` (tests pass a map instead of the environment).
            /// An empty value counts as unset.
            pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
                let $env = Env(&lookup);
                $($s)*
                Ok(Self { $($n),* })
            }
        }
    };
    (@munch $($entry:tt)*) => { compile_error!("config!: an entry fits none of the three forms"); };
    ($($entries:tt)*) => { config!(@munch env [] [] [] []; $($entries)*); };
}

config! {
    /// `None` lets `phoenix dev` start a private cluster.
    database_url: Option<String> = "DATABASE_URL", "(dev: private cluster)",
        "PostgreSQL URL, e.g. postgres://phoenix@db:5432/phoenix; TLS with `?sslmode=require`, or `verify-full&sslrootcert=/path/ca.pem` to check the server (docs/database.md)",
        |v| v.optional(url(&["postgres", "postgresql"]));
    db_pool_size: u32 = "PHOENIX_DB_POOL_SIZE", "10",
        "maximum pooled database connections per process (1–1000)",
        |v| v.required(num(1, 1000));
    db_pool_timeout: Duration = "PHOENIX_DB_POOL_TIMEOUT_MS", "5000",
        "wait for a pooled connection before answering Unavailable",
        |v| v.required(num(1, 600_000)).map(Duration::from_millis);
    db_statement_timeout: Duration = "PHOENIX_DB_STATEMENT_TIMEOUT", "15s",
        "PostgreSQL `statement_timeout` of pooled connections: a longer statement is canceled and answered Unavailable (retry); 0 = off",
        |v| v.required(duration(Duration::ZERO, Duration::from_secs(86_400)));
    db_lock_timeout: Duration = "PHOENIX_DB_LOCK_TIMEOUT", "5s",
        "PostgreSQL `lock_timeout` of pooled connections: a longer lock wait is canceled and answered Unavailable (retry); 0 = off",
        |v| v.required(duration(Duration::ZERO, Duration::from_secs(86_400)));
    db_idle_in_tx_timeout: Duration = "PHOENIX_DB_IDLE_IN_TX_TIMEOUT", "30s",
        "PostgreSQL `idle_in_transaction_session_timeout`: a transaction idle that long is ended with its session (LISTEN connections too); 0 = off",
        |v| v.required(duration(Duration::ZERO, Duration::from_secs(86_400)));
    /// `true`: each domain's pool works as that domain's PostgreSQL role (`crate::db_roles`).
    db_roles: bool = "PHOENIX_DB_ROLES", "on",
        "`on`: each domain connects as its own PostgreSQL role `phoenix_<domain>` (`SET ROLE` on every connection; the gateway as `phoenix_gateway`); a role's login comes from `PHOENIX_DATABASE_URL_<DOMAIN>`, else DATABASE_URL with user `phoenix_<domain>` and `PHOENIX_DB_ROLE_PASSWORD_<DOMAIN>`, else DATABASE_URL's own login (a member of the role); `off`: every domain uses DATABASE_URL as it is (docs/database.md)",
        |v| v.required(|s| match s.to_ascii_lowercase().as_str() {
            "on" | "true" | "1" => Ok(true),
            "off" | "false" | "0" => Ok(false),
            _ => Err(refuse("expected on or off")),
        });
    /// `None` = every read on the primary (`crate::db::ReadPool`).
    database_read_url: Option<String> = "PHOENIX_DATABASE_READ_URL", "(off)",
        "PostgreSQL URL of a streaming read replica: list RPCs, analytics and reports read from it while its lag is within PHOENIX_DATABASE_READ_MAX_LAG_MS, else (or when it is down) from DATABASE_URL; writes always go to DATABASE_URL (docs/database.md)",
        |v| v.optional(url(&["postgres", "postgresql"]));
    database_read_max_lag: Duration = "PHOENIX_DATABASE_READ_MAX_LAG_MS", "5000",
        "replication lag beyond which reads bypass the read replica for the primary (measured twice per bound, at most every second)",
        |v| v.required(num(1, 3_600_000)).map(Duration::from_millis);
    listen_host: IpAddr = "PHOENIX_LISTEN_HOST", "127.0.0.1",
        "interface for gRPC services and the gateway (0.0.0.0 in containers)",
        |v| v.required(parsed("expected an IP address such as 127.0.0.1 or 0.0.0.0"));
    grpc_base_port: u16 = "PHOENIX_GRPC_BASE_PORT", "50051",
        "domain N listens on base + N (auth 0 … audit 10); 0 = ephemeral",
        |v| v.required(num(0, 65_000));
    gateway_port: u16 = "PHOENIX_GATEWAY_PORT", "8080",
        "gateway port (dashboard, gRPC and grpc-web); 0 = ephemeral",
        |v| v.required(num(0, 65_535));
    services: String = "PHOENIX_SERVICES", "all",
        "domains `phoenix serve` runs: `all` or e.g. `auth,users`",
        |v| v.required(text);
    /// `None` = the embedded broker.
    mqtt_url: Option<String> = "MQTT_URL", "(dev: embedded broker)",
        "external MQTT broker, mqtt://host:port",
        |v| v.optional(url(&["mqtt", "tcp"]));
    mqtt_port: u16 = "PHOENIX_MQTT_PORT", "1883",
        "embedded broker port; 0 = ephemeral",
        |v| v.required(num(0, 65_535));
    mqtt_prefix: String = "PHOENIX_MQTT_PREFIX", "phoenix",
        "reader-protocol topic prefix",
        |v| v.required(matching(is_topic_prefix, "expected 1–64 characters of [A-Za-z0-9_-/] without wildcards"));
    environment: Environment = "PHOENIX_ENV", "development",
        "`production` refuses generated or weak secrets",
        |v| v.required(|s| match s {
            "development" | "dev" => Ok(Environment::Development),
            "production" | "prod" => Ok(Environment::Production),
            _ => Err(refuse("expected `development` or `production`")),
        });
    log_format: LogFormat = "PHOENIX_LOG_FORMAT", "pretty",
        "`pretty` or `json`",
        |v| v.required(|s| match s {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            _ => Err(refuse("expected `pretty` or `json`")),
        });
    documented "RUST_LOG", "info", "log filter (tracing EnvFilter syntax)";
    /// `None` = no export.
    otlp_endpoint: Option<String> = "OTEL_EXPORTER_OTLP_ENDPOINT", "(off)",
        "OTLP/gRPC collector for traces, e.g. http://otel:4317",
        |v| v.optional(text);
    /// `None` (`off`) = no endpoint.
    metrics_port: Option<u16> = "PHOENIX_METRICS_PORT", "9464",
        "port of the Prometheus `/metrics` endpoint on the listen host (docs/observability.md); 0 = ephemeral, `off` = none",
        |v| v.required(|s| if s.eq_ignore_ascii_case("off") { Ok(None) } else { num(0, 65_535)(s).map(Some) });
    shutdown_grace: Duration = "PHOENIX_SHUTDOWN_GRACE_SECS", "10",
        "grace period for in-flight requests on SIGTERM",
        |v| v.required(num(0, 3600)).map(Duration::from_secs);
    /// A device's key is HMAC-SHA256(secret, `device_id:key_version`). `None` = not configured:
    /// iot and the gateway refuse to start (`phoenix dev` generates one).
    device_key_secret: Option<Secret> = "PHOENIX_DEVICE_KEY_SECRET", "(dev: generated in the data directory)",
        "server secret (32+ characters) reader device keys are derived from; required by iot and the gateway",
        |v| v.optional(device_key_secret);
    scan_max_age: Duration = "PHOENIX_SCAN_MAX_AGE", "24h",
        "first default of the live setting `scan.max_age_minutes`: oldest accepted reader scan (`scanned_at`), e.g. 24h, 90m, 3600s",
        |v| v.required(duration(Duration::from_secs(60), Duration::from_secs(30 * 86_400)));
    scan_committers: usize = "PHOENIX_SCAN_COMMITTERS", "1",
        "transactions the active service commits reader scans in at once; the scans that queue meanwhile commit together in the next (group commit, docs/performance.md); more than one overlaps the transactions, which raises peak throughput but makes the live board wait for the older one (1–64)",
        |v| v.required(num(1, 64));
    scan_batch_max: usize = "PHOENIX_SCAN_BATCH_MAX", "16",
        "most reader scans one of those transactions applies (1 = every scan its own transaction, no group commit; 1–64)",
        |v| v.required(num(1, 64));
    timezone: chrono_tz::Tz = "PHOENIX_TIMEZONE", "Europe/Berlin",
        "the school's time zone, for every domain's business dates and daily job times (the setting `system.time_zone` shows it, locked)",
        |v| v.required(parsed("expected an IANA time zone such as Europe/Berlin"));
    /// Pickup rules stop applying at the entrance reader from then on (docs/reader-pipeline.md).
    daily_checkout_time: NaiveTime = "PHOENIX_DAILY_CHECKOUT_TIME", "15:00",
        "first default of the live setting `attendance.daily_checkout_time`: local time (HH:MM) from which the entrance reader lets every pupil go home; before it, a pupil with a pickup time today waits for it",
        |v| v.required(time_of_day("expected a time of day such as 15:00 (HH:MM)"));
    /// Beyond it and its burst, scans get `rejected`/`rate_limited`.
    reader_rate_limit: u32 = "PHOENIX_READER_RATE_LIMIT", "20",
        "scans per second one reader may send; more get `rate_limited` (0 = off)",
        |v| v.required(num(0, 10_000));
    reader_burst: u32 = "PHOENIX_READER_BURST", "100",
        "scans one reader may send at once, e.g. an offline buffer replay",
        |v| v.required(num(1, 100_000));
    mqtt_client_id: String = "PHOENIX_MQTT_CLIENT_ID", "phoenix-gateway",
        "the gateway's MQTT client id (persistent session)",
        |v| v.required(matching(is_mqtt_name, MQTT_NAME));
    /// When set, the gateway subscribes as `$share/{group}/…`.
    mqtt_shared_group: Option<String> = "PHOENIX_MQTT_SHARED_GROUP", "(off)",
        "shared-subscription group, so gateway replicas split the scans",
        |v| v.optional(matching(is_mqtt_name, MQTT_NAME));
    /// The gateway's broker login; the embedded broker admits it as the gateway (deploy/mosquitto/README.md).
    mqtt_username: String = "PHOENIX_MQTT_USERNAME", "phoenix-gateway",
        "the gateway's MQTT username (the embedded broker's ACL gives it every reader's scan/status and result topics)",
        |v| v.required(matching(is_mqtt_name, MQTT_NAME));
    /// `None`: derived from `PHOENIX_DEVICE_KEY_SECRET` (`phoenix mqtt-passwords` prints it).
    mqtt_password: Option<Secret> = "PHOENIX_MQTT_PASSWORD", "(derived from PHOENIX_DEVICE_KEY_SECRET)",
        "the gateway's MQTT password (`phoenix mqtt-passwords` prints the broker's password file)",
        |v| v.optional(|s| Ok(Secret::new(s)));
    /// `PHOENIX_<DOMAIN>_URL` ([`service_url_var`]): where the gateway reaches each domain
    /// (forwarding browser calls; `auth` also for its service credential, `active` for
    /// ProcessScan). A domain without an entry is on its port on the listen host
    /// ([`Config::service_url`]).
    service_urls: BTreeMap<Domain, String> = per_domain service_url_var |env| service_urls(env), {
        Auth: "PHOENIX_AUTH_URL", "(the auth port on the listen host)",
            "where the gateway forwards auth calls and exchanges its service credential";
        Users: "PHOENIX_USERS_URL", "(the users port on the listen host)", "where the gateway forwards users calls";
        Education: "PHOENIX_EDUCATION_URL", "(the education port on the listen host)",
            "where the gateway forwards education calls";
        Facilities: "PHOENIX_FACILITIES_URL", "(the facilities port on the listen host)",
            "where the gateway forwards facilities calls";
        Activities: "PHOENIX_ACTIVITIES_URL", "(the activities port on the listen host)",
            "where the gateway forwards activities calls";
        Active: "PHOENIX_ACTIVE_URL", "(the active port on the listen host)",
            "where the gateway forwards active calls and calls ProcessScan";
        Schedule: "PHOENIX_SCHEDULE_URL", "(the schedule port on the listen host)",
            "where the gateway forwards schedule calls";
        Iot: "PHOENIX_IOT_URL", "(the iot port on the listen host)", "where the gateway forwards iot calls";
        Feedback: "PHOENIX_FEEDBACK_URL", "(the feedback port on the listen host)",
            "where the gateway forwards feedback calls";
        Config: "PHOENIX_CONFIG_URL", "(the config port on the listen host)", "where the gateway forwards config calls";
        Audit: "PHOENIX_AUDIT_URL", "(the audit port on the listen host)", "where the gateway forwards audit calls";
    }
    /// Exact `https://host[:port]` origins, duplicates dropped; empty = same-origin only.
    cors_origins: Vec<String> = "PHOENIX_CORS_ORIGINS", "(none: same-origin only)",
        "browser origins allowed to call the gateway, comma list of exact origins such as https://board.school.example (no `*`)",
        |v| Ok(v.optional(origins)?.unwrap_or_default());
    gateway_max_request_bytes: u64 = "PHOENIX_GATEWAY_MAX_REQUEST_BYTES", "1048576",
        "largest request body the gateway accepts (1 KiB–64 MiB); larger: HTTP 413 / RESOURCE_EXHAUSTED",
        |v| v.required(num(1024, 64 * 1024 * 1024));
    /// A token bucket per client.
    gateway_rate_limit: f64 = "PHOENIX_GATEWAY_RATE_LIMIT", "50",
        "API requests per second per client at the gateway (per account when its token verifies, else per IP); 0 = off",
        |v| v.required(num(0.0, 100_000.0));
    gateway_rate_burst: u32 = "PHOENIX_GATEWAY_RATE_BURST", "100",
        "requests a client may make at once before the rate limit applies",
        |v| v.required(num(1, 100_000));
    /// Proxies (an ingress) in front of the gateway whose `X-Forwarded-For` it believes.
    trusted_proxies: Vec<Cidr> = "PHOENIX_TRUSTED_PROXIES", "(none)",
        "proxies in front of the gateway, comma list of CIDRs such as 10.0.0.0/8; their X-Forwarded-For names the client (rate limit, login throttling, audit), anyone else's is ignored",
        |v| Ok(v.optional(|s| Cidr::parse_list(s).map_err(refuse))?.unwrap_or_default());
    /// Its row in `auth.service_clients`.
    gateway_client_id: String = "PHOENIX_GATEWAY_CLIENT_ID", "gateway",
        "the gateway's service client id",
        |v| v.required(matching(is_mqtt_name, MQTT_NAME));
    gateway_client_secret: Option<Secret> = "PHOENIX_GATEWAY_CLIENT_SECRET", "(dev: created by `phoenix dev`)",
        "the gateway's service client secret (`phoenix create-service-client` prints it once); required by `phoenix gateway`",
        |v| v.optional(|s| Ok(Secret::new(s)));
    /// Keys the client-address header ([`crate::client_addr::ForwardingKey::from_config`]).
    forwarding_secret: Option<Secret> = "PHOENIX_FORWARDING_SECRET", "(dev: derived from PHOENIX_SECRET_KEY)",
        "secret (32+ characters) the gateway signs the caller's address with for the services (same value on the gateway and every service); unset in production, services see only the gateway's address",
        |v| v.optional(long_secret);
    /// Generated per process in development when unset.
    secret_key: ServerSecret = "PHOENIX_SECRET_KEY",
        "(dev: generated; `phoenix dev` keeps it in the data directory)",
        "server secret, 32+ characters: encrypts stored JWT signing keys and keys email hashes; required in production",
        |v| secret_key(v, environment);
    /// In [`Config::timezone`]; `None` (`off`) = no schedule (e.g. when a Kubernetes CronJob
    /// runs `phoenix cleanup` instead).
    cleanup_time: Option<NaiveTime> = "PHOENIX_CLEANUP_TIME", "02:00",
        "local time (HH:MM, school time zone) of the daily retention purge, run by the process serving config; `off` = none",
        |v| v.required(|s| if s.eq_ignore_ascii_case("off") {
            Ok(None)
        } else {
            time_of_day("expected a local time HH:MM (24 h) such as 02:00, or `off`")(s).map(Some)
        });
    /// `false` (`off`): this process schedules no jobs; they run only by hand (`phoenix jobs
    /// run`, e.g. from a Kubernetes CronJob). Tests turn it off.
    jobs_enabled: bool = "PHOENIX_JOBS", "on",
        "`on`: the process runs the scheduled jobs of the domains it serves (docs/jobs.md; one replica at a time); `off`: only by hand",
        |v| v.required(|s| match s.to_ascii_lowercase().as_str() {
            "on" | "true" | "1" => Ok(true),
            "off" | "false" | "0" => Ok(false),
            _ => Err(refuse("expected on or off")),
        });
    auth_hash_concurrency: usize = "PHOENIX_AUTH_HASH_CONCURRENCY", "2",
        "argon2 hashes (64 MiB each) the auth service runs at once; more wait up to 2 s, then get RESOURCE_EXHAUSTED (size the auth pod's memory limit to this × 64 MiB + 128 MiB)",
        |v| v.required(num(1, 64));
    /// `None`: no mail is sent (`phoenix dev` sets [`SMTP_LOG`] instead). Carries the SMTP
    /// password, so never printed.
    smtp_url: Option<Secret> = "PHOENIX_SMTP_URL", "(off; `phoenix dev`: `log`)",
        "SMTP server auth's outbox (password resets, invitations) is delivered through: smtp://host:25 (plain), smtp://user:pass@host:587?tls=required (STARTTLS), smtps://user:pass@host:465 (TLS); `log` prints each message to the log instead (development only; docs/email.md)",
        |v| v.optional(|s| smtp_server(s, environment));
    mail_from: Option<String> = "PHOENIX_MAIL_FROM", "(required with an SMTP server)",
        "sender of Phoenix's mail, `Phoenix <phoenix@school.example>` or a bare address",
        |v| required_with_smtp(v.optional(mailbox)?, "PHOENIX_MAIL_FROM", smtp_url.as_ref());
    /// Without a trailing `/`.
    public_url: Option<String> = "PHOENIX_PUBLIC_URL", "(required with an SMTP server; `log`: the gateway on the listen host)",
        "the dashboard's address as people reach it, e.g. https://phoenix.school.example: links in mail (`/reset-password?token=…`, `/invitation?token=…`) start with it",
        |v| required_with_smtp(v.optional(base_url)?, "PHOENIX_PUBLIC_URL", smtp_url.as_ref());
    mail_language: MailLanguage = "PHOENIX_MAIL_LANGUAGE", "de",
        "language of mail to a recipient without a preference of their own: `de` or `en`",
        |v| v.required(|s| match s {
            "de" => Ok(MailLanguage::De),
            "en" => Ok(MailLanguage::En),
            _ => Err(refuse("expected `de` or `en`")),
        });
}

/// `PHOENIX_SMTP_URL=log`: print mail to the log instead of sending it (development only).
pub const SMTP_LOG: &str = "log";

/// The language of a message (`PHOENIX_MAIL_LANGUAGE`, or the recipient's preference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MailLanguage {
    /// German (the default: a German school).
    #[default]
    De,
    /// English.
    En,
}

/// `PHOENIX_SMTP_URL`: `smtp://…`, `smtps://…` or `log` (refused in production).
fn smtp_server(v: &str, environment: Environment) -> Result<Secret, Refused> {
    if v == SMTP_LOG {
        return match environment {
            Environment::Development => Ok(Secret::new(v)),
            Environment::Production => Err(refuse("`log` prints tokens to the log: development only")),
        };
    }
    url(&["smtp", "smtps"])(v).map(Secret::new)
}

/// `value`, which must be set when a real SMTP server (not `log`) is configured.
fn required_with_smtp(
    value: Option<String>,
    var: &'static str,
    smtp_url: Option<&Secret>,
) -> Result<Option<String>, ConfigError> {
    let smtp = smtp_url.is_some_and(|u| u.expose() != SMTP_LOG);
    if smtp && value.is_none() {
        let reason = "required when PHOENIX_SMTP_URL names an SMTP server".into();
        return Err(ConfigError { var, reason, value: String::new() });
    }
    Ok(value)
}

/// `Name <address>` or `address`, the address shaped as [`crate::email::normalize`] wants.
fn mailbox(v: &str) -> Result<String, Refused> {
    let address = match v.rsplit_once('<') {
        Some((_, rest)) => rest.strip_suffix('>').unwrap_or(""),
        None => v,
    };
    match crate::email::normalize(address) {
        Some(_) if !v.contains(['\r', '\n']) => Ok(v.to_owned()),
        _ => Err(refuse("expected an address such as phoenix@school.example or `Phoenix <phoenix@school.example>`")),
    }
}

/// `http(s)://host[:port][/path]`, kept without a trailing `/`.
fn base_url(v: &str) -> Result<String, Refused> {
    let url = url(&["http", "https"])(v)?;
    if url.contains(['?', '#', ' ']) {
        return Err(refuse("expected a base address without query or fragment, e.g. https://phoenix.school.example"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// The server secret (`PHOENIX_SECRET_KEY`). Never printed: `Debug` shows only whether it
/// was generated.
///
/// Keys are derived from it per purpose ([`ServerSecret::derive_key`]) so that one use can
/// never be turned against another.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerSecret {
    bytes: Vec<u8>,
    generated: bool,
}

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSecret").field("generated", &self.generated).finish_non_exhaustive()
    }
}

impl ServerSecret {
    /// Minimum length of a configured secret, in bytes.
    pub const MIN_LEN: usize = 32;

    /// A secret from configured text; `None` when it is shorter than [`Self::MIN_LEN`].
    pub fn from_text(text: &str) -> Option<Self> {
        (text.len() >= Self::MIN_LEN).then(|| Self { bytes: text.as_bytes().to_vec(), generated: false })
    }

    /// A fresh random secret (development and tests only: it dies with the process).
    pub fn generate() -> Self {
        use rand::RngExt as _;
        let bytes: [u8; 32] = rand::rng().random();
        Self { bytes: hex_lower(&bytes).into_bytes(), generated: true }
    }

    /// Whether this secret was generated rather than configured.
    pub fn is_generated(&self) -> bool {
        self.generated
    }

    /// The secret as text, for persisting a generated development secret (never log it).
    pub fn expose_text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// HMAC-SHA256 of `message` keyed with the secret (e.g. the email hash of auth events).
    pub fn hmac_sha256(&self, message: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.bytes, message)
    }

    /// A 32-byte key for one `purpose` (a fixed label such as `phoenix/auth/signing-keys/v1`).
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        hmac_sha256(&self.bytes, format!("phoenix derive-key {purpose}").as_bytes())
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit as _, Mac as _};
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A secret configuration value: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Shortest accepted `PHOENIX_DEVICE_KEY_SECRET` (characters).
pub const MIN_DEVICE_KEY_SECRET_CHARS: usize = 32;

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Where `domain` is reached when `PHOENIX_<DOMAIN>_URL` is set; `None` = its port on
    /// the listen host (the caller knows the port).
    pub fn service_url(&self, domain: Domain) -> Option<&str> {
        self.service_urls.get(&domain).map(String::as_str)
    }
}

/// The environment as [`Config::from_lookup`] reads it: values trimmed, blank = unset.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    /// `var`'s value, or its default unless that is a `(…)` text.
    fn value(&self, var: &'static str, default: &'static str) -> Value {
        let default = (!default.starts_with('(')).then(|| default.to_owned());
        Value { var, text: self.get(var).text.or(default) }
    }

    /// `var`'s value, `None` when unset.
    fn get(&self, var: &'static str) -> Value {
        Value { var, text: (self.0)(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) }
    }
}

/// One variable on its way to its field.
struct Value {
    var: &'static str,
    text: Option<String>,
}

impl Value {
    /// The value through `parse`; an error names the variable.
    fn required<T>(self, parse: impl FnOnce(&str) -> Result<T, Refused>) -> Result<T, ConfigError> {
        let text = self.text.unwrap_or_default();
        parse(&text).map_err(|r| ConfigError { var: self.var, reason: r.reason, value: r.shown.unwrap_or(text) })
    }

    /// `None` when unset, else the value through `parse`.
    fn optional<T>(self, parse: impl FnOnce(&str) -> Result<T, Refused>) -> Result<Option<T>, ConfigError> {
        if self.text.is_none() { Ok(None) } else { self.required(parse).map(Some) }
    }
}

/// Why a value was refused, and what of it the error may show (`None`: all of it).
struct Refused {
    reason: String,
    shown: Option<String>,
}

fn refuse(reason: impl Into<String>) -> Refused {
    Refused { reason: reason.into(), shown: None }
}

/// A refusal that shows `shown` instead of the whole value (a secret's length, a URL's scheme).
fn refuse_showing(reason: impl Into<String>, shown: String) -> Refused {
    Refused { reason: reason.into(), shown: Some(shown) }
}

fn text(v: &str) -> Result<String, Refused> {
    Ok(v.to_owned())
}

fn num<T>(min: T, max: T) -> impl FnOnce(&str) -> Result<T, Refused>
where
    T: FromStr + PartialOrd + Display + Copy,
{
    move |v| match v.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(refuse(format!("expected a whole number from {min} to {max}"))),
    }
}

fn parsed<T: FromStr>(reason: &'static str) -> impl FnOnce(&str) -> Result<T, Refused> {
    move |v| v.parse().map_err(|_| refuse(reason))
}

fn matching(ok: fn(&str) -> bool, reason: &'static str) -> impl FnOnce(&str) -> Result<String, Refused> {
    move |v| if ok(v) { Ok(v.to_owned()) } else { Err(refuse(reason)) }
}

const MQTT_NAME: &str = "expected 1–64 characters of [A-Za-z0-9_-]";

fn url(schemes: &'static [&'static str]) -> impl FnOnce(&str) -> Result<String, Refused> {
    move |v| {
        let ok = v.split_once("://").is_some_and(|(scheme, rest)| schemes.contains(&scheme) && !rest.is_empty());
        if ok {
            return Ok(v.to_owned());
        }
        // Never echo a URL that may carry a password: keep only its scheme.
        let scheme = v.split("://").next().unwrap_or_default().chars().take(16).collect();
        Err(refuse_showing(format!("expected a URL starting with {}://", schemes.join(":// or ")), scheme))
    }
}

fn service_urls(env: &Env) -> Result<BTreeMap<Domain, String>, ConfigError> {
    let mut urls = BTreeMap::new();
    for domain in Domain::ALL {
        if let Some(url) = env.get(service_url_var(domain)).optional(url(&["http"]))? {
            urls.insert(domain, url);
        }
    }
    Ok(urls)
}

/// `90`, `90s`, `15m`, `24h` or `2d`, within `min..=max`.
fn duration(min: Duration, max: Duration) -> impl FnOnce(&str) -> Result<Duration, Refused> {
    move |v| {
        let (digits, unit) = match v.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => v.split_at(i),
            None => (v, "s"),
        };
        let factor = match unit {
            "s" => Some(1),
            "m" => Some(60),
            "h" => Some(3600),
            "d" => Some(86_400),
            _ => None,
        };
        let secs = factor.zip(digits.parse::<u64>().ok()).and_then(|(f, n)| n.checked_mul(f));
        match secs.map(Duration::from_secs) {
            Some(d) if d >= min && d <= max => Ok(d),
            _ => Err(refuse(format!(
                "expected a duration such as 24h, 90m or 3600s from {}s to {}s",
                min.as_secs(),
                max.as_secs()
            ))),
        }
    }
}

/// `HH:MM` with two-digit minutes (chrono alone would read `2:5` as 02:05).
fn time_of_day(reason: &'static str) -> impl FnOnce(&str) -> Result<NaiveTime, Refused> {
    move |v| {
        let two_digit_minutes = v.split_once(':').is_some_and(|(_, m)| m.len() == 2);
        two_digit_minutes.then(|| NaiveTime::parse_from_str(v, "%H:%M").ok()).flatten().ok_or_else(|| refuse(reason))
    }
}

fn device_key_secret(v: &str) -> Result<Secret, Refused> {
    let chars = v.chars().count();
    if chars >= MIN_DEVICE_KEY_SECRET_CHARS {
        Ok(Secret::new(v))
    } else {
        // Never echo a secret, only its length.
        let reason = format!("expected at least {MIN_DEVICE_KEY_SECRET_CHARS} characters");
        Err(refuse_showing(reason, format!("<{chars} characters>")))
    }
}

/// A secret of 32+ characters (`PHOENIX_FORWARDING_SECRET`), checked like the device-key one.
fn long_secret(v: &str) -> Result<Secret, Refused> {
    device_key_secret(v)
}

/// `PHOENIX_SECRET_KEY`: configured, else generated outside production.
fn secret_key(v: Value, environment: Environment) -> Result<ServerSecret, ConfigError> {
    let var = v.var;
    let configured = v.optional(|s| {
        // Never echo a secret, not even a short one.
        let reason = format!("expected at least {} characters", ServerSecret::MIN_LEN);
        ServerSecret::from_text(s).ok_or_else(|| refuse_showing(reason, format!("<{} characters>", s.len())))
    })?;
    match configured {
        Some(secret) => Ok(secret),
        None if environment == Environment::Production => Err(ConfigError {
            var,
            reason: "required when PHOENIX_ENV=production (e.g. `openssl rand -hex 32`)".into(),
            value: String::new(),
        }),
        None => Ok(ServerSecret::generate()),
    }
}

/// `PHOENIX_CORS_ORIGINS`: a comma list of exact origins, `scheme://host[:port]` with
/// scheme `http` or `https`, no path. `*` is refused: an origin list is the point.
fn origins(value: &str) -> Result<Vec<String>, Refused> {
    let mut out: Vec<String> = Vec::new();
    for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        if origin.contains('*') {
            let reason = "wildcards are not allowed: list each browser origin exactly";
            return Err(refuse_showing(reason, origin.into()));
        }
        if !is_origin(origin) {
            let reason = "expected exact origins such as https://board.school.example or http://localhost:5173 (no path, no trailing slash)";
            return Err(refuse_showing(reason, origin.into()));
        }
        if !out.iter().any(|o| o == origin) {
            out.push(origin.to_owned());
        }
    }
    Ok(out)
}

/// `http(s)://host[:port]` as browsers serialise an origin (lowercase scheme and host).
fn is_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else { return false };
    if !matches!(scheme, "http" | "https") || rest.is_empty() {
        return false;
    }
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, tail)) if addr.parse::<std::net::Ipv6Addr>().is_ok() => (None, tail),
            _ => return false,
        },
        None => match rest.split_once(':') {
            Some((h, _)) => (Some(h), &rest[h.len()..]),
            None => (Some(rest), ""),
        },
    };
    let host_ok = host.is_none_or(|h| {
        !h.is_empty()
            && h.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-'))
            && !h.starts_with(['.', '-'])
            && !h.ends_with(['.', '-'])
    });
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(p) => p.parse::<u16>().is_ok_and(|n| n > 0) && p.bytes().all(|b| b.is_ascii_digit()),
    };
    host_ok && port_ok
}

fn is_mqtt_name(v: &str) -> bool {
    (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

fn is_topic_prefix(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/'))
        && !v.starts_with('/')
        && !v.ends_with('/')
}

#[cfg(test)]
mod tests;
