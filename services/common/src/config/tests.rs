//! Unit tests of [`super`]: defaults, each parser's bounds, secrets never echoed, the README table.

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
        .map(|Var { name, default, help }| {
            let default = if default.starts_with('(') { (*default).to_owned() } else { format!("`{default}`") };
            format!("| `{name}` | {default} | {help} |\n")
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
        assert!(Config::VARIABLES.iter().any(|v| v.name == var), "{var} is not in Config::VARIABLES");
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

#[test]
fn mail_settings_are_checked_and_the_smtp_password_never_echoed() {
    let c = config(&[]).expect("defaults");
    assert_eq!((c.smtp_url, c.mail_from, c.public_url), (None, None, None));
    assert_eq!(c.mail_language, MailLanguage::De);
    let url = "smtps://mailer:hunter2-secret@mail.school.example:465";
    let c = config(&[
        ("PHOENIX_SMTP_URL", url),
        ("PHOENIX_MAIL_FROM", "Phoenix <phoenix@school.example>"),
        ("PHOENIX_PUBLIC_URL", "https://phoenix.school.example/"),
        ("PHOENIX_MAIL_LANGUAGE", "en"),
    ])
    .expect("valid");
    assert_eq!(c.smtp_url.as_ref().map(Secret::expose), Some(url));
    assert_eq!(c.public_url.as_deref(), Some("https://phoenix.school.example"));
    assert_eq!(c.mail_language, MailLanguage::En);
    assert!(!format!("{c:?}").contains("hunter2"), "Debug must not print the SMTP password");
    // A real server needs a sender and a public address; `log` needs neither.
    let err =
        config(&[("PHOENIX_SMTP_URL", "smtp://mail:25"), ("PHOENIX_PUBLIC_URL", "http://x.example")]).unwrap_err();
    assert_eq!(err.var, "PHOENIX_MAIL_FROM");
    let err = config(&[("PHOENIX_SMTP_URL", "smtp://mail:25"), ("PHOENIX_MAIL_FROM", "a@b.example")]).unwrap_err();
    assert_eq!(err.var, "PHOENIX_PUBLIC_URL");
    assert!(config(&[("PHOENIX_SMTP_URL", "log")]).is_ok());
    let key = "k".repeat(40);
    let err = config(&[("PHOENIX_SMTP_URL", "log"), ("PHOENIX_ENV", "production"), ("PHOENIX_SECRET_KEY", &key)])
        .unwrap_err();
    assert_eq!(err.var, "PHOENIX_SMTP_URL");
    let err = config(&[("PHOENIX_SMTP_URL", "http://user:hunter2@mail:25")]).unwrap_err();
    assert_eq!(err.var, "PHOENIX_SMTP_URL");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    for bad in ["phoenix", "Phoenix <phoenix>", "a@b.example\r\nBcc: x@y.example"] {
        assert_eq!(config(&[("PHOENIX_MAIL_FROM", bad)]).unwrap_err().var, "PHOENIX_MAIL_FROM", "{bad}");
    }
    for bad in ["phoenix.school.example", "https://x.example/?a=1", "ftp://x.example"] {
        assert_eq!(config(&[("PHOENIX_PUBLIC_URL", bad)]).unwrap_err().var, "PHOENIX_PUBLIC_URL", "{bad}");
    }
    assert_eq!(config(&[("PHOENIX_MAIL_LANGUAGE", "fr")]).unwrap_err().var, "PHOENIX_MAIL_LANGUAGE");
}
