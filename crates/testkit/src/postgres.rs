//! A PostgreSQL server of its own for a test, the demo or the benchmark: Debian's `postgresql` binaries
//! (`/usr/lib/postgresql/<version>/bin`, or `$CREW_POSTGRES_BIN`), a fresh data directory, started as the
//! `postgres` user when the caller is root, listening on loopback only, with password (SCRAM) authentication like a
//! real installation. Stopped on drop; like the control plane, it dies with the program that started it.

use crate::process::{Supervised, spawn_for_life};
use crate::{DevClusterError, write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The role and database the server is made with.
pub const USER: &str = "crew";
/// See [`USER`].
pub const DATABASE: &str = "crew";

/// A running PostgreSQL server.
pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    password: String,
    ids: Option<(u32, u32)>,
    process: Option<Supervised>,
    /// With TLS: the CA that signed the server's certificate (for `127.0.0.1`).
    ca_file: Option<PathBuf>,
}

/// The directory of the newest installed PostgreSQL's binaries.
pub fn postgres_bin() -> Result<PathBuf, DevClusterError> {
    if let Some(dir) = std::env::var_os("CREW_POSTGRES_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        DevClusterError::MissingBinary(PathBuf::from(
            "/usr/lib/postgresql/<version>/bin/postgres (Debian package postgresql: run `make tools`)",
        ))
    })
}

impl Postgres {
    /// Makes a database cluster in `dir` (created, emptied) and starts its server; returns once it accepts
    /// connections and database [`DATABASE`] exists.
    pub fn start(dir: &Path) -> Result<Self, DevClusterError> {
        Self::start_with(dir, false)
    }

    /// [`Postgres::start`] with TLS: a CA and a server certificate for `127.0.0.1` made with `openssl`; the CA is
    /// [`Postgres::ca_file`].
    pub fn start_tls(dir: &Path) -> Result<Self, DevClusterError> {
        Self::start_with(dir, true)
    }

    /// The CA of a [`Postgres::start_tls`] server.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    fn start_with(dir: &Path, tls: bool) -> Result<Self, DevClusterError> {
        let bin = postgres_bin()?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir.join("sock"))
            .map_err(|e| DevClusterError::Io(format!("create {}", dir.display()), e))?;
        let ids = server_ids()?;
        if ids.is_some() {
            remove_orphaned_segments();
        }
        let password = format!("{:032x}", crate::rand_u128());
        write(&dir.join("pwfile"), &password)?;
        if let Some((uid, gid)) = ids {
            for path in [dir.to_path_buf(), dir.join("sock"), dir.join("pwfile")] {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .map_err(|e| DevClusterError::Io(format!("chown {}", path.display()), e))?;
            }
        }
        let data = dir.join("data");
        run_as(
            ids,
            Command::new(bin.join("initdb")).args([
                "-D",
                &data.to_string_lossy(),
                "-U",
                USER,
                "--auth=scram-sha-256",
                &format!("--pwfile={}", dir.join("pwfile").display()),
                "-E",
                "UTF8",
                "--no-locale",
            ]),
            &dir.join("initdb.log"),
        )?;
        let ca_file = if tls {
            Some(certificates(dir, ids)?)
        } else {
            None
        };
        let mut server = Postgres {
            dir: dir.to_path_buf(),
            bin,
            port: crate::free_port()?,
            password,
            ids,
            process: None,
            ca_file,
        };
        server.run()?;
        server.psql("postgres", &format!("CREATE DATABASE {DATABASE}"))?;
        Ok(server)
    }

    /// The connection URL (with the password) of database [`DATABASE`].
    pub fn url(&self) -> String {
        format!(
            "postgres://{USER}:{}@127.0.0.1:{}/{DATABASE}",
            self.password, self.port
        )
    }

    /// The URL of database [`DATABASE`] without the password, and the password (for a password file).
    pub fn url_and_password(&self) -> (String, &str) {
        self.database_url(DATABASE)
    }

    /// The URL of `database` without the password, and the password.
    pub fn database_url(&self, database: &str) -> (String, &str) {
        (
            format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port),
            &self.password,
        )
    }

    /// How the operator connects to `database` on this server (password included, no CA).
    pub fn archive_connection(
        &self,
        database: &str,
    ) -> crew_operator::archive::connect::ArchiveConnection {
        let (url, password) = self.database_url(database);
        crew_operator::archive::connect::ArchiveConnection {
            url,
            password: Some(password.to_string()),
            ca_file: None,
        }
    }

    /// The server's log.
    pub fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// Runs `sql` with `psql` in `database`; returns its unaligned, tuples-only output.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String, DevClusterError> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args([
                "-d",
                database,
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .env("PGPASSWORD", &self.password)
            .output()
            .map_err(|e| DevClusterError::Io("run psql".into(), e))?;
        if !out.status.success() {
            return Err(DevClusterError::Io(
                format!("psql {sql:?}"),
                std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// SIGKILL, at once (a crashed database); [`Postgres::restart`] starts it again on the same data.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// SIGSTOP to the server and every process it started: it stops answering without closing a connection (a
    /// hung database, or a network that drops everything); [`Postgres::thaw`] undoes it.
    pub fn freeze(&self) {
        self.signal_all(libc::SIGSTOP);
    }

    /// SIGCONT after [`Postgres::freeze`].
    pub fn thaw(&self) {
        self.signal_all(libc::SIGCONT);
    }

    fn signal_all(&self, signal: libc::c_int) {
        let Some(postmaster) = self.process.as_ref().map(Supervised::pid) else {
            return;
        };
        let children = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let pid: u32 = entry.file_name().to_string_lossy().parse().ok()?;
                let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                // pid (comm) state ppid ...: the parent is the second field after the command's closing parenthesis.
                let ppid: u32 = stat
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()?;
                (ppid == postmaster).then_some(pid)
            });
        for pid in std::iter::once(postmaster).chain(children) {
            // SAFETY: sending a signal to the server this harness started, or to one of its children.
            unsafe {
                libc::kill(pid as libc::pid_t, signal);
            }
        }
    }

    /// Starts the server again on the same data directory and port (after [`Postgres::kill`] or a stop).
    pub fn restart(&mut self) -> Result<(), DevClusterError> {
        self.kill();
        self.run()
    }

    fn run(&mut self) -> Result<(), DevClusterError> {
        let postgres = self.bin.join("postgres");
        let data = self.dir.join("data").to_string_lossy().into_owned();
        let sock = self.dir.join("sock").to_string_lossy().into_owned();
        let port = self.port.to_string();
        let log = self.log();
        let ids = self.ids;
        let tls: Vec<String> = match &self.ca_file {
            Some(_) => vec![
                "-c".into(),
                "ssl=on".into(),
                "-c".into(),
                format!("ssl_cert_file={}", self.dir.join("server.crt").display()),
                "-c".into(),
                format!("ssl_key_file={}", self.dir.join("server.key").display()),
            ],
            None => Vec::new(),
        };
        let process = spawn_for_life(move || {
            let mut args: Vec<&str> = vec![
                "-D",
                &data,
                "-k",
                &sock,
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                // Dynamic shared memory in the data directory, not /dev/shm: a server killed with its test
                // binary leaves nothing outside the directory the next start sweeps.
                "-c",
                "dynamic_shared_memory_type=mmap",
            ];
            args.extend(tls.iter().map(String::as_str));
            Supervised::spawn_as(
                &postgres,
                &log,
                &args,
                ids,
                // A fast shutdown when the program that started it ends: no orphaned memory or processes.
                libc::SIGINT,
            )
        })?;
        self.process = Some(process);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(DevClusterError::NotReady(
                    "postgres",
                    Duration::from_secs(60),
                    self.log(),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: PostgreSQL's fast shutdown (SIGTERM would wait for every client to disconnect).
        if let Some(mut process) = self.process.take() {
            process.stop_with(libc::SIGINT);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `Some((uid, gid))` of user `postgres` when running as root (PostgreSQL refuses to run as root), else `None`.
fn server_ids() -> Result<Option<(u32, u32)>, DevClusterError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| DevClusterError::Io("read /etc/passwd".into(), e))?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&"postgres"))
        .and_then(|fields| Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))
        .map(Some)
        .ok_or_else(|| {
            DevClusterError::Io(
                "find user postgres".into(),
                std::io::Error::other(
                    "running as root needs the user `postgres` (Debian package postgresql: run `make tools`)",
                ),
            )
        })
}

