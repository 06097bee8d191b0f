//! One HTTP listener's connections, each bounded: how many there are, how
//! long a client may take to send a request's header, and how long a
//! connection may sit with nothing to do.
//!
//! A connection is in one of three states, and each has its own clock:
//!
//! - **idle** (no request in flight, nothing of the next one read yet):
//!   closed after the idle timeout;
//! - **reading a header** (a byte of the next request came, the header is
//!   not complete): closed after the header timeout, so a client sending
//!   it a byte at a time holds its connection for a bounded time;
//! - **busy** (a request is in flight, its response still streaming):
//!   never closed for time here. A request's body has its own timeout
//!   (see [`super::http`]); a run its deadline; an event stream is meant
//!   to stay open.
//!
//! Past the connection limit a new connection is answered `503` and
//! closed at once, rather than left waiting in the kernel's queue.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::http::{Ending, Routes};
use super::in_flight::Answering;
use crate::config::HttpLimits;

/// How long a refused connection's `503` may take to write.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// On a stop, how long a connection that has sent nothing yet is given to
/// send its request: one accepted a moment before has it on the way.
const FIRST_REQUEST_WAIT: Duration = Duration::from_secs(1);

/// What a connection is doing, shared by its IO, its requests and its
/// watchdog.
struct Activity {
    /// tokio's clock, so that tests can pause it.
    started: tokio::time::Instant,
    /// Requests whose response has not finished.
    in_flight: AtomicUsize,
    /// Requests begun on this connection, ever.
    served: AtomicUsize,
    /// Milliseconds since `started` when the connection last became idle.
    idle_since: AtomicU64,
    /// Milliseconds since `started`, plus one, when the first byte of the
    /// next request came while idle; 0: none yet.
    header_since: AtomicU64,
    /// Wakes the watchdog when the state changes.
    changed: Notify,
    /// Counted among what a stop waits for (see [`super::in_flight`])
    /// until the connection's first request is counted itself, or the
    /// connection ends (this is dropped with it): one accepted just
    /// before a stop has its request on the way.
    unheard: std::sync::Mutex<Option<Answering>>,
}

impl Activity {
    fn new(unheard: Answering) -> Self {
        Self {
            started: tokio::time::Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            header_since: AtomicU64::new(0),
            changed: Notify::new(),
            unheard: std::sync::Mutex::new(Some(unheard)),
        }
    }

    /// The stop need no longer wait for this connection as such.
    fn heard(&self) {
        if let Ok(mut unheard) = self.unheard.lock() {
            unheard.take();
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> tokio::time::Instant {
        self.started + Duration::from_millis(ms)
    }

    /// Bytes were read.
    fn read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.header_since.load(Ordering::Acquire) == 0
        {
            self.header_since
                .store(self.now_ms() + 1, Ordering::Release);
            self.changed.notify_one();
        }
    }

    /// A request's header is complete: its response is now in flight
    /// (and the request counted by the caller).
    fn begin(&self) {
        self.heard();
        self.served.fetch_add(1, Ordering::AcqRel);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.header_since.store(0, Ordering::Release);
        self.changed.notify_one();
    }

    /// A response finished (or was dropped).
    fn end(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since.store(self.now_ms(), Ordering::Release);
            self.header_since.store(0, Ordering::Release);
        }
        self.changed.notify_one();
    }

    /// When this connection must close if nothing changes, and why; `None`
    /// while a request is in flight.
    fn deadline(&self, limits: &HttpLimits) -> Option<(tokio::time::Instant, &'static str)> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let header = self.header_since.load(Ordering::Acquire);
        Some(if header > 0 {
            (
                self.at(header - 1) + limits.header_timeout,
                "its request header did not arrive within weir.http_header_timeout_secs",
            )
        } else {
            (
                self.at(self.idle_since.load(Ordering::Acquire)) + limits.idle_timeout,
                "it was idle for weir.http_idle_timeout_secs",
            )
        })
    }

