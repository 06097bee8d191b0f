//! A guard on what a stdio server writes: every line must be a JSON-RPC
//! message.
//!
//! rmcp skips lines it cannot parse, so a server that writes garbage would
//! leave its callers waiting for answers that never come. This reader sits
//! between the server's stdout and rmcp and ends the session at the first
//! bad line instead: in-flight calls fail at once, the error is logged with
//! the line, and the next call gets a fresh session.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::io::{AsyncRead, ReadBuf};

/// Longest line accepted from a server (rmcp's own limit is similar): a
/// bigger message is treated as a broken server, not buffered forever.
pub(crate) const MAX_LINE: usize = 64 << 20;

/// How much of a bad line is quoted in the log and the error.
const QUOTE: usize = 160;

/// The envelope every JSON-RPC 2.0 message has; the values are skipped,
/// not built, so checking costs a scan of the line.
#[derive(Deserialize)]
struct Envelope {
    jsonrpc: Option<IgnoredAny>,
    method: Option<IgnoredAny>,
    id: Option<IgnoredAny>,
    result: Option<IgnoredAny>,
    error: Option<IgnoredAny>,
}

/// Why a line is not a JSON-RPC message, or `None` if it is one.
pub(crate) fn check_line(line: &[u8]) -> Option<String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match line.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return None,
        // Serde would also read a struct from an array; MCP has no batches.
        Some(b'{') => {}
        Some(_) => return Some(format!("not JSON-RPC (not a JSON object): {}", quote(line))),
    }
    match serde_json::from_slice::<Envelope>(line) {
        Err(e) => Some(format!("not JSON-RPC ({e}): {}", quote(line))),
        Ok(m) if m.jsonrpc.is_none() => {
            Some(format!("not JSON-RPC (no \"jsonrpc\"): {}", quote(line)))
        }
        Ok(m)
            if m.method.is_none()
                && (m.id.is_none() || (m.result.is_none() && m.error.is_none())) =>
        {
            Some(format!(
                "not JSON-RPC (neither a request, a notification nor a response): {}",
                quote(line)
            ))
        }
        Ok(_) => None,
    }
}

fn quote(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(QUOTE)]);
    if line.len() > QUOTE {
        format!("{text:?}…")
    } else {
        format!("{text:?}")
    }
}

/// Where a session's protocol failure is recorded for the error messages of
/// the calls it ends.
pub(crate) type ProtocolFault = Arc<Mutex<Option<String>>>;

/// Passes a server's stdout through, checking each complete line.
pub(crate) struct CheckedLines<R> {
    inner: R,
    server: Arc<str>,
    line: Vec<u8>,
    fault: ProtocolFault,
}

impl<R> CheckedLines<R> {
    pub fn new(inner: R, server: Arc<str>, fault: ProtocolFault) -> Self {
        Self {
            inner,
            server,
            line: Vec::new(),
            fault,
        }
    }

    /// Checks the bytes just read; the first bad line becomes the error.
    fn scan(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while let Some(i) = bytes.iter().position(|&b| b == b'\n') {
            let complete = if self.line.is_empty() {
                check_line(&bytes[..i])
            } else {
                self.line.extend_from_slice(&bytes[..i]);
                let verdict = check_line(&self.line);
                self.line.clear();
                verdict
            };
            if let Some(problem) = complete {
                return Err(problem);
            }
            bytes = &bytes[i + 1..];
        }
        if self.line.len() + bytes.len() > MAX_LINE {
            return Err(format!("a line longer than {MAX_LINE} bytes"));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for CheckedLines<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let start = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if let Err(problem) = this.scan(&buf.filled()[start..]) {
                    tracing::error!(server = %this.server, %problem, "server broke the protocol; closing its session");
                    if let Ok(mut fault) = this.fault.lock() {
                        *fault = Some(problem.clone());
                    }
                    buf.set_filled(start);
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        problem,
                    )));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every JSON-RPC shape passes; garbage and wrong shapes are named.
    #[test]
    fn checks_lines() {
        let good: &[&[u8]] = &[
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#,
            br#"{"jsonrpc":"2.0","id":"a","error":{"code":-32602,"message":"x"}}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#,
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\r",
            b"   ",
        ];
        for line in good {
            assert_eq!(check_line(line), None, "{}", String::from_utf8_lossy(line));
        }
        let bad: &[(&[u8], &str)] = &[
            (
                b"this is not json",
                "not JSON-RPC (not a JSON object): \"this is not json\"",
            ),
            (b"{oops", "not JSON-RPC (key must be a string"),
            (br#"{"hello": "world"}"#, "no \"jsonrpc\""),
            (br#"{"jsonrpc":"2.0","id":1}"#, "neither a request"),
            (b"[1, 2, 3, 4, 5]", "not a JSON object"),
        ];
        for (line, want) in bad {
            let got = check_line(line).expect("rejected");
            assert!(got.contains(want), "{got}");
        }
    }

    /// Lines split across reads are checked whole; the first bad one fails
    /// the read and is recorded.
    #[tokio::test]
    async fn splits_and_failures() {
        use tokio::io::AsyncReadExt;
        let data = b"{\"jsonrpc\":\"2.0\",\"method\":\"a\"}\n{\"jsonrpc\":\"2.0\",\"met".to_vec();
        let rest = b"hod\":\"b\"}\ngarbage\n".to_vec();
        let reader = tokio_test_reader(vec![data, rest]);
        let fault = ProtocolFault::default();
        let mut checked = CheckedLines::new(reader, Arc::from("s"), fault.clone());
        let mut out = Vec::new();
        let err = checked
            .read_to_end(&mut out)
            .await
            .expect_err("garbage fails the read");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(String::from_utf8_lossy(&out).contains("\"method\":\"a\""));
        assert!(
            fault
                .lock()
                .unwrap()
                .as_deref()
                .is_some_and(|f| f.contains("\"garbage\""))
        );
    }

    /// An in-memory reader yielding the given chunks one read at a time.
    fn tokio_test_reader(chunks: Vec<Vec<u8>>) -> impl AsyncRead + Unpin {
        struct Chunks(std::collections::VecDeque<Vec<u8>>);
        impl AsyncRead for Chunks {
            fn poll_read(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<std::io::Result<()>> {
                if let Some(mut chunk) = self.0.pop_front() {
                    let n = chunk.len().min(buf.remaining());
                    buf.put_slice(&chunk[..n]);
                    if n < chunk.len() {
                        self.0.push_front(chunk.split_off(n));
                    }
                }
                Poll::Ready(Ok(()))
            }
        }
        Chunks(chunks.into())
    }
}
