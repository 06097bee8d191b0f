//! What a session writes to its server, in order, from whoever sends.
//!
//! Shared by rmcp's sends (through [`super::wire`]) and weir's own
//! `tools/call` requests ([`super::lane`]): every line goes into one queue,
//! in the order sent, and is written to the pipe at once, from the sender's
//! own task, when the pipe has room. When it has not, one flusher task owns
//! the pipe until the queue is empty — the pipe remembers a single waker,
//! so only one party may wait on it — and wakes the senders waiting for
//! their lines as they go out. Each sender is done when its own line is.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::AsyncWrite;

/// Where the lines go: the server's stdin.
pub(crate) type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// A session's outbox. Cheap to clone: every clone is the same queue.
#[derive(Clone)]
pub(crate) struct Outbox(Arc<Mutex<Queue>>);

struct Queue {
    /// `None` once the session is closed (which closes the pipe).
    writer: Option<Writer>,
    /// Bytes queued and not yet written.
    queued: Vec<u8>,
    /// Bytes written since the start; a line is out when this passes its
    /// end.
    written: u64,
    /// Senders waiting for their lines, and the flusher: woken on
    /// progress, on failure and on close.
    waiting: Vec<Waker>,
    /// The write error that broke the pipe, for every later send.
    failed: Option<std::io::ErrorKind>,
    /// A flusher task owns the pipe (the queue was left non-empty).
    flushing: bool,
}

impl Outbox {
    pub fn new(writer: Writer) -> Self {
        Self(Arc::new(Mutex::new(Queue {
            writer: Some(writer),
            queued: Vec::new(),
            written: 0,
            waiting: Vec::new(),
            failed: None,
            flushing: false,
        })))
    }

    fn lock(&self) -> std::io::Result<MutexGuard<'_, Queue>> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("the session's outbox is poisoned"))
    }

    /// [`send_line`](Outbox::send_line) for a message, as one line of
    /// JSON.
    pub fn send_json<M: serde::Serialize>(&self, message: &M) -> std::io::Result<u64> {
        let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.send_line(&line)
    }

    /// Queues a line and writes what the pipe takes now; returns the count
    /// of bytes written once the line is out, for [`Outbox::poll_sent`].
    /// Fails at once when the pipe is closed or broken.
    pub fn send_line(&self, line: &[u8]) -> std::io::Result<u64> {
        let mut queue = self.lock()?;
        queue.usable()?;
        queue.queued.extend_from_slice(line);
        let end = queue.written + queue.queued.len() as u64;
        if queue.flushing {
            // The flusher owns the pipe; the line goes out after the others.
            return Ok(end);
        }
        // A waker that does nothing: if the pipe is full, the flusher polls
        // again with its own before anyone waits.
        match queue.poll_write(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Err(e)) => Err(e),
            Poll::Ready(Ok(())) => Ok(end),
            Poll::Pending => {
                // Outside a runtime (a call dropped while one shuts down)
                // there is no one to flush: the line stays queued.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    queue.flushing = true;
                    drop(queue);
                    runtime.spawn(self.clone().flush());
                }
                Ok(end)
            }
        }
    }

    /// `Ready` once the bytes up to `end` are written; an error if the pipe
    /// broke or the session closed first.
    pub fn poll_sent(&self, end: u64, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let mut queue = match self.lock() {
            Ok(queue) => queue,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if queue.written >= end {
            return Poll::Ready(Ok(()));
        }
        if let Err(e) = queue.usable() {
            return Poll::Ready(Err(e));
        }
        queue.wait(cx);
        Poll::Pending
    }

    /// Whether lines can still be sent: not closed, not broken.
    pub fn is_usable(&self) -> bool {
        self.lock().is_ok_and(|queue| queue.usable().is_ok())
    }

    /// Closes the pipe (the server sees the end of its input) and fails
    /// every sender still waiting.
    pub fn close(&self) {
        if let Ok(mut queue) = self.lock() {
            queue.writer = None;
            queue.queued.clear();
            queue.waiting.drain(..).for_each(Waker::wake);
        }
    }

    /// Writes the queue out while the pipe is full, then gives the pipe
    /// back to the senders.
    async fn flush(self) {
        std::future::poll_fn(|cx| {
            let Ok(mut queue) = self.lock() else {
                return Poll::Ready(());
            };
            match queue.poll_write(cx) {
                Poll::Pending => {
                    // Woken by the pipe, or by `close`.
                    queue.wait(cx);
                    Poll::Pending
                }
                Poll::Ready(_) => {
                    queue.flushing = false;
                    Poll::Ready(())
                }
            }
        })
        .await
    }
}

