//! The stdio wire of a session: one JSON-RPC message per line, each way.
//!
//! weir's own rmcp transport for stdio servers, for three reasons:
//!
//! - **Every line a server writes must be JSON-RPC.** rmcp skips lines it
//!   cannot parse, so a server that writes garbage would leave its callers
//!   waiting for answers that never come. Here the first bad line ends the
//!   session instead: in-flight calls fail at once, the error is logged and
//!   recorded with the line, and the next call gets a fresh session.
//! - **Answers are read as what they answer.** rmcp reads a result by
//!   trying each of its ~20 result types in turn (an untagged enum): a
//!   `tools/call` result is the sixteenth, ~15 µs on every call. This wire
//!   sees each request go out, so it reads the answer to a `tools/call` as a
//!   `CallToolResult` at once (~1 µs), and hands anything else — and any
//!   answer that is not a plain result — to rmcp's own parse.
//! - **A request leaves when it is sent.** The line is written to the pipe
//!   from `send` itself when the pipe has room, rather than from the task
//!   rmcp spawns to await the send.
//!
//! An answer to a pending request that nothing can read fails that request
//! with an error saying so, rather than leaving it to time out.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use rmcp::model::{
    CallToolResult, ClientJsonRpcMessage, ClientNotification, ClientRequest, ErrorCode, ErrorData,
    JsonRpcMessage, ListToolsResult, RequestId, ServerJsonRpcMessage, ServerResult,
};
use rmcp::service::RoleClient;
use rmcp::transport::Transport;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};

/// Longest line accepted from a server (rmcp's own limit is similar): a
/// bigger message is treated as a broken server, not buffered forever.
pub(crate) const MAX_LINE: usize = 64 << 20;

/// How much of a bad line is quoted in the log and the error.
const QUOTE: usize = 160;

/// The `data` of the error this wire makes up for an answer it cannot
/// read, so that the call's error can say what happened.
pub(crate) const UNREADABLE: &str = "weir: unreadable answer";

/// Where a session's protocol failure is recorded for the error messages of
/// the calls it ends.
pub(crate) type ProtocolFault = Arc<Mutex<Option<String>>>;

/// The envelope every JSON-RPC 2.0 message has. Values are skipped, not
/// built (the result is borrowed as raw text), so reading it costs a scan
/// of the line.
#[derive(Deserialize)]
struct Envelope<'a> {
    jsonrpc: Option<IgnoredAny>,
    method: Option<IgnoredAny>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    error: Option<IgnoredAny>,
}

/// The envelope of a line, or why the line is not a JSON-RPC message.
/// `Ok(None)` for a blank line.
fn envelope(line: &[u8]) -> Result<Option<Envelope<'_>>, String> {
    match line.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Ok(None),
        // Serde would also read a struct from an array; MCP has no batches.
        Some(b'{') => {}
        Some(_) => return Err(format!("not JSON-RPC (not a JSON object): {}", quote(line))),
    }
    let envelope = serde_json::from_slice::<Envelope>(line)
        .map_err(|e| format!("not JSON-RPC ({e}): {}", quote(line)))?;
    if envelope.jsonrpc.is_none() {
        return Err(format!("not JSON-RPC (no \"jsonrpc\"): {}", quote(line)));
    }
    if envelope.method.is_none()
        && (envelope.id.is_none() || (envelope.result.is_none() && envelope.error.is_none()))
    {
        return Err(format!(
            "not JSON-RPC (neither a request, a notification nor a response): {}",
            quote(line)
        ));
    }
    Ok(Some(envelope))
}

fn quote(line: &[u8]) -> String {
    let text = String::from_utf8_lossy(&line[..line.len().min(QUOTE)]);
    if line.len() > QUOTE {
        format!("{text:?}…")
    } else {
        format!("{text:?}")
    }
}

/// What a pending request's answer should be, for the requests whose
/// answers are read directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    CallTool,
    ListTools,
}

impl Expect {
    fn of(request: &ClientRequest) -> Option<Self> {
        match request {
            ClientRequest::CallToolRequest(_) => Some(Self::CallTool),
            ClientRequest::ListToolsRequest(_) => Some(Self::ListTools),
            _ => None,
        }
    }

    /// The result, if it is a plain one of the expected type; anything else
    /// (a task, a request for input, a malformed result) is for rmcp's
    /// parse to name.
    fn read(self, result: &RawValue) -> Option<ServerResult> {
        match self {
            Self::CallTool => serde_json::from_str::<CallToolResult>(result.get())
                .ok()
                .map(ServerResult::CallToolResult),
            Self::ListTools => serde_json::from_str::<ListToolsResult>(result.get())
                .ok()
                .map(ServerResult::ListToolsResult),
        }
    }
}

