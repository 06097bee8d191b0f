//! weir's own lane for `tools/call` on a stdio session.
//!
//! Every plugin tool call is a `tools/call`, and through rmcp each one goes
//! from the caller to rmcp's service task (a channel), into a send task of
//! its own, and back, with its result parsed into rmcp's types and turned
//! into JSON again for the plugin: a few task hops and ~10 µs of CPU per
//! call. On this lane the caller writes its request to the server's stdin
//! itself (ids `"weir-N"`, which rmcp's numbered ids never clash with), and
//! the session's reader ([`super::wire`]) hands the answer straight back,
//! checked to be a tool result, as the text the server wrote. Everything
//! else on the session — the handshake, `tools/list`, pings, notifications,
//! the server's own requests — stays with rmcp.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rmcp::model::ErrorData;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use super::outbox::Outbox;
use crate::gateway::Arguments;

/// What the ids of the lane's requests start with.
const ID_PREFIX: &str = "weir-";

/// How a call on the lane ended.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A tool result, as the server wrote it.
    Result(String),
    /// The server answered with a JSON-RPC error.
    Error(ErrorData),
    /// The server asks for input first (2026-07-28): its `input_required`
    /// result, for the rounds that follow (see [`super::rounds`]).
    InputRequired(String),
    /// The server answered with something that is not a tool result.
    Malformed(String),
    /// The session ended (or its pipe broke) before an answer came.
    Closed,
}

/// The lane of one session: the requests in flight, by number.
pub(crate) struct Lane {
    outbox: Outbox,
    /// `None` once the session has ended: calls fail at once.
    calls: Mutex<Option<HashMap<u64, oneshot::Sender<Answer>>>>,
    next: AtomicU64,
    /// The `_meta` each request carries on a revision without `initialize`
    /// (2026-07-28): set once, when the session has settled its revision.
    meta: std::sync::OnceLock<Box<RawValue>>,
}

#[derive(Serialize)]
struct Request<'a> {
    jsonrpc: &'static str,
    id: String,
    method: &'static str,
    params: Params<'a>,
}

#[derive(Serialize)]
struct Params<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The caller's text, embedded as it is.
    arguments: Option<&'a serde_json::value::RawValue>,
    #[serde(rename = "_meta", skip_serializing_if = "Option::is_none")]
    meta: Option<&'a RawValue>,
}

/// What a `CallToolResult` must look like, checked as the answer is read
/// without building it (the text goes on to the caller as it came):
/// `content` (if there) a list of blocks, each with a `type`, and `isError` a
/// boolean. Other fields are the server's business.
#[derive(serde::Deserialize)]
struct ResultShape<'a> {
    #[serde(rename = "content", borrow, default)]
    _content: Vec<BlockShape<'a>>,
    #[serde(rename = "isError", default)]
    _is_error: Option<bool>,
    /// 2026-07-28: absent or `complete` for a result; `input_required`
    /// when the server asks the client something first.
    #[serde(rename = "resultType", borrow, default)]
    result_type: Option<std::borrow::Cow<'a, str>>,
}

/// A content block: an object naming its `type`.
#[derive(serde::Deserialize)]
struct BlockShape<'a> {
    #[serde(rename = "type", borrow)]
    _kind: std::borrow::Cow<'a, str>,
}

impl Lane {
    pub fn new(outbox: Outbox) -> Self {
        Self {
            outbox,
            calls: Mutex::new(Some(HashMap::new())),
            next: AtomicU64::new(1),
            meta: std::sync::OnceLock::new(),
        }
    }

    /// Sets the `_meta` every later request carries (see
    /// [`super::lifecycle::request_meta`]); `None` leaves requests bare.
    pub fn stamp(&self, meta: Option<Box<RawValue>>) {
        if let Some(meta) = meta {
            let _ = self.meta.set(meta);
        }
    }

