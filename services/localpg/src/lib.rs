//! A private PostgreSQL cluster for `phoenix dev` and the test harness, started from the
//! server binaries a machine has installed (Debian: `apt-get install postgresql`).
//!
//! - Binaries: `PHOENIX_PG_BINDIR`, else `initdb` on `PATH`, else the newest
//!   `/usr/lib/postgresql/<version>/bin`.
//! - `initdb` refuses to run as root: when we are root, the cluster is owned by, and every
//!   server command runs as, the `postgres` system user.
//! - The cluster listens on 127.0.0.1 only, with trust authentication (local use only) and no
//!   Unix socket. Its directory holds `data/`, `port`, `server.log` and a `lock` file that
//!   serialises concurrent starters (several test processes at once).
//! - A running cluster is reused; [`LocalPostgres::stop`] stops it.
//! - [`LocalPostgres::start_replica`] starts a streaming replica of a running cluster (tests of
//!   the read replica).

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why the cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LocalPgError {
    /// No server binaries on this machine.
    #[error(
        "PostgreSQL server binaries not found (looked at PHOENIX_PG_BINDIR, PATH and /usr/lib/postgresql/*/bin); \
         install them with `apt-get install -y postgresql` or set DATABASE_URL to an existing server"
    )]
    BinariesNotFound,
    /// Running as root but there is no `postgres` user to drop to.
    #[error(
        "running as root, but there is no `postgres` system user to run the server as (apt-get install postgresql creates it)"
    )]
    NoPostgresUser,
    /// A server command failed.
    #[error("{command} failed: {detail}")]
    Command {
        /// The command that failed.
        command: String,
        /// Its output or error.
        detail: String,
    },
    /// File-system trouble in the cluster directory.
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LocalPgError + '_ {
    move |source| LocalPgError::Io { path: path.to_owned(), source }
}

/// Settings for a cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// Directory holding the cluster (created if missing).
    pub dir: PathBuf,
    /// Port to listen on when the cluster is first started; 0 picks a free one.
    pub port: u16,
    /// Durability off (`fsync`, `synchronous_commit`, `full_page_writes`): for tests only.
    pub fast_unsafe: bool,
    /// `max_connections` of the server.
    pub max_connections: u32,
}

/// A running private cluster.
#[derive(Debug, Clone)]
pub struct LocalPostgres {
    dir: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    run_as: Option<(u32, u32)>,
}

impl LocalPostgres {
    /// Starts the cluster in `options.dir`, creating it first if needed, or attaches to it
    /// when it already runs. Safe to call from several processes at once.
    pub fn ensure_started(options: &Options) -> Result<Self, LocalPgError> {
        let bin_dir = find_bin_dir().ok_or(LocalPgError::BinariesNotFound)?;
        let run_as =
            if effective_uid() == Some(0) { Some(postgres_user().ok_or(LocalPgError::NoPostgresUser)?) } else { None };
        let dir = &options.dir;
        fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join("lock");
        let lock =
            OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io(&lock_path))?;
        // Held until this function returns: one starter at a time, the others then attach.
        lock.lock().map_err(io(&lock_path))?;

