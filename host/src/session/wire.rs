//! The stdio wire of a session: one JSON-RPC message per line, each way.
//!
//! weir's own rmcp transport for stdio servers:
//!
//! - **Every line a server writes must be JSON-RPC.** rmcp skips lines it
//!   cannot parse, so a server that writes garbage would leave its callers
//!   waiting for answers that never come. Here the first bad line ends the
//!   session instead: in-flight calls fail at once, the error is logged and
//!   recorded with the line, and the next call gets a fresh session.
//! - **Answers to weir's own `tools/call` requests** ([`super::lane`]) go
//!   straight back to their callers, without rmcp's parse: it reads a
//!   result by trying each of its ~20 result types in turn (an untagged
//!   enum), ~15 µs for a tool result, on the path of every call. Everything
//!   else goes to rmcp.
//! - **Lines leave when they are sent**: written to the pipe from `send`
//!   itself when the pipe has room ([`super::outbox`]), rather than from the
//!   task rmcp spawns to await the send.
//!
//! An answer to a pending request that rmcp cannot read fails that request
//! with an error saying so, rather than leaving it to time out.

use std::future::Future;
use std::sync::{Arc, Mutex};

use rmcp::model::{ClientJsonRpcMessage, ErrorCode, ErrorData, RequestId, ServerJsonRpcMessage};
use rmcp::service::RoleClient;
use rmcp::transport::Transport;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use super::lane::Lane;
use super::outbox::{Outbox, Writer};