impl Queue {
    fn usable(&self) -> std::io::Result<()> {
        match (self.failed, &self.writer) {
            (Some(kind), _) => Err(kind.into()),
            (None, None) => Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the session's transport is closed",
            )),
            (None, Some(_)) => Ok(()),
        }
    }

    fn wait(&mut self, cx: &Context<'_>) {
        if !self.waiting.iter().any(|w| w.will_wake(cx.waker())) {
            self.waiting.push(cx.waker().clone());
        }
    }

    /// Writes what the pipe takes. `Ready(Ok)` once everything queued is
    /// out; `Pending` with `cx` registered on the pipe.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.usable()?;
        let Some(writer) = self.writer.as_mut() else {
            return Poll::Ready(Err(std::io::ErrorKind::NotConnected.into()));
        };
        let mut progress = false;
        let mut outcome = Poll::Ready(Ok(()));
        while !self.queued.is_empty() {
            match Pin::new(&mut *writer).poll_write(cx, &self.queued) {
                Poll::Ready(Ok(0)) => {
                    self.failed = Some(std::io::ErrorKind::WriteZero);
                    outcome = Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                    break;
                }
                Poll::Ready(Ok(n)) => {
                    self.queued.drain(..n);
                    self.written += n as u64;
                    progress = true;
                }
                Poll::Ready(Err(e)) => {
                    self.failed = Some(e.kind());
                    outcome = Poll::Ready(Err(e));
                    break;
                }
                Poll::Pending => {
                    outcome = Poll::Pending;
                    break;
                }
            }
        }
        if progress || self.failed.is_some() {
            self.waiting.drain(..).for_each(Waker::wake);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Lines sent behind a full pipe all go out, in order, once the server
    /// reads — also the line nobody waits for (a cancellation) — and every
    /// sender waiting is told.
    #[tokio::test]
    async fn a_full_pipe_drains_in_order() {
        let (to_server, mut server) = tokio::io::duplex(16);
        let outbox = Outbox::new(Box::new(to_server));
        let mut ends = Vec::new();
        for i in 0..10 {
            ends.push(
                outbox
                    .send_line(format!("line {i}\n").as_bytes())
                    .expect("queued"),
            );
        }
        // Nobody waits for the last one.
        outbox.send_line(b"unwatched\n").expect("queued");
        let waiters: Vec<_> = ends
            .into_iter()
            .map(|end| {
                let outbox = outbox.clone();
                tokio::spawn(std::future::poll_fn(move |cx| outbox.poll_sent(end, cx)))
            })
            .collect();
        let mut read = String::new();
        let mut buf = [0u8; 7];
        while !read.ends_with("unwatched\n") {
            let n = server.read(&mut buf).await.expect("read");
            read.push_str(std::str::from_utf8(&buf[..n]).expect("utf-8"));
        }
        for waiter in waiters {
            waiter.await.expect("joined").expect("sent");
        }
        let want: String = (0..10).map(|i| format!("line {i}\n")).collect();
        assert_eq!(read, want + "unwatched\n");
        assert!(outbox.is_usable());
    }

    /// Closing fails the senders still waiting, and every later send; the
    /// server sees the end of its input.
    #[tokio::test]
    async fn close_fails_the_waiting() {
        let (to_server, mut server) = tokio::io::duplex(8);
        let outbox = Outbox::new(Box::new(to_server));
        let end = outbox
            .send_line(b"a line longer than the pipe\n")
            .expect("queued");
        let waiting = {
            let outbox = outbox.clone();
            tokio::spawn(std::future::poll_fn(move |cx| outbox.poll_sent(end, cx)))
        };
        tokio::task::yield_now().await;
        outbox.close();
        assert!(waiting.await.expect("joined").is_err());
        assert!(outbox.send_line(b"late\n").is_err());
        assert!(!outbox.is_usable());
        let mut rest = Vec::new();
        // Let the flusher see the close and drop its handle on the pipe.
        tokio::task::yield_now().await;
        server.read_to_end(&mut rest).await.expect("read");
        assert_eq!(rest, b"a line l");
    }
}