/// A CA (`ca.crt`) and a server certificate and key for `127.0.0.1` signed by it (`server.crt`, `server.key`, the
/// key readable by the server's user only), in `dir`; returns the CA's path.
fn certificates(dir: &Path, ids: Option<(u32, u32)>) -> Result<PathBuf, DevClusterError> {
    let openssl = |args: &[&str]| -> Result<(), DevClusterError> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map_err(|e| DevClusterError::Io("run openssl".into(), e))?;
        if !out.status.success() {
            return Err(DevClusterError::Io(
                format!("openssl {args:?}"),
                std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
            ));
        }
        Ok(())
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=crew-test-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ])?;
    write(
        &dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ])?;
    let key = dir.join("server.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| DevClusterError::Io("chmod server.key".into(), e))?;
    if let Some((uid, gid)) = ids {
        for name in ["server.key", "server.crt"] {
            std::os::unix::fs::chown(dir.join(name), Some(uid), Some(gid))
                .map_err(|e| DevClusterError::Io(format!("chown {name}"), e))?;
        }
    }
    Ok(dir.join("ca.crt"))
}

/// PostgreSQL keeps a small System V segment while it runs; a server killed (its test binary ended) leaves it behind,
/// unattached. Those of user `postgres` that nothing attaches any more are removed (a running server's has one
/// attachment at least).
fn remove_orphaned_segments() {
    let Ok(out) = Command::new("ipcs").args(["-m"]).output() else {
        return;
    };
    // key shmid owner perms bytes nattch [status]
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [_, id, "postgres", _, _, "0", ..] = fields.as_slice() {
            let _ = Command::new("ipcrm").args(["-m", id]).status();
        }
    }
}

fn run_as(
    ids: Option<(u32, u32)>,
    command: &mut Command,
    log: &Path,
) -> Result<(), DevClusterError> {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = ids {
        command.uid(uid).gid(gid);
    }
    let out = command
        .output()
        .map_err(|e| DevClusterError::Io(format!("run {command:?}"), e))?;
    let _ = std::fs::write(log, [out.stdout.as_slice(), out.stderr.as_slice()].concat());
    if !out.status.success() {
        return Err(DevClusterError::Io(
            format!("{command:?} failed; see {}", log.display()),
            std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
        ));
    }
    Ok(())
}