        let mut pg = LocalPostgres { dir: dir.clone(), bin_dir, port: 0, run_as };
        let data = pg.data_dir();
        if !data.join("PG_VERSION").exists() {
            pg.init_cluster()?;
        }
        if pg.is_running() {
            if let Some(port) = read_port(&dir.join("port")) {
                pg.port = port;
                return Ok(pg);
            }
            // Running without a port file: stop it and start again cleanly.
            pg.stop()?;
        }
        pg.port = if options.port == 0 || !port_is_free(options.port) { free_port()? } else { options.port };
        pg.start(options)?;
        let port_file = dir.join("port");
        let mut f = File::create(&port_file).map_err(io(&port_file))?;
        writeln!(f, "{}", pg.port).map_err(io(&port_file))?;
        Ok(pg)
    }

    /// The TCP port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Connection URL for `database` as the `postgres` superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server (fast shutdown: open sessions are ended).
    pub fn stop(&self) -> Result<(), LocalPgError> {
        if !self.is_running() {
            return Ok(());
        }
        let data = self.data_dir();
        self.run("pg_ctl", &["-D", path_str(&data), "-m", "fast", "-w", "stop"])
    }

    /// Restarts the server on the same port and settings (fast shutdown: open sessions are
    /// ended, clients see their connections close), waiting until it accepts connections
    /// again. Fault tests use it on a cluster of their own.
    pub fn restart(&self) -> Result<(), LocalPgError> {
        let (data, log) = (self.data_dir(), self.dir.join("server.log"));
        // `pg_ctl restart` reuses the command line of the last start (postmaster.opts).
        self.run("pg_ctl", &["-D", path_str(&data), "-l", path_str(&log), "-m", "fast", "-w", "-t", "60", "restart"])
    }

    /// Starts a streaming replica of this (running) cluster in `options.dir`: a base backup
    /// taken with `pg_basebackup -R -X stream` (it writes `standby.signal` and
    /// `primary_conninfo`), started on its own port with `options`' settings. The replica has
    /// the primary's roles and databases and follows its writes. The directory must not hold
    /// a cluster yet.
    pub fn start_replica(&self, options: &Options) -> Result<Self, LocalPgError> {
        let dir = &options.dir;
        fs::create_dir_all(dir).map_err(io(dir))?;
        let mut replica =
            LocalPostgres { dir: dir.clone(), bin_dir: self.bin_dir.clone(), port: 0, run_as: self.run_as };
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(io(dir))?;
        }
        let data = replica.data_dir();
        let port = self.port.to_string();
        replica.run(
            "pg_basebackup",
            &[
                "-D",
                path_str(&data),
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        )?;
        replica.port = if options.port == 0 || !port_is_free(options.port) { free_port()? } else { options.port };
        replica.start(options)?;
        let port_file = dir.join("port");
        let mut f = File::create(&port_file).map_err(io(&port_file))?;
        writeln!(f, "{}", replica.port).map_err(io(&port_file))?;
        Ok(replica)
    }

    /// Turns TLS on: writes `cert_pem`/`key_pem` as the server's certificate and key into the
    /// data directory (mode 0600, owned by the server's user), sets `ssl = on` and reloads.
    /// Plain connections keep working (trust authentication on `host` lines accepts both).
    pub fn enable_tls(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), LocalPgError> {
        use std::os::unix::fs::PermissionsExt as _;
        let data = self.data_dir();
        for (name, contents) in [("server.crt", cert_pem), ("server.key", key_pem)] {
            let path = data.join(name);
            fs::write(&path, contents).map_err(io(&path))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).map_err(io(&path))?;
            if let Some((uid, gid)) = self.run_as {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(io(&path))?;
            }
        }
        let conf = data.join("postgresql.conf");
        let mut f = OpenOptions::new().append(true).open(&conf).map_err(io(&conf))?;
        writeln!(f, "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'").map_err(io(&conf))?;
        self.run("pg_ctl", &["-D", path_str(&data), "reload"])
    }

    /// Stops a cluster in `dir` if one runs there (used by the test command's clean-up).
    pub fn stop_dir(dir: &Path) -> Result<(), LocalPgError> {
        let Some(bin_dir) = find_bin_dir() else { return Ok(()) };
        let run_as = if effective_uid() == Some(0) { postgres_user() } else { None };
        LocalPostgres { dir: dir.to_owned(), bin_dir, port: 0, run_as }.stop()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn is_running(&self) -> bool {
        let data = self.data_dir();
        self.command("pg_ctl")
            .args(["-D", path_str(&data), "status"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn init_cluster(&self) -> Result<(), LocalPgError> {
        let data = self.data_dir();
        if data.exists() {
            // A half-created cluster (interrupted initdb): start over.
            fs::remove_dir_all(&data).map_err(io(&data))?;
        }
        fs::create_dir_all(&data).map_err(io(&data))?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&self.dir, Some(uid), Some(gid)).map_err(io(&self.dir))?;
            std::os::unix::fs::chown(&data, Some(uid), Some(gid)).map_err(io(&data))?;
        }
        self.run(
            "initdb",
            &["-D", path_str(&data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-instructions"],
        )
    }

    fn start(&self, options: &Options) -> Result<(), LocalPgError> {
        let data = self.data_dir();
        let log = self.dir.join("server.log");
        if let Some((uid, gid)) = self.run_as {
            // The server (not us) writes the log: it must own it.
            File::create(&log).map_err(io(&log))?;
            std::os::unix::fs::chown(&log, Some(uid), Some(gid)).map_err(io(&log))?;
        }
        let mut server_opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections={}",
            self.port, options.max_connections
        );
        if options.fast_unsafe {
            server_opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        self.run(
            "pg_ctl",
            &["-D", path_str(&data), "-l", path_str(&log), "-o", &server_opts, "-w", "-t", "60", "start"],
        )
        .map_err(|e| match e {
            LocalPgError::Command { command, detail } => LocalPgError::Command {
                command,
                detail: format!("{detail}\n--- {} ---\n{}", log.display(), tail(&log, 20)),
            },
            other => other,
        })
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid).env("HOME", &self.dir);
        }
        cmd
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), LocalPgError> {
        let out = self
            .command(program)
            .args(args)
            .output()
            .map_err(|e| LocalPgError::Command { command: program.into(), detail: e.to_string() })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(LocalPgError::Command {
                command: format!("{program} {}", args.join(" ")),
                detail: format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
            })
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn read_port(path: &Path) -> Option<u16> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn free_port() -> Result<u16, LocalPgError> {
    let l = TcpListener::bind(("127.0.0.1", 0)).map_err(io(Path::new("127.0.0.1:0")))?;
    l.local_addr().map(|a| a.port()).map_err(io(Path::new("127.0.0.1:0")))
}

/// Finds the directory holding `initdb`, `pg_ctl` and `postgres`.
pub fn find_bin_dir() -> Option<PathBuf> {
    let has_server =
        |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file() && d.join("postgres").is_file();
    if let Some(d) = std::env::var_os("PHOENIX_PG_BINDIR").map(PathBuf::from) {
        return has_server(&d).then_some(d);
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, d)| has_server(d))
        .collect();
    versions.sort();
    if let Some((_, d)) = versions.pop() {
        return Some(d);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).find(|d| has_server(d))
}

fn effective_uid() -> Option<u32> {
    // /proc/self belongs to the process's effective user; no libc call needed.
    fs::metadata("/proc/self").ok().map(|m| m.uid())
}

fn postgres_user() -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == "postgres").then_some(())?;
        let _password = f.next()?;
        Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
    })
}