/// Lines written to the server, in the order `send` was called. Any send
/// future may push the bytes out; each is done when its own bytes are.
struct Outbox<W> {
    /// `None` once the transport is closed (which closes the pipe).
    writer: Option<W>,
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

impl<W: AsyncWrite + Unpin> Outbox<W> {
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
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the session's transport is closed",
            )));
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
    fn poll_sent(&mut self, end: u64, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
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

fn lock<W>(outbox: &Mutex<Outbox<W>>) -> std::io::Result<MutexGuard<'_, Outbox<W>>> {
    outbox
        .lock()
        .map_err(|_| std::io::Error::other("the session's outbox is poisoned"))
}

/// The rmcp transport of one stdio session.
pub(crate) struct StdioWire<R, W> {
    server: Arc<str>,
    reader: BufReader<R>,
    /// The line being read (a line may come in several reads).
    line: Vec<u8>,
    outbox: Arc<Mutex<Outbox<W>>>,
    /// Requests in flight whose answers are read directly, by id.
    expected: HashMap<RequestId, Expect>,
    fault: ProtocolFault,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> StdioWire<R, W> {
    pub fn new(reader: R, writer: W, server: Arc<str>, fault: ProtocolFault) -> Self {
        Self {
            server,
            reader: BufReader::new(reader),
            line: Vec::new(),
            outbox: Arc::new(Mutex::new(Outbox {
                writer: Some(writer),
                queued: Vec::new(),
                written: 0,
                waiting: Vec::new(),
                failed: None,
            })),
            expected: HashMap::new(),
            fault,
        }
    }

    /// Notes what the answer to a request should be; forgets a request
    /// when it is cancelled (its answer may never come).
    fn note(&mut self, message: &ClientJsonRpcMessage) {
        match message {
            JsonRpcMessage::Request(request) => {
                if let Some(expect) = Expect::of(&request.request) {
                    self.expected.insert(request.id.clone(), expect);
                }
            }
            JsonRpcMessage::Notification(notification) => {
                if let ClientNotification::CancelledNotification(cancelled) =
                    &notification.notification
                    && let Some(id) = &cancelled.params.request_id
                {
                    self.expected.remove(id);
                }
            }
            _ => {}
        }
    }

    /// Reads the next complete line into `self.line` (without its `\n`).
    /// `Ok(false)` at the end of the stream.
    async fn read_line(&mut self) -> Result<bool, String> {
        self.line.clear();
        loop {
            let available = self
                .reader
                .fill_buf()
                .await
                .map_err(|e| format!("cannot read from the server: {e}"))?;
            if available.is_empty() {
                return Ok(false);
            }
            let (take, complete) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (available.len(), false),
            };
            if self.line.len() + take > MAX_LINE {
                return Err(format!("a line longer than {MAX_LINE} bytes"));
            }
            self.line.extend_from_slice(&available[..take]);
            self.reader.consume(take + usize::from(complete));
            if complete {
                return Ok(true);
            }
        }
    }

    /// The message on a line: `Ok(None)` for a blank line or a message
    /// neither this wire nor rmcp can read (rmcp skips those too); `Err`
    /// for a line that is not JSON-RPC at all.
    fn read_message(&mut self, line: &[u8]) -> Result<Option<ServerJsonRpcMessage>, String> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        let Some(envelope) = envelope(line)? else {
            return Ok(None);
        };
        // An answer: to a pending request, whose id rmcp is waiting on.
        let answer_id = match (&envelope.method, envelope.id) {
            (None, Some(id)) => serde_json::from_str::<RequestId>(id.get()).ok(),
            _ => None,
        };
        if let (Some(id), Some(result)) = (&answer_id, envelope.result)
            && let Some(expect) = self.expected.remove(id)
            && let Some(result) = expect.read(result)
        {
            return Ok(Some(ServerJsonRpcMessage::response(result, id.clone())));
        }
        match serde_json::from_slice::<ServerJsonRpcMessage>(line) {
            Ok(message) => Ok(Some(message)),
            Err(error) => {
                tracing::warn!(server = %self.server, %error, line = %quote(line),
                    "cannot read a message from the server");
                Ok(answer_id.map(|id| {
                    let data = Some(serde_json::Value::String(UNREADABLE.to_owned()));
                    let error = ErrorData::new(ErrorCode::INTERNAL_ERROR, error.to_string(), data);
                    ServerJsonRpcMessage::error(error, Some(id))
                }))
            }
        }
    }

    /// Ends the session over a protocol fault: logged, and recorded for the
    /// errors of the calls it ends.
    fn broken(&self, problem: String) {
        tracing::error!(server = %self.server, %problem, "server broke the protocol; closing its session");
        if let Ok(mut fault) = self.fault.lock() {
            *fault = Some(problem);
        }
    }
}

