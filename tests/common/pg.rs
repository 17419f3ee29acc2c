//! A real PostgreSQL for tests, started by the test itself: Debian's
//! `postgresql` binaries (`initdb`, `pg_ctl`), a cluster in a temp dir, a free
//! loopback port, its unix socket in the temp dir, trust authentication, fsync
//! off. No system service is used. `initdb` refuses to run as root, so as
//! root (CI) the cluster belongs to `nobody`; otherwise to whoever runs the
//! test. PostgreSQL missing is a failure, not a skip: `.ci/run` installs it.
//!
//! Std only (no crates beyond `tempfile` and `libc`), so the hub crate's
//! contract tests, the end-to-end tests and the bench share this one file.
#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The superuser `initdb` makes.
const SUPERUSER: &str = "postgres";

/// A PostgreSQL cluster that lives as long as this value.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The loopback port it listens on (kept across restarts).
    pub port: u16,
    /// `(uid, gid)` to run its programs as, when we are root.
    owner: Option<(u32, u32)>,
    databases: AtomicU32,
}

/// The directory with `initdb` and `pg_ctl`: `$TANDEM_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin` that has them.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TANDEM_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): \
             `apt-get install postgresql` (.ci/run does), or set TANDEM_PG_BIN"
        ),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// `nobody`'s uid and gid, from /etc/passwd.
fn nobody() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"nobody")).then(|| (f[2].parse().ok(), f[3].parse().ok()))
        })
        .and_then(|(u, g)| Some((u?, g?)))
        .expect("as root, the test cluster runs as `nobody`, which /etc/passwd lacks")
}

impl Cluster {
    /// initdb and start a new cluster.
    pub fn start() -> Cluster {
        let bin = bin_dir();
        let dir = tempfile::Builder::new().prefix("tdmpg").tempdir_in("/tmp").expect("temp dir");
        // SAFETY: geteuid has no preconditions.
        let owner = (unsafe { libc::geteuid() } == 0).then(nobody);
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown the cluster's dir");
        }
        let cluster = Cluster { dir, bin, port: free_port(), owner, databases: AtomicU32::new(0) };
        let data = cluster.data();
        cluster.run_ok(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
        );
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\nfsync = off\n\
             synchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\nshared_buffers = 16MB\n",
            cluster.port,
            cluster.dir.path().display()
        );
        let mut file = std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).expect("conf");
        std::io::Write::write_all(&mut file, conf.as_bytes()).expect("write conf");
        cluster.start_again();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.stdin(Stdio::null()).env("LC_ALL", "C").env_remove("PGDATA");
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid).current_dir(self.dir.path());
        }
        cmd
    }

    fn run_ok(&self, program: &str, args: &[&str]) -> Output {
        let out = self.command(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Starts the (stopped) server on the same port and waits until it accepts connections.
    pub fn start_again(&self) {
        let log = self.dir.path().join("postgres.log");
        self.run_ok("pg_ctl", &["-D", path(&self.data()), "-l", path(&log), "-w", "-t", "120", "start"]);
    }

    /// Stops the server (`pg_ctl stop -m fast`: clients are disconnected).
    pub fn stop(&self) {
        self.run_ok("pg_ctl", &["-D", path(&self.data()), "-m", "fast", "-w", "stop"]);
    }

    /// The URL of database `db` for the superuser.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database; its URL.
    pub fn new_database(&self) -> String {
        let name = format!("t{}", self.databases.fetch_add(1, Ordering::Relaxed));
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs `sql` in database `db` with psql; its rows, one a line, `|` between columns.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", &self.url(db), "-c", sql])
            .stdin(Stdio::null())
            .output()
            .expect("psql");
        assert!(out.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

/// The database name in one of [`Cluster::url`]'s URLs.
pub fn database_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Immediate: nothing here needs a clean shutdown, and the dir goes next.
        let _ = self
            .command("pg_ctl")
            .args(["-D", path(&self.data()), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
