//! Peers that stop reading or sending: the send timeout and the request-body read timeout.
//!
//! Three watches, each cheap on the hot path (atomics, one uncontended lock per frame):
//!
//! - [`WatchedIo`] wraps a client socket and remembers since when its writes have been
//!   refused (the kernel's send buffer is full: the client stopped reading at the TCP level).
//! - [`Responses`] tracks every response body of one client connection. A body whose turn it
//!   is to be sent (hyper has taken its last frame and not asked for the next, because the
//!   client's flow-control window or socket is full) and that stays so for the send timeout
//!   is *cut*: the upstream body behind it is dropped at once, which releases the upstream
//!   connection, and the body ends in an error the next time hyper polls it.
//!   Waiting on the upstream (a slow or long-polling service) never counts.
//! - [`ReadTimeout`] wraps a request body and fails it when the client sends nothing for the
//!   body read timeout while the upstream is waiting for more.
//!
//! The connection's watchdog (`server.rs`) sweeps [`Responses`] and closes the connection
//! when the client cannot be served any more.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::body::{Body, BoxError};

/// No write is pending on the socket.
const NOT_BLOCKED: u64 = u64::MAX;

/// When one client socket's writes started being refused.
pub struct SocketProgress {
    opened: Instant,
    /// Milliseconds since `opened` when a write was first refused since the last
    /// successful one; [`NOT_BLOCKED`] when none is pending.
    blocked_since: AtomicU64,
}

