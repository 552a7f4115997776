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
    port: u16,
    /// The server's working directory (its `dir`); removed when dropped.
    _dir: tempfile::TempDir,
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
        // as a failed start below, and is retried.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            let child = Command::new(program)
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                // No RDB snapshots, no append-only file: nothing outlives the test.
                .args(["--save", "", "--appendonly", "no"])
                .args(["--daemonize", "no", "--protected-mode", "yes"])
                .arg("--dir")
                .arg(dir.path())
                .current_dir(dir.path())
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
                    break; // exited: most likely the port was taken meanwhile
                }
                if ping(port) {
                    return RedisServer {
                        child: Some(child),
                        port,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
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

    /// The number of keys in database 0 (`DBSIZE`).
    pub fn keys(&self) -> u64 {
        let answer = command(self.port, "DBSIZE").expect("redis answers DBSIZE");
        answer
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("DBSIZE answered {answer:?}"))
    }
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