impl<R, W> Transport<RoleClient> for StdioWire<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.note(&item);
        let outbox = self.outbox.clone();
        let queued = serde_json::to_vec(&item)
            .map_err(std::io::Error::other)
            .and_then(|mut line| {
                line.push(b'\n');
                let mut outbox = lock(&outbox)?;
                let end = outbox.queue(&line);
                // Out now if the pipe has room; the future finishes the job
                // otherwise (and registers its own waker when polled).
                let _ = outbox.poll_write_queued(&mut Context::from_waker(Waker::noop()));
                Ok(end)
            });
        async move {
            let end = queued?;
            std::future::poll_fn(|cx| lock(&outbox)?.poll_sent(end, cx)).await
        }
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        loop {
            match self.read_line().await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(problem) => {
                    self.broken(problem);
                    return None;
                }
            }
            let line = std::mem::take(&mut self.line);
            let message = self.read_message(&line);
            self.line = line;
            match message {
                Ok(Some(message)) => return Some(message),
                Ok(None) => {}
                Err(problem) => {
                    self.broken(problem);
                    return None;
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        // Dropping the writer closes the server's stdin.
        lock(&self.outbox)?.writer = None;
        Ok(())
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
            b"   ",
        ];
        for line in good {
            assert!(envelope(line).is_ok(), "{}", String::from_utf8_lossy(line));
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
            let got = envelope(line).err().expect("rejected");
            assert!(got.contains(want), "{got}");
        }
    }

    type TestWire = StdioWire<tokio::io::DuplexStream, tokio::io::DuplexStream>;

    /// A wire whose server side is the returned pair of streams: what the
    /// server reads (weir's requests) and where it writes (its answers).
    fn wire() -> (
        TestWire,
        tokio::io::DuplexStream,
        tokio::io::DuplexStream,
        ProtocolFault,
    ) {
        let (to_weir, from_server) = tokio::io::duplex(1 << 16);
        let (to_server, from_weir) = tokio::io::duplex(1 << 16);
        let fault = ProtocolFault::default();
        let wire = StdioWire::new(from_server, to_server, Arc::from("s"), fault.clone());
        (wire, to_weir, from_weir, fault)
    }

    fn request(id: i64, body: serde_json::Value) -> ClientJsonRpcMessage {
        let mut message = serde_json::json!({"jsonrpc": "2.0", "id": id});
        if let (Some(m), Some(b)) = (message.as_object_mut(), body.as_object()) {
            m.extend(b.clone());
        }
        serde_json::from_value(message).expect("a client request")
    }

    async fn server_reads(from_weir: &mut tokio::io::DuplexStream) -> serde_json::Value {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        let mut reader = BufReader::new(from_weir);
        reader.read_line(&mut line).await.expect("a line");
        serde_json::from_str(&line).expect("JSON")
    }

    /// A `tools/call` answer is read as a `CallToolResult` (also when it
    /// comes in pieces); a `tools/list` answer as a `ListToolsResult`; an
    /// answer to another request as rmcp reads it.
    #[tokio::test]
    async fn reads_answers_as_what_they_answer() {
        use tokio::io::AsyncWriteExt;
        let (mut wire, mut to_weir, mut from_weir, _) = wire();
        let call = request(
            1,
            serde_json::json!({"method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hi"}}}),
        );
        wire.send(call).await.expect("sent");
        let sent = server_reads(&mut from_weir).await;
        assert_eq!(sent["method"], "tools/call");
        assert_eq!(sent["params"]["arguments"]["message"], "hi");
        wire.send(request(2, serde_json::json!({"method": "tools/list"})))
            .await
            .expect("sent");
        wire.send(request(3, serde_json::json!({"method": "ping"})))
            .await
            .expect("sent");

        let answer =
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"Echo: hi"}]}}"#;
        to_weir.write_all(&answer[..20]).await.expect("write");
        to_weir.write_all(&answer[20..]).await.expect("write");
        to_weir
            .write_all(b"\n{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[]}}\r\n\n{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n")
            .await
            .expect("write");
        match wire.receive().await {
            Some(JsonRpcMessage::Response(r)) => {
                assert_eq!(r.id, RequestId::Number(1));
                match r.result {
                    ServerResult::CallToolResult(result) => {
                        assert_eq!(
                            result.content[0].as_text().map(|t| t.text.as_str()),
                            Some("Echo: hi")
                        );
                    }
                    other => panic!("not a call result: {other:?}"),
                }
            }
            other => panic!("not a response: {other:?}"),
        }
        assert!(matches!(
            wire.receive().await,
            Some(JsonRpcMessage::Response(r)) if matches!(r.result, ServerResult::ListToolsResult(_))
        ));
        assert!(matches!(
            wire.receive().await,
            Some(JsonRpcMessage::Response(r)) if matches!(r.result, ServerResult::EmptyResult(_))
        ));
        assert!(wire.expected.is_empty());
    }

    /// A call answered with something nothing can read (here a malformed
    /// error) fails that call with an error saying so, rather than leaving
    /// it to time out; an answer that is not a `CallToolResult` goes to
    /// rmcp's parse (which makes it a custom result, and the call fails as
    /// an unexpected response).
    #[tokio::test]
    async fn unreadable_answers_fail_their_call() {
        use tokio::io::AsyncWriteExt;
        let (mut wire, mut to_weir, _from_weir, fault) = wire();
        for id in [1, 2] {
            let call = request(
                id,
                serde_json::json!({"method": "tools/call", "params": {"name": "echo"}}),
            );
            wire.send(call).await.expect("sent");
        }
        to_weir
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"message\":5}}\n{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":5}\n")
            .await
            .expect("write");
        match wire.receive().await {
            Some(JsonRpcMessage::Error(e)) => {
                assert_eq!(e.id, Some(RequestId::Number(1)));
                assert_eq!(
                    e.error.data,
                    Some(serde_json::Value::String(UNREADABLE.into()))
                );
            }
            other => panic!("not an error: {other:?}"),
        }
        assert!(matches!(
            wire.receive().await,
            Some(JsonRpcMessage::Response(r)) if !matches!(r.result, ServerResult::CallToolResult(_))
        ));
        assert!(fault.lock().expect("lock").is_none());
    }

    /// A cancelled request is forgotten: its answer, if it comes, is read
    /// as any other message.
    #[tokio::test]
    async fn cancelled_requests_are_forgotten() {
        let (mut wire, _to_weir, _from_weir, _) = wire();
        let call = request(
            9,
            serde_json::json!({"method": "tools/call", "params": {"name": "echo"}}),
        );
        wire.send(call).await.expect("sent");
        assert_eq!(wire.expected.len(), 1);
        let cancel: ClientJsonRpcMessage = serde_json::from_value(serde_json::json!({
            "jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}
        }))
        .expect("a notification");
        wire.send(cancel).await.expect("sent");
        assert!(wire.expected.is_empty());
    }

    /// Garbage ends the session with the line recorded; so does a line
    /// past the limit.
    #[tokio::test]
    async fn garbage_ends_the_session() {
        use tokio::io::AsyncWriteExt;
        let (mut wire, mut to_weir, _from_weir, fault) = wire();
        to_weir
            .write_all(
                b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\ngarbage\n",
            )
            .await
            .expect("write");
        assert!(matches!(
            wire.receive().await,
            Some(JsonRpcMessage::Notification(_))
        ));
        assert!(wire.receive().await.is_none());
        assert!(
            fault
                .lock()
                .expect("lock")
                .as_deref()
                .is_some_and(|f| f.contains("\"garbage\""))
        );
    }

    /// Sends queued behind a full pipe all finish, in order, once the
    /// server reads; after `close` the server sees the end of its input.
    #[tokio::test]
    async fn sends_wait_for_a_full_pipe_and_keep_their_order() {
        use tokio::io::AsyncReadExt;
        let (to_server, mut from_weir) = tokio::io::duplex(64);
        let (_to_weir, from_server) = tokio::io::duplex(64);
        let mut wire = StdioWire::new(from_server, to_server, Arc::from("s"), Default::default());
        // Each send awaited by a task of its own, as rmcp does.
        let mut sends = Vec::new();
        for id in 0..20 {
            sends.push(tokio::spawn(
                wire.send(request(id, serde_json::json!({"method": "ping"}))),
            ));
        }
        let all = futures::future::try_join_all(sends);
        let mut read = Vec::new();
        let mut buf = [0u8; 50];
        while read.iter().filter(|&&b| b == b'\n').count() < 20 {
            let n = from_weir.read(&mut buf).await.expect("read");
            read.extend_from_slice(&buf[..n]);
        }
        for sent in all.await.expect("joined") {
            sent.expect("sent");
        }
        let ids: Vec<i64> = String::from_utf8(read)
            .expect("utf-8")
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("JSON")["id"]
                    .as_i64()
                    .expect("id")
            })
            .collect();
        assert_eq!(ids, (0..20).collect::<Vec<_>>());
        wire.close().await.expect("closed");
        assert_eq!(from_weir.read(&mut buf).await.expect("read"), 0);
    }
}
