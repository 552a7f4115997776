//! Server-sent event streams (`text/event-stream`, WHATWG HTML §9.2) and the drain.
//!
//! A `GET` answered with an event stream (an MCP server's listening stream, Streamable HTTP)
//! never ends by itself, so a graceful shutdown would wait `shutdown_timeout` for it and
//! then cut it mid-stream. [`EndOnDrain`] ends it cleanly instead: once the drain begins,
//! the body ends at the first event boundary (at once when the bytes sent so far end one),
//! so the client sees a complete last event and a proper end of the body (the terminating
//! chunk on HTTP/1.1, `END_STREAM` on HTTP/2), and reconnects elsewhere (with
//! `Last-Event-ID`). tokengate's timeouts never end such a stream while it is open: see
//! README "In front of an MCP server".

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body::{Body as HttpBody, Frame, SizeHint};

use crate::body::{Body, BoxError};
use crate::drain::Drain;

/// Whether a response to `method` with these headers is a listening event stream: a `GET`
/// answered with `Content-Type: text/event-stream` (parameters and case aside).
pub fn is_listening_stream(method: &Method, response: &HeaderMap) -> bool {
    method == Method::GET
        && response
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
}

/// An event-stream body that ends at the first event boundary once the drain has begun.
pub struct EndOnDrain {
    inner: Body,
    /// Resolves when the drain begins. (In a mutex only so that the body is `Sync`; it is
    /// reached through `get_mut`, never locked.)
    draining: Mutex<Pin<Box<dyn Future<Output = ()> + Send>>>,
    drained: bool,
    /// The last bytes sent (at most 4), to tell whether they end an event.
    tail: Vec<u8>,
    /// The body has ended (early or not): nothing more is polled.
    ended: bool,
}

impl EndOnDrain {
    /// Wraps `inner`, ending it early once `drain` begins.
    pub fn new(inner: Body, drain: &Drain) -> EndOnDrain {
        EndOnDrain {
            inner,
            draining: Mutex::new(Box::pin(drain.draining())),
            drained: false,
            tail: Vec::new(),
            ended: false,
        }
    }

    /// Whether the bytes sent so far end an event (or nothing was sent): a blank line ends
    /// one, each line ending in CRLF, LF or CR.
    fn at_boundary(&self) -> bool {
        let t = self.tail.as_slice();
        let Some(rest) = t
            .strip_suffix(b"\r\n")
            .or_else(|| t.strip_suffix(b"\n"))
            .or_else(|| t.strip_suffix(b"\r"))
        else {
            return t.is_empty();
        };
        rest.ends_with(b"\n") || rest.ends_with(b"\r")
    }

    fn remember(&mut self, data: &[u8]) {
        self.tail
            .extend_from_slice(&data[data.len().saturating_sub(4)..]);
        let excess = self.tail.len().saturating_sub(4);
        self.tail.drain(..excess);
    }
}

impl HttpBody for EndOnDrain {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if !this.drained {
            let draining = match this.draining.get_mut() {
                Ok(f) => f,
                Err(poisoned) => poisoned.into_inner(),
            };
            this.drained = draining.as_mut().poll(cx).is_ready();
        }
        if this.drained && this.at_boundary() {
            this.ended = true;
            return Poll::Ready(None);
        }
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        match &frame {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(data) = f.data_ref() {
                    this.remember(data);
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => this.ended = true,
            Poll::Pending => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        // It may end early: no exact length.
        SizeHint::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::sync::mpsc;

    /// A body whose data frames come from a channel; it ends when the channel closes.
    struct Channel(mpsc::UnboundedReceiver<&'static [u8]>);

    impl HttpBody for Channel {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            self.get_mut()
                .0
                .poll_recv(cx)
                .map(|c| c.map(|b| Ok(Frame::data(Bytes::from_static(b)))))
        }
    }

    fn wrapped(drain: &Drain) -> (EndOnDrain, mpsc::UnboundedSender<&'static [u8]>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EndOnDrain::new(Channel(rx).boxed(), drain), tx)
    }

    async fn next(body: &mut EndOnDrain) -> Option<Vec<u8>> {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(2), body.frame())
            .await
            .unwrap_or_else(|_| panic!("no frame within 2 s"))?;
        match frame {
            Ok(f) => Some(f.into_data().map(|d| d.to_vec()).unwrap_or_default()),
            Err(e) => panic!("body error: {e}"),
        }
    }

    #[tokio::test]
    async fn ends_at_once_between_events_and_after_the_event_in_progress() {
        let drain = Drain::new();
        let (mut body, tx) = wrapped(&drain);
        let _ = tx.send(b"data: one\n\n");
        assert_eq!(
            next(&mut body).await.as_deref(),
            Some(&b"data: one\n\n"[..])
        );
        drain.begin();
        assert_eq!(next(&mut body).await, None, "between events: ends at once");

        let drain = Drain::new();
        let (mut body, tx) = wrapped(&drain);
        let _ = tx.send(b"data: par");
        assert_eq!(next(&mut body).await.as_deref(), Some(&b"data: par"[..]));
        drain.begin();
        let _ = tx.send(b"tial\r\n");
        let _ = tx.send(b"\r\n");
        let _ = tx.send(b"data: never\n\n");
        assert_eq!(next(&mut body).await.as_deref(), Some(&b"tial\r\n"[..]));
        assert_eq!(next(&mut body).await.as_deref(), Some(&b"\r\n"[..]));
        assert_eq!(
            next(&mut body).await,
            None,
            "the event in progress ends first"
        );
    }

    #[tokio::test]
    async fn without_a_drain_it_is_the_stream_itself() {
        let drain = Drain::new();
        let (mut body, tx) = wrapped(&drain);
        for chunk in [&b": ping\r\r"[..], b"data: a\n\n", b"data: b\n\n"] {
            let _ = tx.send(chunk);
            assert_eq!(next(&mut body).await.as_deref(), Some(chunk));
        }
        drop(tx);
        assert_eq!(next(&mut body).await, None);
        assert!(body.is_end_stream());
    }

    #[test]
    fn event_boundaries() {
        let drain = Drain::new();
        for (sent, boundary) in [
            (&b""[..], true),
            (b"data: x\n\n", true),
            (b"data: x\r\n\r\n", true),
            (b"data: x\r\r", true),
            (b"data: x\n\r\n", true),
            (b"data: x\n", false),
            (b"data: x\r\n", false),
            (b"data: x", false),
        ] {
            let (mut body, _tx) = wrapped(&drain);
            body.remember(sent);
            assert_eq!(
                body.at_boundary(),
                boundary,
                "{:?}",
                String::from_utf8_lossy(sent)
            );
        }
    }

    #[test]
    fn listening_streams() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("Text/Event-Stream; charset=utf-8"),
        );
        assert!(is_listening_stream(&Method::GET, &h));
        assert!(!is_listening_stream(&Method::POST, &h));
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        assert!(!is_listening_stream(&Method::GET, &h));
    }
}