impl SocketProgress {
    /// The record of a socket just accepted: not blocked, its clock starting now.
    pub fn new() -> Arc<SocketProgress> {
        Arc::new(SocketProgress {
            opened: Instant::now(),
            blocked_since: AtomicU64::new(NOT_BLOCKED),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(NOT_BLOCKED - 1)
    }

    /// How long the socket has refused every write, if it is refusing them now.
    pub fn blocked_for(&self) -> Option<Duration> {
        let since = self.blocked_since.load(Ordering::Relaxed);
        (since != NOT_BLOCKED).then(|| Duration::from_millis(self.now_ms().saturating_sub(since)))
    }

    fn refused(&self) {
        if self.blocked_since.load(Ordering::Relaxed) == NOT_BLOCKED {
            self.blocked_since.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.blocked_since.store(NOT_BLOCKED, Ordering::Relaxed);
    }
}

/// A client socket whose write progress is recorded in a [`SocketProgress`].
///
/// It also holds what the connection was admitted with (its `max_connections` slot and its
/// descriptor of the budget): they are released when the socket is, which for an upgraded
/// (WebSocket) connection is when the splice ends, not when hyper hands the socket over.
pub struct WatchedIo<IO> {
    inner: IO,
    progress: Arc<SocketProgress>,
    _admitted: Vec<tokio::sync::OwnedSemaphorePermit>,
}

impl<IO> WatchedIo<IO> {
    /// Wraps `inner`, recording its writes in `progress` and holding `admitted` (the
    /// connection's `max_connections` slot and descriptor) until the socket is dropped.
    pub fn new(
        inner: IO,
        progress: Arc<SocketProgress>,
        admitted: Vec<tokio::sync::OwnedSemaphorePermit>,
    ) -> WatchedIo<IO> {
        WatchedIo {
            inner,
            progress,
            _admitted: admitted,
        }
    }

    fn record(&self, polled: &Poll<std::io::Result<usize>>) {
        match polled {
            Poll::Pending => self.progress.refused(),
            Poll::Ready(Ok(n)) if *n > 0 => self.progress.wrote(),
            Poll::Ready(_) => {}
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for WatchedIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for WatchedIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.record(&polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.record(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Whose turn it is in one response body.
const CLIENT_TURN: u8 = 0;
const UPSTREAM_TURN: u8 = 1;
const FINISHED: u8 = 2;
const CUT: u8 = 3;

/// One response body's state, shared between the body and the connection's watchdog.
struct Sending {
    /// Milliseconds since the connection's clock started, at the last turn change.
    since: AtomicU64,
    turn: AtomicU8,
    /// The upstream's (or tokengate's own) body; `None` once cut.
    body: Mutex<Option<Body>>,
}

/// The response bodies of one client connection.
pub struct Responses {
    clock: Instant,
    live: Mutex<Vec<Weak<Sending>>>,
}

/// What a sweep found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Bodies not yet finished.
    pub live: usize,
    /// Of those, bodies cut for making no progress (now or before).
    pub cut: usize,
}

impl Responses {
    /// The (empty) set of one new client connection, its clock starting now.
    pub fn new() -> Arc<Responses> {
        Arc::new(Responses {
            clock: Instant::now(),
            live: Mutex::new(Vec::new()),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Wraps a response body that is about to be sent: it is the client's turn from now on.
    pub fn watch(self: &Arc<Self>, body: Body) -> WatchedBody {
        let state = Arc::new(Sending {
            since: AtomicU64::new(self.now_ms()),
            turn: AtomicU8::new(CLIENT_TURN),
            body: Mutex::new(Some(body)),
        });
        if let Ok(mut live) = self.live.lock() {
            live.retain(|w| w.strong_count() > 0);
            live.push(Arc::downgrade(&state));
        }
        WatchedBody {
            state,
            owner: self.clone(),
        }
    }

    /// Cuts every body that has waited on the client for `send_timeout`, and counts.
    pub fn sweep(&self, send_timeout: Duration) -> Sweep {
        let now = self.now_ms();
        let limit = u64::try_from(send_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut found = Sweep::default();
        let Ok(live) = self.live.lock() else {
            return found;
        };
        for state in live.iter().filter_map(Weak::upgrade) {
            match state.turn.load(Ordering::Relaxed) {
                FINISHED => continue,
                CUT => found.cut += 1,
                CLIENT_TURN if now.saturating_sub(state.since.load(Ordering::Relaxed)) >= limit => {
                    state.turn.store(CUT, Ordering::Relaxed);
                    // Dropped here, not when hyper next polls (which a zero window may
                    // never allow): the upstream connection is released now.
                    let body = state.body.lock().ok().and_then(|mut b| b.take());
                    drop(body);
                    found.cut += 1;
                }
                _ => {}
            }
            found.live += 1;
        }
        found
    }
}

/// The error a cut body ends with: hyper resets the HTTP/2 stream or closes the connection.
#[derive(Debug, thiserror::Error)]
#[error("the client made no progress reading the response for the send timeout")]
pub struct SendTimedOut;

/// A response body watched by [`Responses`].
pub struct WatchedBody {
    state: Arc<Sending>,
    owner: Arc<Responses>,
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        self.state.turn.store(FINISHED, Ordering::Relaxed);
    }
}

impl http_body::Body for WatchedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Ok(mut slot) = this.state.body.lock() else {
            return Poll::Ready(Some(Err(Box::new(SendTimedOut))));
        };
        let Some(body) = slot.as_mut() else {
            return Poll::Ready(Some(Err(Box::new(SendTimedOut))));
        };
        let polled = Pin::new(body).poll_frame(cx);
        let turn = match &polled {
            Poll::Pending => UPSTREAM_TURN,
            Poll::Ready(None) => FINISHED,
            Poll::Ready(Some(_)) => CLIENT_TURN,
        };
        // A cut that raced this poll stands.
        let _ = this
            .state
            .turn
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (t != CUT).then_some(turn)
            });
        this.state
            .since
            .store(this.owner.now_ms(), Ordering::Relaxed);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.state
            .body
            .lock()
            .ok()
            .and_then(|b| b.as_ref().map(|b| b.is_end_stream()))
            .unwrap_or(false)
    }

    fn size_hint(&self) -> SizeHint {
        self.state
            .body
            .lock()
            .ok()
            .and_then(|b| b.as_ref().map(|b| b.size_hint()))
            .unwrap_or_default()
    }
}

/// The error a request body ends with when the client stops sending it.
#[derive(Debug, thiserror::Error)]
#[error("the client sent no request body data for the body read timeout")]
pub struct BodyReadTimedOut;

/// Whether `error` or one of its causes is a [`BodyReadTimedOut`].
pub fn is_body_read_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<BodyReadTimedOut>().is_some() {
            return true;
        }
        current = e.source();
    }
    false
}

/// A request body that fails with [`BodyReadTimedOut`] when it is waited on for `timeout`
/// without a frame arriving. Only time spent waiting counts: an upstream that does not read
/// the body is not the client's fault.
pub struct ReadTimeout<B> {
    inner: B,
    timeout: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> ReadTimeout<B> {
    /// Wraps `inner`, failing it after `timeout` (`limits.body_read_timeout`) of waiting for
    /// a frame; the wait restarts with every frame.
    pub fn new(inner: B, timeout: Duration) -> ReadTimeout<B> {
        ReadTimeout {
            inner,
            timeout,
            deadline: None,
        }
    }
}

impl<B> http_body::Body for ReadTimeout<B>
where
    B: http_body::Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.deadline = None;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyReadTimedOut)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future as _;

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that only holds `guard`, so a test can see when it is dropped.
    struct Held(#[allow(dead_code)] Arc<()>);

    impl http_body::Body for Held {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_body_the_client_does_not_take_is_cut_and_its_source_dropped() {
        let responses = Responses::new();
        let source = Arc::new(());
        let mut watched = responses.watch(Held(source.clone()).boxed());
        assert_eq!(
            responses.sweep(Duration::from_secs(60)),
            Sweep { live: 1, cut: 0 }
        );
        assert_eq!(responses.sweep(Duration::ZERO), Sweep { live: 1, cut: 1 });
        assert_eq!(
            Arc::strong_count(&source),
            1,
            "the upstream body was not dropped"
        );
        assert!(matches!(watched.frame().await, Some(Err(_))));
        drop(watched);
        assert_eq!(responses.sweep(Duration::ZERO), Sweep { live: 0, cut: 0 });
    }

    #[tokio::test]
    async fn waiting_on_the_upstream_is_never_cut() {
        let responses = Responses::new();
        let mut watched = responses.watch(Held(Arc::new(())).boxed());
        let polled = tokio::time::timeout(Duration::from_millis(10), watched.frame()).await;
        assert!(polled.is_err(), "the body had nothing to give");
        assert_eq!(responses.sweep(Duration::ZERO), Sweep { live: 1, cut: 0 });
    }

    #[tokio::test]
    async fn a_silent_request_body_times_out() {
        let mut body = ReadTimeout::new(Held(Arc::new(())), Duration::from_millis(50));
        let frame = BodyExt::frame(&mut body).await;
        match frame {
            Some(Err(e)) => assert!(is_body_read_timeout(e.as_ref())),
            _ => panic!("expected a timeout"),
        }
    }
}