    /// Resolves when the connection has overstayed its state's clock.
    /// Resolves when the connection may be closed for a stop: no request
    /// in progress or arriving, and one answered already — or none came
    /// within `first`. A connection accepted just before the stop (its
    /// request on the way) is answered, not dropped unread.
    async fn between_requests(&self, first: Duration) -> &'static str {
        let since = tokio::time::Instant::now();
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let quiet = self.in_flight.load(Ordering::Acquire) == 0
                && self.header_since.load(Ordering::Acquire) == 0;
            if quiet && self.served.load(Ordering::Acquire) > 0 {
                return "answered";
            }
            if quiet && since.elapsed() >= first {
                return "no request came";
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(since + first) => {}
            }
        }
    }

    async fn expired(&self, limits: &HttpLimits) -> &'static str {
        loop {
            let changed = self.changed.notified();
            match self.deadline(limits) {
                None => changed.await,
                Some((at, why)) => {
                    tokio::select! {
                        () = changed => {}
                        () = tokio::time::sleep_until(at) => {
                            // Still the same state at its deadline?
                            if self.deadline(limits).is_some_and(|(now, _)| now <= tokio::time::Instant::now()) {
                                return why;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A connection's stream, telling its [`Activity`] when bytes come in.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl tokio::io::AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        result
    }
}

impl tokio::io::AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
}

/// Serves `routes` on `listener` until `stop`, within `limits`;
/// connections in progress then finish the request they are on.
///
/// A stop waits for the listener from this call on (not from the first
/// poll of the future, which a stop may come before) until it has taken
/// the connections queued in the kernel, each then counted until its
/// request is.
pub fn serve(
    listener: TcpListener,
    routes: Routes,
    stop: CancellationToken,
    limits: HttpLimits,
) -> impl Future<Output = ()> {
    let listening = routes.in_flight().begin();
    accept(listener, routes, stop, limits, listening)
}

async fn accept(
    listener: TcpListener,
    routes: Routes,
    stop: CancellationToken,
    limits: HttpLimits,
    listening: Answering,
) {
    let connections = tokio_util::task::TaskTracker::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let limits = Arc::new(limits);
    let take = |stream: TcpStream, peer: SocketAddr| {
        // An answer goes out in several writes (headers, the stream's
        // events, its end): with Nagle's algorithm on, the last
        // waits for the client's delayed ACK, ~40 ms a call.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(
                %peer,
                max = limits.max_connections,
                "connection refused: weir.http_max_connections connections are open"
            );
            connections.spawn(refuse(stream));
            return;
        };
        let routes = routes.clone();
        let stop = stop.clone();
        let limits = limits.clone();
        let unheard = routes.in_flight().begin();
        connections.spawn(async move {
            let _permit = permit;
            serve_connection(stream, peer, routes, stop, &limits, unheard).await;
        });
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => take(stream, peer),
                Err(error) => {
                    // Out of file descriptors, say: wait a little, go on.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = stop.cancelled() => break,
        }
    }
    // Connections the kernel has already completed are taken and answered
    // (closing the listener would reset them, their requests sent); then
    // the listener closes at once, not when the connections are done: a
    // connection tried from now on is refused, and the load balancer sends
    // its request to another replica.
    for (stream, peer) in queued(listener) {
        take(stream, peer);
    }
    drop(listening);
    connections.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), connections.wait()).await;
}

/// The connections waiting in `listener`'s queue, taken without waiting;
/// the listener is closed when they are.
fn queued(listener: TcpListener) -> Vec<(TcpStream, SocketAddr)> {
    let Ok(listener) = listener.into_std() else {
        return Vec::new();
    };
    let mut taken = Vec::new();
    if listener.set_nonblocking(true).is_err() {
        return taken;
    }
    while let Ok((stream, peer)) = listener.accept() {
        match stream
            .set_nonblocking(true)
            .and_then(|()| TcpStream::from_std(stream))
        {
            Ok(stream) => taken.push((stream, peer)),
            Err(error) => tracing::debug!(%peer, %error, "cannot take a queued connection"),
        }
    }
    taken
}

