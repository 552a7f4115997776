//! The response body type shared by every stage.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};

/// Any error a body can end with (hyper's, a timeout from `stall`, an upstream's), boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Any body tokengate sends: built in full here, streamed from an upstream later.
pub type Body = BoxBody<Bytes, BoxError>;

/// A body of exactly `bytes`, in one frame; its size is known, so hyper can send a
/// `Content-Length`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A body that counts the data bytes passing through it, and runs `on_end` with the total
/// when it is dropped (after the last frame, or when the connection goes away).
pub struct Metered<B> {
    inner: B,
    bytes: Arc<AtomicU64>,
    on_end: Option<Box<dyn FnOnce(u64) + Send + Sync>>,
}

impl<B> Metered<B> {
    /// Wraps `inner`, adding the length of each data frame to `bytes` (trailers and errors
    /// count nothing); `on_end`, if any, gets the total when the body is dropped.
    pub fn new(
        inner: B,
        bytes: Arc<AtomicU64>,
        on_end: Option<Box<dyn FnOnce(u64) + Send + Sync>>,
    ) -> Metered<B> {
        Metered {
            inner,
            bytes,
            on_end,
        }
    }
}

impl<B> Drop for Metered<B> {
    fn drop(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.bytes.load(Ordering::Relaxed));
        }
    }
}

impl<B> http_body::Body for Metered<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
