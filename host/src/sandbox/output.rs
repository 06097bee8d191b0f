//! Where a plugin's stdout and stderr go: a buffer that keeps the first
//! bytes up to a cap and counts the rest.
//!
//! wasmtime-wasi's `MemoryOutputPipe` fails writes past its capacity, and a
//! Rust guest panics when `println!` fails, so a chatty plugin would die of
//! its own logging. This one never fails a write: it just stops keeping.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// How much a guest may write in one go; any positive figure is correct
/// since writes never block.
const WRITE_PERMIT: usize = 64 << 10;

#[derive(Debug, Default)]
struct Captured {
    kept: Vec<u8>,
    dropped: u64,
}

/// A capped capture buffer; clones share it.
#[derive(Debug, Clone)]
pub(crate) struct CappedOutput {
    cap: usize,
    captured: Arc<Mutex<Captured>>,
}

impl CappedOutput {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            captured: Arc::default(),
        }
    }

    fn keep(&self, bytes: &[u8]) {
        if let Ok(mut c) = self.captured.lock() {
            let room = self.cap.saturating_sub(c.kept.len());
            let n = bytes.len().min(room);
            c.kept.extend_from_slice(&bytes[..n]);
            c.dropped += (bytes.len() - n) as u64;
        }
    }

    /// The kept text and the number of bytes dropped.
    pub fn contents(&self) -> (String, u64) {
        match self.captured.lock() {
            Ok(c) => (String::from_utf8_lossy(&c.kept).into_owned(), c.dropped),
            Err(_) => (String::new(), 0),
        }
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.keep(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CappedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.keep(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output past the cap is dropped and counted, never an error.
    #[test]
    fn keeps_up_to_the_cap_and_counts_the_rest() {
        let out = CappedOutput::new(5);
        let mut stream = out.p2_stream();
        stream.write(Bytes::from_static(b"abc")).unwrap();
        stream.write(Bytes::from_static(b"defgh")).unwrap();
        stream.write(Bytes::from_static(b"ij")).unwrap();
        assert_eq!(out.contents(), ("abcde".to_owned(), 5));
    }
}
