//! A byte-exact HTTP/1.1 client, for request lines, framing and header spellings that client
//! libraries tidy up: it writes exactly the bytes it is given and reads what comes back.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a raw exchange waits for the peer.
const WAIT: Duration = Duration::from_secs(10);

/// What came back on one connection.
#[derive(Debug)]
pub struct RawResponse {
    /// The status of the first response; 0 when the peer closed without a status line.
    pub status: u16,
    /// The first response's status line and header lines (without the blank line).
    pub head: String,
    /// The first response's header fields, trimmed.
    pub headers: Vec<(String, String)>,
    /// What follows the first head, de-chunked when the response is chunked.
    pub body: String,
    /// Everything that arrived, as text.
    pub text: String,
    /// How many status lines arrived on the connection.
    pub responses: usize,
    /// The peer neither closed nor finished within 10 s.
    pub timed_out: bool,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Connects to `addr`, writes `request` byte for byte and reads until the peer closes (or
/// 10 s pass: see [`RawResponse::timed_out`]).
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(addr).await.expect("connect to the peer");
    stream.write_all(request).await.expect("write the request");
    let mut bytes = Vec::new();
    let receive = async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf).await {
                // A server that refuses a request may close before reading all of it (RST):
                // keep what arrived.
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    };
    let timed_out = tokio::time::timeout(WAIT, receive).await.is_err();
    let mut response = parse(&bytes);
    response.timed_out = timed_out;
    response
}

/// `METHOD target HTTP/1.1` exactly as given, `Host: x`, the given header lines, then
/// `Connection: close`.
pub fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    head.into_bytes()
}

/// [`request`] with `GET`.
pub fn get(target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    request("GET", target, headers)
}

/// Reads one response's bytes as a [`RawResponse`].
pub fn parse(bytes: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(bytes).into_owned();
    let responses = text.matches("HTTP/1.1 ").count();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = status_of(head);
    let headers = head
        .split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    RawResponse {
        status,
        head: head.to_owned(),
        headers,
        body,
        responses,
        timed_out: false,
        text: text.clone(),
    }
}

/// Decodes a chunked body (enough for the echo upstream's answers).
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// The status code on a response's first line (0 when there is none).
pub fn status_of(response: &str) -> u16 {
    response
        .lines()
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// On a connection kept open: writes `request` and reads one response (the head and a
/// `Content-Length` body, or only the head of a 1xx), within 10 s. Returns the text.
pub async fn send_and_read(stream: &mut TcpStream, request: &[u8]) -> String {
    stream.write_all(request).await.expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let informational = text.starts_with("HTTP/1.1 1");
            if informational || buf.len() >= end + 4 + length {
                return text;
            }
        }
        match tokio::time::timeout(WAIT, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => return String::from_utf8_lossy(&buf).into_owned(),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads whatever arrives within `wait`.
pub async fn drain(stream: &mut TcpStream, wait: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&chunk[..n]),
            _ => return out,
        }
    }
}
