//! RedisServer: a real redis-server (the distribution's package, installed by
//! `.ci/install-redis`) as a child process on 127.0.0.1, in a temporary directory, with no
//! persistence; killed when dropped. Without redis-server, starting one panics saying what to
//! install: a test that needs a shared replay store never passes without one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian's package puts it; else `redis-server` from `PATH`.
const DEBIAN_PATH: &str = "/usr/bin/redis-server";

pub struct RedisServer {
    child: Option<Child>,
    program: &'static str,
    port: u16,
    /// The server's working directory (its `dir`); removed when dropped.
    dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl RedisServer {
    /// Starts redis-server on a free loopback port and waits (up to 10 s) until it answers
    /// PING.
    pub fn start() -> RedisServer {
        let program = if std::path::Path::new(DEBIAN_PATH).exists() {
            DEBIAN_PATH
        } else {
            "redis-server"
        };
        let dir = tempfile::tempdir().expect("a temporary directory for redis-server");
        // redis-server cannot bind port 0 (it means "no TCP"): take a free port from the
        // kernel, release it and start on it; another process taking it in between shows up
        // as a failed start, and is retried on another port.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            if let Some(child) = spawn(program, port, dir.path()) {
                return RedisServer {
                    child: Some(child),
                    program,
                    port,
                    dir,
                };
            }
        }
        panic!("redis-server ({program}) never answered PING on 127.0.0.1");
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL, as a crash would) and reaps it; its port refuses connections
    /// from then on.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a new, empty server on the same port after [`RedisServer::stop`] (what clients
    /// see when Redis is restarted).
    pub fn restart(&mut self) {
        self.stop();
        let child = spawn(self.program, self.port, self.dir.path())
            .unwrap_or_else(|| panic!("redis-server did not start again on port {}", self.port));
        self.child = Some(child);
    }

    /// Stops the server with SIGSTOP: connections stay open and nothing answers (a hung
    /// Redis, not a dead one).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("a running redis-server");
        let sent = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status();
        assert!(
            sent.is_ok_and(|s| s.success()),
            "kill {signal} redis-server"
        );
    }

    /// The number of keys in database 0 (`DBSIZE`).
    pub fn keys(&self) -> u64 {
        let answer = command(self.port, "DBSIZE").expect("redis answers DBSIZE");
        answer
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("DBSIZE answered {answer:?}"))
    }
}

/// Runs `program` on `port` in `dir` and waits (up to 10 s) for it to answer PING; `None`
/// when it exits or never answers (most likely: the port was taken meanwhile).
fn spawn(program: &str, port: u16, dir: &std::path::Path) -> Option<Child> {
    let child = Command::new(program)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        // No RDB snapshots, no append-only file: nothing outlives the test.
        .args(["--save", "", "--appendonly", "no"])
        .args(["--daemonize", "no", "--protected-mode", "yes"])
        .arg("--dir")
        .arg(dir)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "redis-server is not installed: run `bash .ci/install-redis` \
             (apt-get install redis-server; the DPoP replay tests need a real Redis)"
        ),
        Err(e) => panic!("cannot run {program}: {e}"),
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if ping(port) {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn ping(port: u16) -> bool {
    command(port, "PING").is_ok_and(|a| a == "+PONG")
}

/// Sends one inline command and reads the first line of the answer.
fn command(port: u16, line: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(format!("{line}\r\n").as_bytes())?;
    let mut answer = String::new();
    BufReader::new((&mut stream).take(1024)).read_line(&mut answer)?;
    Ok(answer.trim_end().to_owned())
}