    /// Sends a `tools/call`; the returned future is its answer. Dropping
    /// the future before the answer cancels the request on the server.
    pub fn call_tool(self: &Arc<Self>, tool: &str, arguments: Option<&Arguments>) -> LaneCall {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut call = LaneCall {
            lane: self.clone(),
            number,
            unsent: None,
            answer: rx,
            done: true,
        };
        match self.calls.lock() {
            Ok(mut calls) => match calls.as_mut() {
                Some(calls) => calls.insert(number, tx),
                None => return call,
            },
            Err(_) => return call,
        };
        let request = Request {
            jsonrpc: "2.0",
            id: format!("{ID_PREFIX}{number}"),
            method: "tools/call",
            params: Params {
                name: tool,
                arguments: arguments.map(Arguments::raw),
                meta: self.meta.get().map(|m| &**m),
            },
        };
        match self.outbox.send_json(&request) {
            Ok(end) => {
                call.unsent = Some(end);
                call.done = false;
            }
            Err(error) => {
                tracing::debug!(%error, "cannot send a tools/call");
                self.forget(number);
            }
        }
        call
    }

    /// The number of a lane id as it came in an answer (JSON text), if it
    /// is one of the lane's.
    pub fn number(id: &RawValue) -> Option<u64> {
        let digits = id
            .get()
            .strip_prefix('"')?
            .strip_suffix('"')?
            .strip_prefix(ID_PREFIX)?;
        // Exactly as written: no sign, no leading zero.
        if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// Hands an answer (its `result` or `error`) to the call waiting for it.
    pub fn answer(&self, number: u64, result: Option<&RawValue>, error: Option<&RawValue>) {
        let Some(waiting) = self.forget(number) else {
            // Given up (cancelled) before the answer came.
            return;
        };
        let answer = match (result, error) {
            (Some(result), _) => match serde_json::from_str::<ResultShape>(result.get()) {
                Ok(shape) => match shape.result_type.as_deref() {
                    None | Some("complete") => Answer::Result(result.get().to_owned()),
                    Some("input_required") => Answer::InputRequired(result.get().to_owned()),
                    Some(other) => {
                        Answer::Malformed(format!("a `{other}` result, not a tool result"))
                    }
                },
                Err(e) => Answer::Malformed(format!("not a tool result ({e})")),
            },
            (None, Some(error)) => match serde_json::from_str::<ErrorData>(error.get()) {
                Ok(error) => Answer::Error(error),
                Err(e) => Answer::Malformed(format!("an error that is not a JSON-RPC error ({e})")),
            },
            (None, None) => Answer::Malformed("neither a result nor an error".into()),
        };
        let _ = waiting.send(answer);
    }

    /// The session has ended: every call waiting fails, and so does every
    /// later one.
    pub fn close(&self) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.take();
        }
    }

    /// Whether the session is still there: false the moment its output
    /// ends or breaks, or its input pipe does, before rmcp has noticed, so
    /// that the next caller starts a new session rather than fail on this
    /// one.
    pub fn is_open(&self) -> bool {
        self.calls.lock().is_ok_and(|calls| calls.is_some()) && self.outbox.is_usable()
    }

    fn forget(&self, number: u64) -> Option<oneshot::Sender<Answer>> {
        self.calls
            .lock()
            .ok()?
            .as_mut()
            .and_then(|calls| calls.remove(&number))
    }

    /// Tells the server a call is no longer wanted.
    fn cancel(&self, number: u64) {
        if self.forget(number).is_none() {
            return;
        }
        let cancelled = serde_json::json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": format!("{ID_PREFIX}{number}"), "reason": "the caller gave up"},
        });
        // Nobody waits for it: the outbox writes it out in any case.
        let _ = self.outbox.send_json(&cancelled);
    }
}

/// A `tools/call` in flight on the lane.
pub(crate) struct LaneCall {
    lane: Arc<Lane>,
    number: u64,
    /// Bytes that must be written before the request is out, while it is
    /// not (see [`Outbox::poll_sent`]).
    unsent: Option<u64>,
    answer: oneshot::Receiver<Answer>,
    /// Answered, or never sent: nothing to cancel.
    done: bool,
}

