//! The built binary as a child process, with its log lines and the address it bound.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_tokengate");
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

pub struct Running {
    pub child: Child,
    pub base: String,
    /// Log lines read so far (JSON), up to and including the "listening" line.
    pub startup: Vec<String>,
    pub logs: mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Peak resident memory (VmHWM) of the child, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        status_field(self.child.id(), "VmHWM:")
    }

    /// Sends SIGTERM and waits (up to 30 s) for the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        if !killed.is_ok_and(|s| s.success()) {
            return None;
        }
        for _ in 0..300 {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Starts the binary with `args` (plus `--listen 127.0.0.1:0 --log-format json`) in the
/// repository root, and waits for it to say where it listens.
pub fn spawn(args: &[&str]) -> Running {
    spawn_with(&[], args, "json")
}

/// As [`spawn`], run through `wrapper` (e.g. `["prlimit", "--nofile=1024", "--"]`).
pub fn spawn_under(wrapper: &[&str], args: &[&str]) -> Running {
    spawn_with(wrapper, args, "json")
}

/// As [`spawn`], logging in `format` (`json` or `text`).
pub fn spawn_logging(args: &[&str], format: &str) -> Running {
    spawn_with(&[], args, format)
}

fn spawn_with(wrapper: &[&str], args: &[&str], format: &str) -> Running {
    let mut command = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    let mut child = command
        .args(args)
        .args(["--listen", "127.0.0.1:0", "--log-format", format])
        .current_dir(ROOT)
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn tokengate");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // Owned by `Running` from here on, so a failed start still kills and reaps the child.
    let mut running = Running {
        child,
        base: String::new(),
        startup: Vec::new(),
        logs: rx,
    };
    loop {
        let line = running
            .logs
            .recv_timeout(Duration::from_secs(60))
            .expect("the binary never said where it listens");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        // Text lines say `listen=ADDR`.
        let text_addr = line
            .split_once("listen=")
            .filter(|_| line.contains("tokengate listening"))
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .map(str::to_owned);
        running.startup.push(line);
        if let Some(addr) = event["listen"].as_str().map(str::to_owned).or(text_addr) {
            running.base = format!("http://{addr}");
            return running;
        }
    }
}
