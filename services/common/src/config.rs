//! Configuration: one typed struct read from environment variables.
//!
//! Every variable has a documented default (see the README's configuration table, which
//! mirrors [`Config::VARIABLES`]); a bad value fails start-up with an error that names the
//! variable, the value and what was expected.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

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

/// All settings of a Phoenix process.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`: PostgreSQL URL. `None` lets `phoenix dev` start a private cluster.
    pub database_url: Option<String>,
    /// `PHOENIX_DB_POOL_SIZE`: maximum pooled connections per process.
    pub db_pool_size: u32,
    /// `PHOENIX_DB_POOL_TIMEOUT_MS`: how long a request waits for a connection before `Unavailable`.
    pub db_pool_timeout: Duration,
    /// `PHOENIX_LISTEN_HOST`: interface the gRPC services and the gateway listen on.
    pub listen_host: IpAddr,
    /// `PHOENIX_GRPC_BASE_PORT`: a domain listens on base + its offset; 0 = ephemeral ports.
    pub grpc_base_port: u16,
    /// `PHOENIX_GATEWAY_PORT`: the gateway's port (grpc-web for browsers); 0 = ephemeral.
    pub gateway_port: u16,
    /// `PHOENIX_SERVICES`: the domains `serve` runs (`all` or a comma list).
    pub services: String,
    /// `MQTT_URL`: external broker (`mqtt://host:port`). `None` = the embedded broker.
    pub mqtt_url: Option<String>,
    /// `PHOENIX_MQTT_PORT`: port of the embedded broker; 0 = ephemeral.
    pub mqtt_port: u16,
    /// `PHOENIX_MQTT_PREFIX`: topic prefix of the reader protocol.
    pub mqtt_prefix: String,
    /// `PHOENIX_ENV`: `development` or `production`.
    pub environment: Environment,
    /// `PHOENIX_LOG_FORMAT`: `pretty` or `json`.
    pub log_format: LogFormat,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: OTLP/gRPC collector; unset = no export.
    pub otlp_endpoint: Option<String>,
    /// `PHOENIX_SHUTDOWN_GRACE_SECS`: how long in-flight requests get on SIGTERM.
    pub shutdown_grace: Duration,
    /// `PHOENIX_DEVICE_KEY_SECRET`: server secret every reader's device key is derived from
    /// (iot.devices: key = HMAC-SHA256(secret, device_id:key_version)). `None` = not configured
    /// (`phoenix dev` generates one in its data directory; iot and the gateway refuse to start).
    pub device_key_secret: Option<Secret>,
    /// `PHOENIX_SCAN_MAX_AGE`: how old a scan's `scanned_at` may be (offline replay window).
    pub scan_max_age: Duration,
    /// `PHOENIX_TIMEZONE`: the school's time zone; business dates are its calendar dates.
    pub timezone: chrono_tz::Tz,
    /// `PHOENIX_DAILY_CHECKOUT_TIME`: local time from which pupils may leave through the
    /// entrance reader whatever their guardians' pickup rule (behaviour.md step 7).
    pub daily_checkout_time: chrono::NaiveTime,
    /// `PHOENIX_READER_RATE_LIMIT`: sustained scans per second one reader may send (0 = no
    /// limit); beyond it and its burst, scans get `rejected`/`rate_limited`.
    pub reader_rate_limit: u32,
    /// `PHOENIX_READER_BURST`: scans one reader may send at once (an offline buffer replay).
    pub reader_burst: u32,
    /// `PHOENIX_MQTT_CLIENT_ID`: the gateway's fixed MQTT client id (its persistent session).
    pub mqtt_client_id: String,
    /// `PHOENIX_MQTT_SHARED_GROUP`: when set, the gateway subscribes as `$share/{group}/…` so
    /// several replicas split the readers' messages.
    pub mqtt_shared_group: Option<String>,
    /// `PHOENIX_<DOMAIN>_URL` ([`service_url_var`]): where the gateway reaches each domain
    /// (forwarding browser calls; `auth` also for its service credential, `active` for
    /// ProcessScan). A domain without an entry is on its port on the listen host
    /// ([`Config::service_url`]).
    pub service_urls: BTreeMap<Domain, String>,
    /// `PHOENIX_CORS_ORIGINS`: exact browser origins (`https://host[:port]`) allowed to call
    /// the gateway cross-origin; empty = same-origin only. Never `*`.
    pub cors_origins: Vec<String>,
    /// `PHOENIX_GATEWAY_MAX_REQUEST_BYTES`: largest request body the gateway accepts.
    pub gateway_max_request_bytes: u64,
    /// `PHOENIX_GATEWAY_RATE_LIMIT`: sustained API requests per second per client at the
    /// gateway (token bucket); 0 = no limit.
    pub gateway_rate_limit: f64,
    /// `PHOENIX_GATEWAY_RATE_BURST`: requests a client may make at once before the rate applies.
    pub gateway_rate_burst: u32,
    /// `PHOENIX_GATEWAY_CLIENT_ID`: the gateway's service client (`auth.service_clients`).
    pub gateway_client_id: String,
    /// `PHOENIX_GATEWAY_CLIENT_SECRET`: its secret (`phoenix create-service-client` prints it
    /// once; `phoenix dev` creates one itself).
    pub gateway_client_secret: Option<Secret>,
    /// `PHOENIX_SECRET_KEY`: the server secret (encrypts stored signing keys, keys email
    /// hashes). Generated per process in development when unset; required in production.
    pub secret_key: ServerSecret,
    /// `PHOENIX_CLEANUP_TIME`: local time (in [`Config::timezone`]) of the daily retention
    /// purge, run by the process serving the config domain; `None` (`off`) = no schedule
    /// (e.g. when a Kubernetes CronJob runs `phoenix cleanup` instead).
    pub cleanup_time: Option<chrono::NaiveTime>,
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
    /// Every variable [`Config`] reads, its default and its meaning (the README mirrors this).
    pub const VARIABLES: &'static [(&'static str, &'static str, &'static str)] = &[
        ("DATABASE_URL", "(dev: private cluster)", "PostgreSQL URL, e.g. postgres://phoenix@db:5432/phoenix"),
        ("PHOENIX_DB_POOL_SIZE", "10", "maximum pooled database connections per process (1–1000)"),
        ("PHOENIX_DB_POOL_TIMEOUT_MS", "5000", "wait for a pooled connection before answering Unavailable"),
        ("PHOENIX_LISTEN_HOST", "127.0.0.1", "interface for gRPC services and the gateway (0.0.0.0 in containers)"),
        ("PHOENIX_GRPC_BASE_PORT", "50051", "domain N listens on base + N (auth 0 … audit 10); 0 = ephemeral"),
        ("PHOENIX_GATEWAY_PORT", "8080", "gateway port (dashboard, gRPC and grpc-web); 0 = ephemeral"),
        ("PHOENIX_SERVICES", "all", "domains `phoenix serve` runs: `all` or e.g. `auth,users`"),
        ("MQTT_URL", "(dev: embedded broker)", "external MQTT broker, mqtt://host:port"),
        ("PHOENIX_MQTT_PORT", "1883", "embedded broker port; 0 = ephemeral"),
        ("PHOENIX_MQTT_PREFIX", "phoenix", "reader-protocol topic prefix"),
        ("PHOENIX_ENV", "development", "`production` refuses generated or weak secrets"),
        ("PHOENIX_LOG_FORMAT", "pretty", "`pretty` or `json`"),
        ("RUST_LOG", "info", "log filter (tracing EnvFilter syntax)"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "(off)", "OTLP/gRPC collector for traces, e.g. http://otel:4317"),
        ("PHOENIX_SHUTDOWN_GRACE_SECS", "10", "grace period for in-flight requests on SIGTERM"),
        (
            "PHOENIX_DEVICE_KEY_SECRET",
            "(dev: generated in the data directory)",
            "server secret (32+ characters) reader device keys are derived from; required by iot and the gateway",
        ),
        ("PHOENIX_SCAN_MAX_AGE", "24h", "oldest accepted reader scan (`scanned_at`), e.g. 24h, 90m, 3600s"),
        ("PHOENIX_TIMEZONE", "Europe/Berlin", "school time zone: business dates (attendance, sessions)"),
        (
            "PHOENIX_DAILY_CHECKOUT_TIME",
            "15:00",
            "local time (HH:MM) from which the entrance reader lets every pupil go home; before it, a pupil with a pickup time today waits for it",
        ),
        ("PHOENIX_READER_RATE_LIMIT", "20", "scans per second one reader may send; more get `rate_limited` (0 = off)"),
        ("PHOENIX_READER_BURST", "100", "scans one reader may send at once, e.g. an offline buffer replay"),
        ("PHOENIX_MQTT_CLIENT_ID", "phoenix-gateway", "the gateway's MQTT client id (persistent session)"),
        ("PHOENIX_MQTT_SHARED_GROUP", "(off)", "shared-subscription group, so gateway replicas split the scans"),
        (
            "PHOENIX_AUTH_URL",
            "(the auth port on the listen host)",
            "where the gateway forwards auth calls and exchanges its service credential",
        ),
        ("PHOENIX_USERS_URL", "(the users port on the listen host)", "where the gateway forwards users calls"),
        (
            "PHOENIX_EDUCATION_URL",
            "(the education port on the listen host)",
            "where the gateway forwards education calls",
        ),
        (
            "PHOENIX_FACILITIES_URL",
            "(the facilities port on the listen host)",
            "where the gateway forwards facilities calls",
        ),
        (
            "PHOENIX_ACTIVITIES_URL",
            "(the activities port on the listen host)",
            "where the gateway forwards activities calls",
        ),
        (
            "PHOENIX_ACTIVE_URL",
            "(the active port on the listen host)",
            "where the gateway forwards active calls and calls ProcessScan",
        ),
        ("PHOENIX_SCHEDULE_URL", "(the schedule port on the listen host)", "where the gateway forwards schedule calls"),
        ("PHOENIX_IOT_URL", "(the iot port on the listen host)", "where the gateway forwards iot calls"),
        ("PHOENIX_FEEDBACK_URL", "(the feedback port on the listen host)", "where the gateway forwards feedback calls"),
        ("PHOENIX_CONFIG_URL", "(the config port on the listen host)", "where the gateway forwards config calls"),
        ("PHOENIX_AUDIT_URL", "(the audit port on the listen host)", "where the gateway forwards audit calls"),
        (
            "PHOENIX_CORS_ORIGINS",
            "(none: same-origin only)",
            "browser origins allowed to call the gateway, comma list of exact origins such as https://board.school.example (no `*`)",
        ),
        (
            "PHOENIX_GATEWAY_MAX_REQUEST_BYTES",
            "1048576",
            "largest request body the gateway accepts (1 KiB–64 MiB); larger: HTTP 413 / RESOURCE_EXHAUSTED",
        ),
        (
            "PHOENIX_GATEWAY_RATE_LIMIT",
            "50",
            "API requests per second per client at the gateway (per account when its token verifies, else per IP); 0 = off",
        ),
        ("PHOENIX_GATEWAY_RATE_BURST", "100", "requests a client may make at once before the rate limit applies"),
        ("PHOENIX_GATEWAY_CLIENT_ID", "gateway", "the gateway's service client id"),
        (
            "PHOENIX_GATEWAY_CLIENT_SECRET",
            "(dev: created by `phoenix dev`)",
            "the gateway's service client secret (`phoenix create-service-client` prints it once); required by `phoenix gateway`",
        ),
        (
            "PHOENIX_SECRET_KEY",
            "(dev: generated; `phoenix dev` keeps it in the data directory)",
            "server secret, 32+ characters: encrypts stored JWT signing keys and keys email hashes; required in production",
        ),
        (
            "PHOENIX_CLEANUP_TIME",
            "02:00",
            "local time (HH:MM, school time zone) of the daily retention purge, run by the process serving config; `off` = none",
        ),
    ];

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `lookup` (tests pass a map instead of the environment).
    /// An empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| lookup(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let environment = match get("PHOENIX_ENV").as_deref() {
            None | Some("development") | Some("dev") => Environment::Development,
            Some("production") | Some("prod") => Environment::Production,
            Some(v) => {
                return Err(ConfigError {
                    var: "PHOENIX_ENV",
                    reason: "expected `development` or `production`".into(),
                    value: v.into(),
                });
            }
        };
        let secret_key = match get("PHOENIX_SECRET_KEY") {
            Some(v) => ServerSecret::from_text(&v).ok_or_else(|| ConfigError {
                var: "PHOENIX_SECRET_KEY",
                reason: format!("expected at least {} characters", ServerSecret::MIN_LEN),
                // Never echo a secret, not even a short one.
                value: format!("<{} characters>", v.len()),
            })?,
            None if environment == Environment::Production => {
                return Err(ConfigError {
                    var: "PHOENIX_SECRET_KEY",
                    reason: "required when PHOENIX_ENV=production (e.g. `openssl rand -hex 32`)".into(),
                    value: String::new(),
                });
            }
            None => ServerSecret::generate(),
        };
        Ok(Self {
            database_url: get("DATABASE_URL")
                .map(|v| parse_url("DATABASE_URL", v, &["postgres", "postgresql"]))
                .transpose()?,
            db_pool_size: parse_num("PHOENIX_DB_POOL_SIZE", get("PHOENIX_DB_POOL_SIZE"), 10, 1, 1000)?,
            db_pool_timeout: Duration::from_millis(parse_num(
                "PHOENIX_DB_POOL_TIMEOUT_MS",
                get("PHOENIX_DB_POOL_TIMEOUT_MS"),
                5000,
                1,
                600_000,
            )?),
            listen_host: match get("PHOENIX_LISTEN_HOST") {
                None => IpAddr::from([127, 0, 0, 1]),
                Some(v) => v.parse().map_err(|_| ConfigError {
                    var: "PHOENIX_LISTEN_HOST",
                    reason: "expected an IP address such as 127.0.0.1 or 0.0.0.0".into(),
                    value: v,
                })?,
            },
            grpc_base_port: parse_num("PHOENIX_GRPC_BASE_PORT", get("PHOENIX_GRPC_BASE_PORT"), 50051, 0, 65_000)?,
            gateway_port: parse_num("PHOENIX_GATEWAY_PORT", get("PHOENIX_GATEWAY_PORT"), 8080, 0, 65_535)?,
            services: get("PHOENIX_SERVICES").unwrap_or_else(|| "all".into()),
            mqtt_url: get("MQTT_URL").map(|v| parse_url("MQTT_URL", v, &["mqtt", "tcp"])).transpose()?,
            mqtt_port: parse_num("PHOENIX_MQTT_PORT", get("PHOENIX_MQTT_PORT"), 1883, 0, 65_535)?,
            mqtt_prefix: match get("PHOENIX_MQTT_PREFIX") {
                None => "phoenix".into(),
                Some(v) if is_topic_prefix(&v) => v,
                Some(v) => {
                    return Err(ConfigError {
                        var: "PHOENIX_MQTT_PREFIX",
                        reason: "expected 1–64 characters of [A-Za-z0-9_-/] without wildcards".into(),
                        value: v,
                    });
                }
            },
            environment,
            log_format: match get("PHOENIX_LOG_FORMAT").as_deref() {
                None | Some("pretty") => LogFormat::Pretty,
                Some("json") => LogFormat::Json,
                Some(v) => {
                    return Err(ConfigError {
                        var: "PHOENIX_LOG_FORMAT",
                        reason: "expected `pretty` or `json`".into(),
                        value: v.into(),
                    });
                }
            },
            otlp_endpoint: get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            shutdown_grace: Duration::from_secs(parse_num(
                "PHOENIX_SHUTDOWN_GRACE_SECS",
                get("PHOENIX_SHUTDOWN_GRACE_SECS"),
                10,
                0,
                3600,
            )?),
            device_key_secret: match get("PHOENIX_DEVICE_KEY_SECRET") {
                None => None,
                Some(v) if v.chars().count() >= MIN_DEVICE_KEY_SECRET_CHARS => Some(Secret(v)),
                Some(v) => {
                    return Err(ConfigError {
                        var: "PHOENIX_DEVICE_KEY_SECRET",
                        reason: format!("expected at least {MIN_DEVICE_KEY_SECRET_CHARS} characters"),
                        // Never echo a secret, only its length.
                        value: format!("<{} characters>", v.chars().count()),
                    });
                }
            },
            scan_max_age: parse_duration(
                "PHOENIX_SCAN_MAX_AGE",
                get("PHOENIX_SCAN_MAX_AGE"),
                Duration::from_secs(24 * 3600),
                Duration::from_secs(60),
                Duration::from_secs(30 * 24 * 3600),
            )?,
            timezone: match get("PHOENIX_TIMEZONE") {
                None => chrono_tz::Europe::Berlin,
                Some(v) => v.parse().map_err(|_| ConfigError {
                    var: "PHOENIX_TIMEZONE",
                    reason: "expected an IANA time zone such as Europe/Berlin".into(),
                    value: v,
                })?,
            },
            daily_checkout_time: match get("PHOENIX_DAILY_CHECKOUT_TIME") {
                None => chrono::NaiveTime::from_hms_opt(15, 0, 0).expect("valid time"),
                Some(v) => parse_time_of_day(&v).ok_or_else(|| ConfigError {
                    var: "PHOENIX_DAILY_CHECKOUT_TIME",
                    reason: "expected a time of day such as 15:00 (HH:MM)".into(),
                    value: v,
                })?,
            },
            reader_rate_limit: parse_num("PHOENIX_READER_RATE_LIMIT", get("PHOENIX_READER_RATE_LIMIT"), 20, 0, 10_000)?,
            reader_burst: parse_num("PHOENIX_READER_BURST", get("PHOENIX_READER_BURST"), 100, 1, 100_000)?,
            mqtt_client_id: match get("PHOENIX_MQTT_CLIENT_ID") {
                None => "phoenix-gateway".into(),
                Some(v) if is_mqtt_name(&v) => v,
                Some(v) => {
                    return Err(ConfigError {
                        var: "PHOENIX_MQTT_CLIENT_ID",
                        reason: "expected 1–64 characters of [A-Za-z0-9_-]".into(),
                        value: v,
                    });
                }
            },
            mqtt_shared_group: match get("PHOENIX_MQTT_SHARED_GROUP") {
                None => None,
                Some(v) if is_mqtt_name(&v) => Some(v),
                Some(v) => {
                    return Err(ConfigError {
                        var: "PHOENIX_MQTT_SHARED_GROUP",
                        reason: "expected 1–64 characters of [A-Za-z0-9_-]".into(),
                        value: v,
                    });
                }
            },
            service_urls: {
                let mut urls = BTreeMap::new();
                for domain in Domain::ALL {
                    let var = service_url_var(domain);
                    if let Some(v) = get(var) {
                        urls.insert(domain, parse_url(var, v, &["http"])?);
                    }
                }
                urls
            },
            cors_origins: get("PHOENIX_CORS_ORIGINS").map(parse_origins).transpose()?.unwrap_or_default(),
            gateway_max_request_bytes: parse_num(
                "PHOENIX_GATEWAY_MAX_REQUEST_BYTES",
                get("PHOENIX_GATEWAY_MAX_REQUEST_BYTES"),
                1024 * 1024,
                1024,
                64 * 1024 * 1024,
            )?,
            gateway_rate_limit: parse_num(
                "PHOENIX_GATEWAY_RATE_LIMIT",
                get("PHOENIX_GATEWAY_RATE_LIMIT"),
                50.0,
                0.0,
                100_000.0,
            )?,
            gateway_rate_burst: parse_num(
                "PHOENIX_GATEWAY_RATE_BURST",
                get("PHOENIX_GATEWAY_RATE_BURST"),
                100,
                1,
                100_000,
            )?,
            gateway_client_id: match get("PHOENIX_GATEWAY_CLIENT_ID") {
                None => "gateway".into(),
                Some(v) if is_mqtt_name(&v) => v,
                Some(v) => {
                    return Err(ConfigError {
                        var: "PHOENIX_GATEWAY_CLIENT_ID",
                        reason: "expected 1–64 characters of [A-Za-z0-9_-]".into(),
                        value: v,
                    });
                }
            },
            gateway_client_secret: get("PHOENIX_GATEWAY_CLIENT_SECRET").map(Secret),
            secret_key,
            cleanup_time: match get("PHOENIX_CLEANUP_TIME") {
                None => chrono::NaiveTime::from_hms_opt(2, 0, 0),
                Some(v) if v.eq_ignore_ascii_case("off") => None,
                Some(v) => Some(parse_time_of_day(&v).ok_or_else(|| ConfigError {
                    var: "PHOENIX_CLEANUP_TIME",
                    reason: "expected a local time HH:MM (24 h) such as 02:00, or `off`".into(),
                    value: v,
                })?),
            },
        })
    }
}