impl Future for LaneCall {
    type Output = Answer;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        if self.done {
            return Poll::Ready(Answer::Closed);
        }
        // The answer first: a session that ended fails the call even while
        // its request is still queued.
        if let Poll::Ready(answer) = Pin::new(&mut self.answer).poll(cx) {
            self.done = true;
            return Poll::Ready(answer.unwrap_or(Answer::Closed));
        }
        if let Some(end) = self.unsent {
            match self.lane.outbox.poll_sent(end, cx) {
                Poll::Pending => {}
                Poll::Ready(Ok(())) => self.unsent = None,
                Poll::Ready(Err(error)) => {
                    tracing::debug!(%error, "cannot send a tools/call");
                    self.done = true;
                    self.lane.forget(self.number);
                    return Poll::Ready(Answer::Closed);
                }
            }
        }
        Poll::Pending
    }
}

impl Drop for LaneCall {
    fn drop(&mut self) {
        if !self.done {
            self.lane.cancel(self.number);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};

    fn lane() -> (Arc<Lane>, BufReader<tokio::io::DuplexStream>) {
        let (to_server, from_weir) = tokio::io::duplex(1 << 16);
        let outbox = Outbox::new(Box::new(to_server));
        (Arc::new(Lane::new(outbox)), BufReader::new(from_weir))
    }

    async fn next_line(reader: &mut BufReader<tokio::io::DuplexStream>) -> serde_json::Value {
        let mut line = String::new();
        reader.read_line(&mut line).await.expect("read");
        serde_json::from_str(&line).expect("JSON")
    }

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).expect("raw JSON")
    }

    /// A call goes out as a `tools/call` with a lane id; its answer comes
    /// back as the server wrote it; an error answer as the error; an answer
    /// that is not a tool result is named.
    #[tokio::test]
    async fn calls_and_answers() {
        let (lane, mut server) = lane();
        let arguments = Arguments::parse(r#"{"message":"hi"}"#).unwrap();
        let call = lane.call_tool("echo", arguments.as_ref());
        let request = next_line(&mut server).await;
        assert_eq!(request["method"], "tools/call");
        assert_eq!(request["params"]["name"], "echo");
        assert_eq!(request["params"]["arguments"]["message"], "hi");
        let id = request["id"].as_str().expect("a string id").to_owned();
        let number = Lane::number(&raw(&format!("{id:?}"))).expect("a lane id");
        let result = r#"{"content":[{"type":"text","text":"Echo: hi"}],"isError":false}"#;
        lane.answer(number, Some(&raw(result)), None);
        assert!(matches!(call.await, Answer::Result(r) if r == result));

        let call = lane.call_tool("echo", None);
        let request = next_line(&mut server).await;
        assert!(request["params"].get("arguments").is_none());
        let number = Lane::number(&raw(&request["id"].to_string())).expect("a lane id");
        lane.answer(
            number,
            None,
            Some(&raw(r#"{"code":-32602,"message":"bad arguments"}"#)),
        );
        assert!(matches!(call.await, Answer::Error(e) if e.message == "bad arguments"));

        let call = lane.call_tool("echo", None);
        let number =
            Lane::number(&raw(&next_line(&mut server).await["id"].to_string())).expect("a lane id");
        lane.answer(number, Some(&raw(r#"{"content":"not a list"}"#)), None);
        assert!(matches!(call.await, Answer::Malformed(m) if m.contains("not a tool result")));

        // On 2026-07-28 every request carries the session's `_meta`, and a
        // result asking for input first is handed on as such.
        lane.stamp(Some(raw(
            r#"{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}"#,
        )));
        let call = lane.call_tool("echo", None);
        let request = next_line(&mut server).await;
        assert_eq!(
            request["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        let number = Lane::number(&raw(&request["id"].to_string())).expect("a lane id");
        lane.answer(
            number,
            Some(&raw(
                r#"{"resultType":"input_required","inputRequests":{"a":{"method":"elicitation/create"}}}"#,
            )),
            None,
        );
        assert!(matches!(call.await, Answer::InputRequired(r) if r.contains("inputRequests")));

        assert_eq!(Lane::number(&raw("7")), None);
        assert_eq!(Lane::number(&raw("\"weir-07\"")), None);
        assert_eq!(Lane::number(&raw("\"weir-+7\"")), None);
        assert_eq!(Lane::number(&raw("\"other-7\"")), None);
    }

    /// A call given up before its answer is cancelled on the server; a late
    /// answer to it goes nowhere.
    #[tokio::test]
    async fn dropped_calls_are_cancelled() {
        let (lane, mut server) = lane();
        let call = lane.call_tool("slow", None);
        let id = next_line(&mut server).await["id"].clone();
        drop(call);
        let cancel = next_line(&mut server).await;
        assert_eq!(cancel["method"], "notifications/cancelled");
        assert_eq!(cancel["params"]["requestId"], id);
        let number = Lane::number(&raw(&id.to_string())).expect("a lane id");
        lane.answer(number, Some(&raw(r#"{"content":[]}"#)), None);
        assert!(
            lane.calls
                .lock()
                .expect("lock")
                .as_ref()
                .expect("open")
                .is_empty()
        );
    }

    /// A call whose request waits behind a full pipe goes out when the
    /// server reads, even when another call is given up meanwhile (its
    /// cancellation queued with nobody waiting for it); a session that
    /// ends fails a call whose request is still queued.
    #[tokio::test]
    async fn full_pipes_neither_lose_nor_hold_calls() {
        let (to_server, from_weir) = tokio::io::duplex(64);
        let lane = Arc::new(Lane::new(Outbox::new(Box::new(to_server))));
        let big = Arguments::parse(&format!(r#"{{"blob":"{}"}}"#, "x".repeat(500))).unwrap();
        let first = tokio::spawn(lane.call_tool("echo", big.as_ref()));
        drop(lane.call_tool("echo", None));
        let mut server = BufReader::new(from_weir);
        let sent: Vec<serde_json::Value> = [
            next_line(&mut server).await,
            next_line(&mut server).await,
            next_line(&mut server).await,
        ]
        .into();
        assert_eq!(sent[0]["id"], "weir-1");
        assert_eq!(
            sent[0]["params"]["arguments"]["blob"]
                .as_str()
                .map(str::len),
            Some(500)
        );
        assert_eq!(sent[1]["id"], "weir-2");
        assert_eq!(sent[2]["method"], "notifications/cancelled");
        assert_eq!(sent[2]["params"]["requestId"], "weir-2");
        lane.answer(1, Some(&raw(r#"{"content":[]}"#)), None);
        assert!(matches!(first.await.expect("joined"), Answer::Result(_)));

        let queued = tokio::spawn(lane.call_tool("echo", big.as_ref()));
        tokio::task::yield_now().await;
        lane.close();
        assert!(matches!(queued.await.expect("joined"), Answer::Closed));
    }

    /// When the session ends, calls waiting fail, and so do later ones;
    /// nothing is cancelled for them.
    #[tokio::test]
    async fn a_closed_session_fails_its_calls() {
        let (lane, mut server) = lane();
        let waiting = lane.call_tool("slow", None);
        next_line(&mut server).await;
        assert!(lane.is_open());
        lane.close();
        assert!(!lane.is_open());
        assert!(matches!(waiting.await, Answer::Closed));
        assert!(matches!(lane.call_tool("echo", None).await, Answer::Closed));
        let mut rest = String::new();
        drop(lane);
        server.read_line(&mut rest).await.expect("read");
        assert_eq!(rest, "");
    }
}