/// One connection, until it closes, overstays a clock, or `stop`.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    routes: Routes,
    stop: CancellationToken,
    limits: &HttpLimits,
    unheard: Answering,
) {
    let activity = Arc::new(Activity::new(unheard));
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let routes = routes.clone();
            let activity = activity.clone();
            // Counted for a stop until its answer has begun; from then on
            // an answer that streams counts itself (see `Routes::handle`).
            let deciding = routes.in_flight().begin();
            activity.begin();
            async move {
                let response = routes.handle(request).await;
                drop(deciding);
                // Done, or dropped: either way the request is over.
                Ok::<_, Infallible>(
                    response.map(|inner| Ending::new(inner, Box::new(move |_| activity.end()))),
                )
            }
        })
    };
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        why = activity.expired(limits) => {
            tracing::debug!(%peer, why, "HTTP connection closed");
            return;
        }
        () = stop.cancelled() => {
            // Answer the request in progress (or on its way), then close.
            // A header still dribbling in keeps its clock: a slow client
            // cannot hold the stop for the whole grace period.
            tokio::select! {
                result = connection.as_mut() => result,
                why = activity.expired(limits) => {
                    tracing::debug!(%peer, why, "HTTP connection closed during the stop");
                    return;
                }
                why = activity.between_requests(FIRST_REQUEST_WAIT) => {
                    tracing::debug!(%peer, why, "HTTP connection closing for the stop");
                    connection.as_mut().graceful_shutdown();
                    connection.as_mut().await
                }
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "HTTP connection ended");
    }
}

/// What a connection over the limit is told: written by hand, since no
/// hyper connection is made for it.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
    content-type: text/plain; charset=utf-8\r\n\
    retry-after: 1\r\nconnection: close\r\ncontent-length: 53\r\n\r\n\
    weir is serving its limit of connections; retry soon\n";

/// Answers a connection over the limit with `503` and closes it.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(REFUSAL_WRITE, async {
        let _ = stream.write_all(REFUSAL).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The connection's clock follows its state: idle, then reading a
    /// header, then busy (no clock), then idle again.
    #[tokio::test(start_paused = true)]
    async fn clocks_follow_the_state() {
        let limits = HttpLimits {
            header_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(10),
            ..HttpLimits::default()
        };
        let stop_waits_for = super::super::in_flight::InFlight::default();
        let activity = Activity::new(stop_waits_for.begin());
        assert_eq!(stop_waits_for.count(), 1, "a new connection is waited for");
        let (_, why) = activity.deadline(&limits).expect("idle has a clock");
        assert!(why.contains("idle"));
        activity.read();
        let (at, why) = activity.deadline(&limits).expect("header has a clock");
        assert!(why.contains("header"));
        assert!(at <= tokio::time::Instant::now() + Duration::from_secs(3));
        activity.begin();
        assert_eq!(stop_waits_for.count(), 0, "its request counts itself");
        assert!(activity.deadline(&limits).is_none(), "busy has none");
        activity.read();
        assert!(activity.deadline(&limits).is_none(), "body bytes are busy");
        activity.end();
        let (_, why) = activity.deadline(&limits).expect("idle again");
        assert!(why.contains("idle"));
        let expired = activity.expired(&limits).await;
        assert!(expired.contains("idle"));
    }

    /// The refusal is a whole HTTP response: its content-length is the
    /// length of its body.
    #[test]
    fn refusal_is_well_formed() {
        let text = std::str::from_utf8(REFUSAL).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|n| n.parse().ok())
            .expect("content-length");
        assert_eq!(length, body.len());
        assert!(head.starts_with("HTTP/1.1 503 "));
    }
}