impl Config {
    /// Where `domain` is reached when `PHOENIX_<DOMAIN>_URL` is set; `None` = its port on
    /// the listen host (the caller knows the port).
    pub fn service_url(&self, domain: Domain) -> Option<&str> {
        self.service_urls.get(&domain).map(String::as_str)
    }
}

/// The variable naming where the gateway reaches `domain`: `PHOENIX_<DOMAIN>_URL`.
pub const fn service_url_var(domain: Domain) -> &'static str {
    match domain {
        Domain::Auth => "PHOENIX_AUTH_URL",
        Domain::Users => "PHOENIX_USERS_URL",
        Domain::Education => "PHOENIX_EDUCATION_URL",
        Domain::Facilities => "PHOENIX_FACILITIES_URL",
        Domain::Activities => "PHOENIX_ACTIVITIES_URL",
        Domain::Active => "PHOENIX_ACTIVE_URL",
        Domain::Schedule => "PHOENIX_SCHEDULE_URL",
        Domain::Iot => "PHOENIX_IOT_URL",
        Domain::Feedback => "PHOENIX_FEEDBACK_URL",
        Domain::Config => "PHOENIX_CONFIG_URL",
        Domain::Audit => "PHOENIX_AUDIT_URL",
    }
}

/// `PHOENIX_CORS_ORIGINS`: a comma list of exact origins, `scheme://host[:port]` with
/// scheme `http` or `https`, no path. `*` is refused: an origin list is the point.
fn parse_origins(value: String) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let reason = if origin == "*" || origin.contains('*') {
            Some("wildcards are not allowed: list each browser origin exactly")
        } else if !is_origin(origin) {
            Some(
                "expected exact origins such as https://board.school.example or http://localhost:5173 (no path, no trailing slash)",
            )
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(ConfigError { var: "PHOENIX_CORS_ORIGINS", reason: reason.into(), value: origin.into() });
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

/// Parses `90`, `90s`, `15m`, `24h` or `2d` into a duration within `min..=max`.
fn parse_duration(
    var: &'static str,
    value: Option<String>,
    default: Duration,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let Some(value) = value else { return Ok(default) };
    let (digits, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => value.split_at(i),
        None => (value.as_str(), "s"),
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
        _ => Err(ConfigError {
            var,
            reason: format!(
                "expected a duration such as 24h, 90m or 3600s from {}s to {}s",
                min.as_secs(),
                max.as_secs()
            ),
            value,
        }),
    }
}

/// `HH:MM` with two-digit minutes (chrono alone would read `2:5` as 02:05).
fn parse_time_of_day(v: &str) -> Option<chrono::NaiveTime> {
    let (_, minutes) = v.split_once(':')?;
    if minutes.len() != 2 {
        return None;
    }
    chrono::NaiveTime::parse_from_str(v, "%H:%M").ok()
}

fn is_mqtt_name(v: &str) -> bool {
    (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

fn parse_num<T>(var: &'static str, value: Option<String>, default: T, min: T, max: T) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(value) = value else { return Ok(default) };
    match value.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(ConfigError { var, reason: format!("expected a whole number from {min} to {max}"), value }),
    }
}

fn parse_url(var: &'static str, value: String, schemes: &[&str]) -> Result<String, ConfigError> {
    let ok = value.split_once("://").is_some_and(|(scheme, rest)| schemes.contains(&scheme) && !rest.is_empty());
    if ok {
        Ok(value)
    } else {
        Err(ConfigError {
            var,
            reason: format!("expected a URL starting with {}://", schemes.join(":// or ")),
            // Never echo a URL that may carry a password: keep only its scheme.
            value: value.split("://").next().unwrap_or_default().chars().take(16).collect(),
        })
    }
}

fn is_topic_prefix(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/'))
        && !v.starts_with('/')
        && !v.ends_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.database_url, None);
        assert_eq!(c.db_pool_size, 10);
        assert_eq!(c.grpc_base_port, 50051);
        assert_eq!(c.gateway_port, 8080);
        assert_eq!(c.mqtt_prefix, "phoenix");
        assert_eq!(c.environment, Environment::Development);
        assert_eq!(c.log_format, LogFormat::Pretty);
        assert_eq!(c.services, "all");
        assert_eq!(c.otlp_endpoint, None);
        assert_eq!(c.device_key_secret, None);
        assert_eq!(c.scan_max_age, Duration::from_secs(24 * 3600));
        assert_eq!(c.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(c.mqtt_client_id, "phoenix-gateway");
        assert_eq!(c.mqtt_shared_group, None);
        assert!(c.service_urls.is_empty());
        assert!(c.cors_origins.is_empty());
        assert_eq!(c.gateway_max_request_bytes, 1024 * 1024);
        assert_eq!(c.gateway_rate_limit, 50.0);
        assert_eq!(c.gateway_rate_burst, 100);
        assert_eq!(c.daily_checkout_time, chrono::NaiveTime::from_hms_opt(15, 0, 0).expect("time"));
        assert_eq!((c.reader_rate_limit, c.reader_burst), (20, 100));
    }

    #[test]
    fn checkout_time_and_reader_limits_are_validated() {
        let c = config(&[
            ("PHOENIX_DAILY_CHECKOUT_TIME", "16:30"),
            ("PHOENIX_READER_RATE_LIMIT", "0"),
            ("PHOENIX_READER_BURST", "5"),
        ])
        .expect("valid");
        assert_eq!(c.daily_checkout_time, chrono::NaiveTime::from_hms_opt(16, 30, 0).expect("time"));
        assert_eq!((c.reader_rate_limit, c.reader_burst), (0, 5));
        for (var, bad) in [
            ("PHOENIX_DAILY_CHECKOUT_TIME", "4pm"),
            ("PHOENIX_DAILY_CHECKOUT_TIME", "25:00"),
            ("PHOENIX_READER_BURST", "0"),
        ] {
            assert_eq!(config(&[(var, bad)]).unwrap_err().var, var, "{var}={bad}");
        }
    }

    #[test]
    fn cleanup_time_defaults_to_two_at_night() {
        let c = config(&[]).expect("defaults are valid");
        assert_eq!(c.cleanup_time, chrono::NaiveTime::from_hms_opt(2, 0, 0));
    }

    #[test]
    fn cleanup_time_is_a_local_time_or_off() {
        let c = config(&[("PHOENIX_CLEANUP_TIME", "3:30")]).expect("valid");
        assert_eq!(c.cleanup_time, chrono::NaiveTime::from_hms_opt(3, 30, 0));
        assert_eq!(config(&[("PHOENIX_CLEANUP_TIME", "OFF")]).expect("valid").cleanup_time, None);
        for bad in ["25:00", "2:5", "02:00:00", "noon"] {
            let err = config(&[("PHOENIX_CLEANUP_TIME", bad)]).unwrap_err();
            assert_eq!(err.var, "PHOENIX_CLEANUP_TIME", "{bad}");
        }
    }

    /// The README's configuration table is generated from [`Config::VARIABLES`]:
    /// `PHOENIX_UPDATE_README=1 cargo test -p phoenix-common readme` rewrites it.
    #[test]
    fn readme_configuration_table_matches_variables() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let readme = std::fs::read_to_string(&path).expect("README.md");
        let header = "| variable | default | meaning |\n|---|---|---|\n";
        let table: String = Config::VARIABLES
            .iter()
            .map(|(var, default, meaning)| {
                let default = if default.starts_with('(') { (*default).to_owned() } else { format!("`{default}`") };
                format!("| `{var}` | {default} | {meaning} |\n")
            })
            .collect();
        let start = readme.find(header).expect("README has the configuration table") + header.len();
        let end = readme[start..].find("\n\n").map_or(readme.len(), |i| start + i + 1);
        if readme[start..end] != table {
            if std::env::var_os("PHOENIX_UPDATE_README").is_some() {
                let updated = format!("{}{table}{}", &readme[..start], &readme[end..]);
                std::fs::write(&path, updated).expect("write README.md");
            } else {
                panic!(
                    "README.md's configuration table is out of date; run \
                     `PHOENIX_UPDATE_README=1 cargo test -p phoenix-common readme`. Expected:\n{table}"
                );
            }
        }
    }

    #[test]
    fn device_key_secret_is_checked_and_never_echoed() {
        let err = config(&[("PHOENIX_DEVICE_KEY_SECRET", "short-secret")]).unwrap_err();
        assert_eq!(err.var, "PHOENIX_DEVICE_KEY_SECRET");
        assert!(!err.to_string().contains("short-secret"), "{err}");
        let long = "s".repeat(40);
        let c = config(&[("PHOENIX_DEVICE_KEY_SECRET", &long)]).expect("valid");
        assert_eq!(c.device_key_secret.as_ref().map(Secret::expose), Some(long.as_str()));
        assert!(!format!("{c:?}").contains(&long), "Debug must not print the secret");
    }

    #[test]
    fn reader_settings_are_parsed() {
        let c = config(&[
            ("PHOENIX_SCAN_MAX_AGE", "90m"),
            ("PHOENIX_TIMEZONE", "Europe/Vienna"),
            ("PHOENIX_MQTT_CLIENT_ID", "gw-1"),
            ("PHOENIX_MQTT_SHARED_GROUP", "gateways"),
            ("PHOENIX_ACTIVE_URL", "http://active:50056"),
        ])
        .expect("valid");
        assert_eq!(c.scan_max_age, Duration::from_secs(90 * 60));
        assert_eq!(c.timezone, chrono_tz::Europe::Vienna);
        assert_eq!(c.mqtt_client_id, "gw-1");
        assert_eq!(c.mqtt_shared_group.as_deref(), Some("gateways"));
        assert_eq!(c.service_url(Domain::Active), Some("http://active:50056"));
        assert_eq!(c.service_url(Domain::Users), None);
        assert_eq!(config(&[("PHOENIX_SCAN_MAX_AGE", "3600")]).expect("secs").scan_max_age.as_secs(), 3600);
        for bad in ["0", "10s", "1y", "h", "31d", "-5m"] {
            assert_eq!(config(&[("PHOENIX_SCAN_MAX_AGE", bad)]).unwrap_err().var, "PHOENIX_SCAN_MAX_AGE", "{bad}");
        }
        assert_eq!(config(&[("PHOENIX_TIMEZONE", "Mars/Olympus")]).unwrap_err().var, "PHOENIX_TIMEZONE");
        assert_eq!(config(&[("PHOENIX_MQTT_CLIENT_ID", "a/b")]).unwrap_err().var, "PHOENIX_MQTT_CLIENT_ID");
        assert_eq!(config(&[("PHOENIX_MQTT_SHARED_GROUP", "a+")]).unwrap_err().var, "PHOENIX_MQTT_SHARED_GROUP");
        assert_eq!(config(&[("PHOENIX_ACTIVE_URL", "active:1")]).unwrap_err().var, "PHOENIX_ACTIVE_URL");
    }

    #[test]
    fn every_domain_has_an_upstream_url_variable() {
        for domain in Domain::ALL {
            let var = service_url_var(domain);
            assert_eq!(var, format!("PHOENIX_{}_URL", domain.name().to_uppercase()));
            assert!(Config::VARIABLES.iter().any(|(v, _, _)| *v == var), "{var} is not in Config::VARIABLES");
            let c = config(&[(var, "http://upstream:1")]).expect("valid");
            assert_eq!(c.service_url(domain), Some("http://upstream:1"));
            assert_eq!(config(&[(var, "upstream:1")]).unwrap_err().var, var);
        }
    }

    #[test]
    fn cors_origins_are_exact_and_never_a_wildcard() {
        let c = config(&[(
            "PHOENIX_CORS_ORIGINS",
            " https://board.school.example, http://localhost:5173 ,http://[::1]:8080,https://board.school.example",
        )])
        .expect("valid");
        assert_eq!(c.cors_origins, ["https://board.school.example", "http://localhost:5173", "http://[::1]:8080"]);
        for bad in [
            "*",
            "https://*.school.example",
            "board.school.example",
            "https://board.school.example/",
            "https://Board.example",
            "ftp://x",
            "https://x:0",
            "https://x:99999",
            "https://x/path",
            "null",
        ] {
            let err = config(&[("PHOENIX_CORS_ORIGINS", bad)]).unwrap_err();
            assert_eq!(err.var, "PHOENIX_CORS_ORIGINS", "{bad}");
        }
        assert!(config(&[("PHOENIX_CORS_ORIGINS", "*")]).unwrap_err().reason.contains("wildcard"));
    }

    #[test]
    fn gateway_limits_are_parsed_and_bounded() {
        let c = config(&[
            ("PHOENIX_GATEWAY_MAX_REQUEST_BYTES", "4096"),
            ("PHOENIX_GATEWAY_RATE_LIMIT", "0.5"),
            ("PHOENIX_GATEWAY_RATE_BURST", "3"),
        ])
        .expect("valid");
        assert_eq!((c.gateway_max_request_bytes, c.gateway_rate_limit, c.gateway_rate_burst), (4096, 0.5, 3));
        assert_eq!(config(&[("PHOENIX_GATEWAY_RATE_LIMIT", "0")]).expect("off").gateway_rate_limit, 0.0);
        for (var, bad) in [
            ("PHOENIX_GATEWAY_MAX_REQUEST_BYTES", "10"),
            ("PHOENIX_GATEWAY_RATE_LIMIT", "-1"),
            ("PHOENIX_GATEWAY_RATE_LIMIT", "NaN"),
            ("PHOENIX_GATEWAY_RATE_LIMIT", "inf"),
            ("PHOENIX_GATEWAY_RATE_BURST", "0"),
        ] {
            assert_eq!(config(&[(var, bad)]).unwrap_err().var, var, "{bad}");
        }
    }

    #[test]
    fn bad_number_names_the_variable_and_range() {
        let err = config(&[("PHOENIX_DB_POOL_SIZE", "lots")]).unwrap_err();
        assert_eq!(err.var, "PHOENIX_DB_POOL_SIZE");
        assert_eq!(err.to_string(), "PHOENIX_DB_POOL_SIZE: expected a whole number from 1 to 1000 (got \"lots\")");
        assert_eq!(config(&[("PHOENIX_DB_POOL_SIZE", "0")]).unwrap_err().var, "PHOENIX_DB_POOL_SIZE");
    }

    #[test]
    fn bad_database_url_does_not_echo_credentials() {
        let err = config(&[("DATABASE_URL", "mysql://root:secret@db/x")]).unwrap_err();
        assert_eq!(err.var, "DATABASE_URL");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn enums_and_hosts_are_validated() {
        assert_eq!(config(&[("PHOENIX_ENV", "staging")]).unwrap_err().var, "PHOENIX_ENV");
        assert_eq!(config(&[("PHOENIX_LOG_FORMAT", "xml")]).unwrap_err().var, "PHOENIX_LOG_FORMAT");
        assert_eq!(config(&[("PHOENIX_LISTEN_HOST", "localhost:1")]).unwrap_err().var, "PHOENIX_LISTEN_HOST");
        assert_eq!(config(&[("PHOENIX_MQTT_PREFIX", "a/#")]).unwrap_err().var, "PHOENIX_MQTT_PREFIX");
        let c = config(&[
            ("PHOENIX_ENV", "production"),
            ("PHOENIX_SECRET_KEY", "0123456789abcdef0123456789abcdef"),
            ("PHOENIX_LOG_FORMAT", "json"),
            ("PHOENIX_LISTEN_HOST", "0.0.0.0"),
        ])
        .expect("valid");
        assert_eq!(c.environment, Environment::Production);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.listen_host.to_string(), "0.0.0.0");
    }

    #[test]
    fn secret_key_is_required_in_production_and_never_echoed() {
        let err = config(&[("PHOENIX_ENV", "production")]).unwrap_err();
        assert_eq!(err.var, "PHOENIX_SECRET_KEY");
        let err = config(&[("PHOENIX_SECRET_KEY", "short-secret")]).unwrap_err();
        assert_eq!(err.var, "PHOENIX_SECRET_KEY");
        assert!(!err.to_string().contains("short-secret"), "{err}");
        let dev = config(&[]).expect("dev generates one");
        assert!(dev.secret_key.is_generated());
        assert_ne!(dev.secret_key, config(&[]).expect("dev").secret_key, "generated secrets differ");
        assert!(!format!("{dev:?}").contains(&dev.secret_key.expose_text()), "Debug never shows the secret");
        let set = config(&[("PHOENIX_SECRET_KEY", "0123456789abcdef0123456789abcdef")]).expect("valid");
        assert!(!set.secret_key.is_generated());
        assert_ne!(set.secret_key.derive_key("a"), set.secret_key.derive_key("b"));
        assert_ne!(set.secret_key.hmac_sha256(b"x@y.de"), dev.secret_key.hmac_sha256(b"x@y.de"));
    }

    #[test]
    fn blank_values_count_as_unset() {
        let c = config(&[("DATABASE_URL", "  "), ("MQTT_URL", "")]).expect("valid");
        assert_eq!(c.database_url, None);
        assert_eq!(c.mqtt_url, None);
    }
}
