//! RawUpstream: an HTTP/1.1 upstream that records the exact bytes each request arrived as
//! (head, body, trailer section), so tests can assert on duplicate lines and trailers that a
//! parsing server would fold away. It can also be an h2c-capable server (RFC 7540 §3.2): it
//! answers `Upgrade: h2c` with 101 and then serves HTTP/2 on the same socket, recording every
//! request that arrives through that tunnel.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the upstream answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawMode {
    /// 200 `ok` to everything (keep-alive).
    Ok,
    /// Like `Ok`, but a request carrying `Upgrade: h2c` is switched to HTTP/2 (101).
    H2c,
    /// 101 `Upgrade: h2c` to every request, asked or not (a broken or hostile upstream).
    AlwaysSwitch,
}

/// One request as it arrived.
#[derive(Debug, Clone, Default)]
pub struct RawRequest {
    /// The request line and header lines, exactly as sent (CRLFs included).
    pub head: String,
    pub body: Vec<u8>,
    /// The chunked trailer section, exactly as sent (empty when there was none).
    pub trailers: String,
    /// Arrived as HTTP/2 through an h2c tunnel.
    pub via_h2c: bool,
}

impl RawRequest {
    /// The request line.
    pub fn line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    /// The values of every header line named `name` (any case), in order.
    pub fn values(&self, name: &str) -> Vec<String> {
        field_values(self.head.lines().skip(1), name)
    }

    /// The values of every trailer field named `name`.
    pub fn trailer_values(&self, name: &str) -> Vec<String> {
        field_values(self.trailers.lines(), name)
    }
}

fn field_values<'a>(lines: impl Iterator<Item = &'a str>, name: &str) -> Vec<String> {
    lines
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

pub struct RawUpstream {
    pub addr: std::net::SocketAddr,
    log: Arc<Mutex<Vec<RawRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawUpstream {
    pub async fn start(mode: RawMode) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind raw upstream");
        let addr = listener.local_addr().expect("addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = log.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, mode, shared.clone()));
            }
        });
        RawUpstream { addr, log, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<RawRequest> {
        self.log.lock().expect("lock").clone()
    }

    pub fn last(&self) -> RawRequest {
        self.requests()
            .pop()
            .expect("no request reached the raw upstream")
    }
}

async fn serve(mut stream: TcpStream, mode: RawMode, log: Arc<Mutex<Vec<RawRequest>>>) {
    loop {
        let Some(request) = read_request(&mut stream).await else {
            return;
        };
        let asked = request
            .values("upgrade")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("h2c"));
        log.lock().expect("lock").push(request);
        let switch = match mode {
            RawMode::Ok => false,
            RawMode::H2c => asked,
            RawMode::AlwaysSwitch => true,
        };
        if switch {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
                )
                .await;
            serve_h2(stream, log).await;
            return;
        }
        if stream
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok",
            )
            .await
            .is_err()
        {
            return;
        }
    }
}

/// HTTP/2 on the upgraded socket; every request is recorded and answered 200.
async fn serve_h2(stream: TcpStream, log: Arc<Mutex<Vec<RawRequest>>>) {
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let log = log.clone();
        async move {
            let mut head = format!("{} {} HTTP/2\r\n", request.method(), request.uri());
            for (name, value) in request.headers() {
                head.push_str(&format!(
                    "{name}: {}\r\n",
                    String::from_utf8_lossy(value.as_bytes())
                ));
            }
            log.lock().expect("lock").push(RawRequest {
                head,
                via_h2c: true,
                ..RawRequest::default()
            });
            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                b"reached over h2c",
            ))))
        }
    });
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// Reads one request without reading past it (byte by byte: the bytes after it may be
/// another protocol's).
async fn read_request(stream: &mut TcpStream) -> Option<RawRequest> {
    let head = read_until_blank_line(stream).await?;
    let mut request = RawRequest {
        head,
        ..RawRequest::default()
    };
    let chunked = request
        .values("transfer-encoding")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let line = read_line(stream).await?;
            let size = usize::from_str_radix(line.trim().split(';').next()?.trim(), 16).ok()?;
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size];
            stream.read_exact(&mut chunk).await.ok()?;
            request.body.extend_from_slice(&chunk);
            read_line(stream).await?;
        }
        loop {
            let line = read_line(stream).await?;
            if line.is_empty() {
                break;
            }
            request.trailers.push_str(&line);
            request.trailers.push_str("\r\n");
        }
    } else if let Some(length) = request
        .values("content-length")
        .first()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await.ok()?;
        request.body = body;
    }
    Some(request)
}

async fn read_until_blank_line(stream: &mut TcpStream) -> Option<String> {
    let mut head = String::new();
    loop {
        let line = read_line(stream).await?;
        if line.is_empty() {
            return (!head.is_empty()).then_some(head);
        }
        head.push_str(&line);
        head.push_str("\r\n");
    }
}

/// One line without its CRLF; `None` at end of stream.
async fn read_line(stream: &mut TcpStream) -> Option<String> {
    let mut line = Vec::new();
    loop {
        let byte = stream.read_u8().await.ok()?;
        if byte == b'\n' {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Some(String::from_utf8_lossy(&line).into_owned());
        }
        line.push(byte);
        if line.len() > 64 * 1024 {
            return None;
        }
    }
}

/// HTTP/2 frames for a client speaking raw (for what client libraries refuse to send).
pub mod h2frames {
    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    /// A frame: 9-byte header, then the payload.
    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    pub fn settings() -> Vec<u8> {
        frame(0x4, 0, 0, &[])
    }

    pub fn settings_ack() -> Vec<u8> {
        frame(0x4, 0x1, 0, &[])
    }

    /// A HEADERS frame (END_HEADERS, and END_STREAM when `end`) of literal fields without
    /// indexing (RFC 7541 §6.2.2), no Huffman coding.
    pub fn headers(stream: u32, fields: &[(&str, &str)], end: bool) -> Vec<u8> {
        let mut block = Vec::new();
        for (name, value) in fields {
            block.push(0x00);
            string(&mut block, name.as_bytes());
            string(&mut block, value.as_bytes());
        }
        frame(0x1, 0x4 | if end { 0x1 } else { 0 }, stream, &block)
    }

    fn string(out: &mut Vec<u8>, bytes: &[u8]) {
        // 7-bit prefix integer (RFC 7541 §5.1).
        let mut len = bytes.len();
        if len < 127 {
            out.push(len as u8);
        } else {
            out.push(127);
            len -= 127;
            while len >= 128 {
                out.push((len % 128 + 128) as u8);
                len /= 128;
            }
            out.push(len as u8);
        }
        out.extend_from_slice(bytes);
    }

    /// The frames in `bytes` as (type, flags, stream) triples, as far as they are whole.
    pub fn parse(bytes: &[u8]) -> Vec<(u8, u8, u32)> {
        let mut out = Vec::new();
        let mut rest = bytes;
        while rest.len() >= 9 {
            let len =
                (usize::from(rest[0]) << 16) | (usize::from(rest[1]) << 8) | usize::from(rest[2]);
            let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]) & 0x7fff_ffff;
            out.push((rest[3], rest[4], stream));
            if rest.len() < 9 + len {
                break;
            }
            rest = &rest[9 + len..];
        }
        out
    }
}