/// Longest line accepted from a server (rmcp's own limit is similar): a
/// bigger message is treated as a broken server, not buffered forever.
const MAX_LINE: usize = 64 << 20;

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
    #[serde(borrow)]
    error: Option<&'a RawValue>,
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
    // A request or notification has a method; a response, an id and a
    // result; an error response, an error — and an id, unless the server
    // could not read the request's (JSON-RPC then sends `null` or none).
    let response = envelope.id.is_some() && envelope.result.is_some();
    if envelope.method.is_none() && !response && envelope.error.is_none() {
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

/// The rmcp transport of one stdio session.
pub(crate) struct StdioWire<R> {
    server: Arc<str>,
    reader: BufReader<R>,
    /// The line being read (a line may come in several reads).
    line: Vec<u8>,
    outbox: Outbox,
    /// weir's own `tools/call` requests, answered from here.
    lane: Arc<Lane>,
    fault: ProtocolFault,
}

impl<R: AsyncRead + Unpin> StdioWire<R> {
    pub fn new(reader: R, writer: Writer, server: Arc<str>, fault: ProtocolFault) -> Self {
        let outbox = Outbox::new(writer);
        Self {
            server,
            reader: BufReader::new(reader),
            line: Vec::new(),
            lane: Arc::new(Lane::new(outbox.clone())),
            outbox,
            fault,
        }
    }

    /// The session's lane for `tools/call`, which shares its pipes.
    pub fn lane(&self) -> Arc<Lane> {
        self.lane.clone()
    }

    /// Reads the next complete line into `self.line` (without its `\n`).
    /// `Ok(false)` at the end of the stream (or when reading fails); `Err`
    /// for a line past the limit.
    async fn read_line(&mut self) -> Result<bool, String> {
        self.line.clear();
        loop {
            let available = match self.reader.fill_buf().await {
                Ok(available) => available,
                Err(error) => {
                    // The pipe failed, not the server's protocol: the
                    // session ends as if the server had closed it.
                    tracing::warn!(server = %self.server, %error, "cannot read from the server; closing its session");
                    return Ok(false);
                }
            };
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

    /// The message on a line for rmcp: `Ok(None)` for a blank line, an
    /// answer to one of weir's own calls (handed to the lane), or a message
    /// that answers nothing and that rmcp cannot read (rmcp skips those
    /// too); `Err` for a line that is not JSON-RPC at all.
    fn read_message(&mut self, line: &[u8]) -> Result<Option<ServerJsonRpcMessage>, String> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        let Some(envelope) = envelope(line)? else {
            return Ok(None);
        };
        // An answer to one of weir's own calls.
        if envelope.method.is_none()
            && let Some(number) = envelope.id.and_then(Lane::number)
        {
            self.lane.answer(number, envelope.result, envelope.error);
            return Ok(None);
        }
        match serde_json::from_slice::<ServerJsonRpcMessage>(line) {
            Ok(message) => Ok(Some(message)),
            Err(error) => {
                tracing::warn!(server = %self.server, %error, line = %quote(line),
                    "cannot read a message from the server");
                // An answer to a request rmcp is waiting on: fail it.
                let answer_id = match (&envelope.method, envelope.id) {
                    (None, Some(id)) => serde_json::from_str::<RequestId>(id.get()).ok(),
                    _ => None,
                };
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
        self.lane.close();
    }
}

impl<R: AsyncRead + Unpin + Send + 'static> Transport<RoleClient> for StdioWire<R> {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let outbox = self.outbox.clone();
        let queued = outbox.send_json(&item);
        async move {
            let end = queued?;
            std::future::poll_fn(|cx| outbox.poll_sent(end, cx)).await
        }
    }

    async fn receive(&mut self) -> Option<ServerJsonRpcMessage> {
        loop {
            match self.read_line().await {
                Ok(true) => {}
                Ok(false) => {
                    self.lane.close();
                    return None;
                }
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
        self.lane.close();
        self.outbox.close();
        Ok(())
    }
}

impl<R> Drop for StdioWire<R> {
    fn drop(&mut self) {
        // rmcp dropped the session: no answer will come for anyone, and
        // the server's input ends.
        self.lane.close();
        self.outbox.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::lane::Answer;

    /// Every JSON-RPC shape passes; garbage and wrong shapes are named.
    #[test]
    fn checks_lines() {
        let good: &[&[u8]] = &[
            br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#,
            br#"{"jsonrpc":"2.0","id":"a","error":{"code":-32602,"message":"x"}}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
            br#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#,
            br#"{"jsonrpc":"2.0","error":{"code":-32600,"message":"invalid request"}}"#,
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
            (br#"{"jsonrpc":"2.0","result":{}}"#, "neither a request"),
            (b"[1, 2, 3, 4, 5]", "not a JSON object"),
        ];
        for (line, want) in bad {
            let got = envelope(line).err().expect("rejected");
            assert!(got.contains(want), "{got}");
        }
    }

    type TestWire = StdioWire<tokio::io::DuplexStream>;

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
        let wire = StdioWire::new(
            from_server,
            Box::new(to_server),
            Arc::from("s"),
            fault.clone(),
        );
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

    /// rmcp's requests go out as sent and their answers come back as rmcp
    /// reads them (also when a line comes in pieces, with `\r\n`); an
    /// answer to one of weir's own calls goes to its caller, not to rmcp.
    #[tokio::test]
    async fn answers_go_to_whoever_asked() {
        use rmcp::model::{JsonRpcMessage, ServerResult};
        use tokio::io::AsyncWriteExt;
        let (mut wire, mut to_weir, mut from_weir, _) = wire();
        wire.send(request(1, serde_json::json!({"method": "tools/list"})))
            .await
            .expect("sent");
        assert_eq!(server_reads(&mut from_weir).await["method"], "tools/list");
        let lane = wire.lane();
        let call = lane.call_tool("echo", None);
        let answer = br#"{"jsonrpc":"2.0","id":"weir-1","result":{"content":[{"type":"text","text":"Echo: hi"}]}}"#;
        to_weir.write_all(&answer[..20]).await.expect("write");
        to_weir.write_all(&answer[20..]).await.expect("write");
        to_weir
            .write_all(b"\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[]}}\r\n\n")
            .await
            .expect("write");
        assert!(matches!(
            wire.receive().await,
            Some(JsonRpcMessage::Response(r)) if matches!(r.result, ServerResult::ListToolsResult(_))
        ));
        assert!(matches!(call.await, Answer::Result(r) if r.contains("Echo: hi")));
    }

    /// A request answered with something rmcp cannot read (here a
    /// malformed error) fails with an error saying so, rather than being
    /// left to time out; when the server's output ends, weir's own calls
    /// waiting for an answer fail.
    #[tokio::test]
    async fn unreadable_answers_fail_their_request() {
        use rmcp::model::JsonRpcMessage;
        use tokio::io::AsyncWriteExt;
        let (mut wire, mut to_weir, _from_weir, fault) = wire();
        wire.send(request(1, serde_json::json!({"method": "ping"})))
            .await
            .expect("sent");
        let waiting = wire.lane().call_tool("slow", None);
        to_weir
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"message\":5}}\n")
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
        drop(to_weir);
        assert!(wire.receive().await.is_none());
        assert!(matches!(waiting.await, Answer::Closed));
        assert!(fault.lock().expect("lock").is_none());
    }

    /// Garbage ends the session with the line recorded; so does a line
    /// past the limit.
    #[tokio::test]
    async fn garbage_ends_the_session() {
        use rmcp::model::JsonRpcMessage;
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
        let mut wire = StdioWire::new(
            from_server,
            Box::new(to_server),
            Arc::from("s"),
            Default::default(),
        );
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
