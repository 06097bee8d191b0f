//! What a session writes to its server, in order, from whoever sends.
//!
//! Shared by rmcp's sends (through [`super::wire`]) and weir's own
//! `tools/call` requests ([`super::lane`]): every line goes into one queue,
//! in the order sent, and is written to the pipe at once when the pipe has
//! room. Any sender waiting on a full pipe may push everyone's bytes out;
//! each is done when its own are.

use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::AsyncWrite;

/// Where the lines go: the server's stdin.
pub(crate) type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Lines written to the server, in the order `send` was called. Any send
/// future may push the bytes out; each is done when its own bytes are.
pub(crate) struct Outbox {
    /// `None` once the transport is closed (which closes the pipe).
    writer: Option<Writer>,
    /// Bytes queued and not yet written.
    queued: Vec<u8>,
    /// Bytes written since the start; a send is done when this passes the
    /// end of its line.
    written: u64,
    /// Sends waiting for their bytes to go out: woken on progress, since
    /// the pipe remembers only the last waker.
    waiting: Vec<Waker>,
    /// The write error that broke the pipe, for every later send.
    failed: Option<std::io::ErrorKind>,
}

impl Outbox {
    pub fn new(writer: Writer) -> Self {
        Self {
            writer: Some(writer),
            queued: Vec::new(),
            written: 0,
            waiting: Vec::new(),
            failed: None,
        }
    }

    /// Queues a line and writes what the pipe takes now; returns the count
    /// of bytes written once the line is out, for [`Outbox::poll_sent`].
    /// Fails at once when the pipe is closed or broken.
    pub fn send_line(&mut self, line: &[u8]) -> std::io::Result<u64> {
        if let Some(kind) = self.failed {
            return Err(kind.into());
        }
        if self.writer.is_none() {
            return Err(closed());
        }
        let end = self.queue(line);
        // A waker that does nothing: whoever waits for the line polls
        // with its own.
        match self.poll_write_queued(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Err(e)) => Err(e),
            _ => Ok(end),
        }
    }

    /// Closes the pipe: the server sees the end of its input.
    pub fn close(&mut self) {
        self.writer = None;
    }

    /// Queues a line; returns the count of bytes written once it is out.
    fn queue(&mut self, line: &[u8]) -> u64 {
        self.queued.extend_from_slice(line);
        self.written + self.queued.len() as u64
    }

    /// Writes what the pipe takes. `Ready` once everything queued is out.
    fn poll_write_queued(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Some(kind) = self.failed {
            return Poll::Ready(Err(kind.into()));
        }
        let Some(writer) = self.writer.as_mut() else {
            return Poll::Ready(Err(closed()));
        };
        let mut progress = false;
        while !self.queued.is_empty() {
            match Pin::new(&mut *writer).poll_write(cx, &self.queued) {
                Poll::Ready(Ok(0)) => {
                    self.failed = Some(std::io::ErrorKind::WriteZero);
                    break;
                }
                Poll::Ready(Ok(n)) => {
                    self.queued.drain(..n);
                    self.written += n as u64;
                    progress = true;
                }
                Poll::Ready(Err(e)) => {
                    self.failed = Some(e.kind());
                    break;
                }
                Poll::Pending => break,
            }
        }
        if progress || self.failed.is_some() {
            self.waiting.drain(..).for_each(Waker::wake);
        }
        match self.failed {
            Some(kind) => Poll::Ready(Err(kind.into())),
            None if self.queued.is_empty() => Poll::Ready(Ok(())),
            None => Poll::Pending,
        }
    }

    /// `Ready` once the bytes up to `end` are written.
    pub fn poll_sent(&mut self, end: u64, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.written >= end {
            return Poll::Ready(Ok(()));
        }
        match self.poll_write_queued(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ if self.written >= end => Poll::Ready(Ok(())),
            _ => {
                if !self.waiting.iter().any(|w| w.will_wake(cx.waker())) {
                    self.waiting.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

/// The outbox, or an I/O error if a panic poisoned it.
pub(crate) fn lock(outbox: &Mutex<Outbox>) -> std::io::Result<MutexGuard<'_, Outbox>> {
    outbox
        .lock()
        .map_err(|_| std::io::Error::other("the session's outbox is poisoned"))
}

fn closed() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "the session's transport is closed",
    )
}
