//! MCP over stdio for `weir serve --stdio`: one JSON-RPC message per line,
//! each way — and every request answered.
//!
//! rmcp's own stdio transport drops a line over its length limit with a
//! log line, so a client that sent a too-big `tools/call` waits forever
//! for an answer. Here a line over [`MAX_LINE`] is read through (never
//! buffered past the limit) while a small scanner looks for its top-level
//! `id`; the request is then answered with an error naming the limit. A
//! line that is JSON but no JSON-RPC message gets the same answer as in
//! rmcp (invalid request); one that is not JSON at all is skipped, as the
//! reference SDKs do (answering garbage can start an echo storm).

use std::sync::Arc;

use rmcp::model::{ClientJsonRpcMessage, ErrorCode, ErrorData, RequestId, ServerJsonRpcMessage};
use rmcp::service::RoleServer;
use rmcp::transport::Transport;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// Longest line read from the client (rmcp's limit too). A message past it
/// is answered with an error, not buffered.
pub const MAX_LINE: usize = 16 << 20;

/// Longest `id` value the scanner keeps: ids are numbers or short strings.
const MAX_ID: usize = 256;

/// The server side of MCP over a reader and a writer.
pub struct StdioWire<R, W> {
    reader: BufReader<R>,
    writer: Arc<tokio::sync::Mutex<W>>,
    line: Vec<u8>,
    /// Set while reading through a line past [`MAX_LINE`].
    oversized: Option<IdScan>,
}

impl<R, W> StdioWire<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// A wire reading `reader` and writing `writer`.
    pub fn new(reader: R, writer: W) -> Self {
        Self {
            reader: BufReader::with_capacity(64 << 10, reader),
            writer: Arc::new(tokio::sync::Mutex::new(writer)),
            line: Vec::new(),
            oversized: None,
        }
    }

    /// Reads up to the end of the next line. `Ok(true)`: a whole line is in
    /// `self.line`; `Ok(false)`: the input ended. Cancellation-safe: what
    /// was read stays in `self`, and each chunk is taken and consumed with
    /// no await between.
    async fn read_line(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                return Ok(None);
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            let chunk = &available[..newline.unwrap_or(available.len())];
            let mut done = None;
            if let Some(scan) = &mut self.oversized {
                scan.feed(chunk);
                scan.bytes += take;
                if newline.is_some() {
                    done = self.oversized.take().map(Line::Oversized);
                }
            } else if self.line.len() + chunk.len() > MAX_LINE {
                let mut scan = IdScan::default();
                scan.feed(&self.line);
                scan.feed(chunk);
                scan.bytes = self.line.len() + take;
                self.line.clear();
                if newline.is_some() {
                    done = Some(Line::Oversized(scan));
                } else {
                    self.oversized = Some(scan);
                }
            } else {
                self.line.extend_from_slice(chunk);
                if newline.is_some() {
                    done = Some(Line::Whole);
                }
            }
            self.reader.consume(take);
            if done.is_some() {
                return Ok(done);
            }
        }
    }

    /// Answers the client with an error of the wire's own. Written by a
    /// task of its own, never from `receive`: rmcp may drop a `receive`
    /// in progress, and a write cut off there would leave half a line.
    fn answer(&self, message: ServerJsonRpcMessage) {
        let writer = self.writer.clone();
        tokio::spawn(async move {
            if let Err(error) = write_message(&writer, &message).await {
                tracing::debug!(%error, "cannot answer on stdout");
            }
        });
    }
}

/// What [`StdioWire::read_line`] read.
enum Line {
    /// A line of at most [`MAX_LINE`] bytes, in `self.line`.
    Whole,
    /// A longer one, read through and dropped.
    Oversized(IdScan),
}

/// Writes one message and a newline, and flushes.
async fn write_message<W: AsyncWrite + Unpin>(
    writer: &tokio::sync::Mutex<W>,
    message: &ServerJsonRpcMessage,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    let mut writer = writer.lock().await;
    writer.write_all(&bytes).await?;
    writer.flush().await
}

/// What a line that is not a message is answered with, if anything.
fn answer_for_unreadable(line: &[u8], error: &serde_json::Error) -> Option<ServerJsonRpcMessage> {
    if error.is_syntax() || error.is_eof() {
        tracing::debug!(%error, "ignoring a line that is not JSON");
        return None;
    }
    let id = serde_json::from_slice::<IdOnly>(line)
        .ok()
        .and_then(|m| m.id);
    tracing::debug!(%error, "a line that is not a JSON-RPC message");
    Some(ServerJsonRpcMessage::error(
        ErrorData::new(
            ErrorCode::INVALID_REQUEST,
            format!("not a JSON-RPC 2.0 message: {error}"),
            None,
        ),
        id,
    ))
}

/// The id of a message, whatever else it holds.
#[derive(serde::Deserialize)]
struct IdOnly {
    id: Option<RequestId>,
}

impl<R, W> Transport<RoleServer> for StdioWire<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let writer = self.writer.clone();
        async move { write_message(&writer, &item).await }
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        loop {
            match self.read_line().await {
                Ok(Some(Line::Whole)) => {}
                Ok(Some(Line::Oversized(scan))) => {
                    let id = scan.id();
                    tracing::warn!(
                        bytes = scan.bytes,
                        max = MAX_LINE,
                        id = ?id,
                        "a message over the line limit; answered with an error"
                    );
                    if let Some(id) = id {
                        self.answer(ServerJsonRpcMessage::error(
                            ErrorData::new(
                                ErrorCode::INVALID_REQUEST,
                                format!(
                                    "the request is {} bytes or more, over weir's limit of {} MiB \
                                     for one message: send less (a smaller argument, or a file \
                                     the tool reads)",
                                    scan.bytes,
                                    MAX_LINE >> 20
                                ),
                                None,
                            ),
                            Some(id),
                        ));
                    }
                    continue;
                }
                Ok(None) => return None,
                Err(error) => {
                    tracing::debug!(%error, "reading stdin");
                    return None;
                }
            }
            let text = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
            let message = if text.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                match serde_json::from_slice::<ClientJsonRpcMessage>(text) {
                    Ok(message) => Some(message),
                    Err(error) => {
                        if let Some(answer) = answer_for_unreadable(text, &error) {
                            self.answer(answer);
                        }
                        None
                    }
                }
            };
            self.line.clear();
            if let Some(message) = message {
                return Some(message);
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        let mut writer = self.writer.lock().await;
        writer.shutdown().await
    }
}

/// Finds the top-level `"id"` of a JSON object fed in pieces, keeping
/// nothing but the state of the scan and the id's text: enough to answer a
/// message too big to keep. Not a JSON parser: it tracks strings and
/// nesting, and trusts the message to be an object.
#[derive(Debug, Default)]
struct IdScan {
    /// Bytes of the line, for the message.
    bytes: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// At depth 1, a key may come next (after `{` or `,`).
    key_next: bool,
    /// The key being read at depth 1, while it could still be `id`.
    key: Option<Vec<u8>>,
    /// The last key read at depth 1 was `id`.
    key_is_id: bool,
    /// The id's value so far, after its `:`.
    value: Option<Vec<u8>>,
    /// The id's value, once complete.
    found: Option<Vec<u8>>,
}

impl IdScan {
    fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            self.step(b);
        }
    }

    /// Inside a string: follows escapes; whether `b` closes the string.
    fn closes_string(&mut self, b: u8) -> bool {
        if self.escaped {
            self.escaped = false;
        } else if b == b'\\' {
            self.escaped = true;
        } else if b == b'"' {
            self.in_string = false;
            return true;
        }
        false
    }

    fn step(&mut self, b: u8) {
        if self.value.is_some() {
            self.step_in_value(b);
            return;
        }
        if self.in_string {
            if self.closes_string(b) {
                if let Some(key) = self.key.take() {
                    self.key_is_id = key == b"id";
                }
                return;
            }
            if let Some(key) = &mut self.key {
                key.push(b);
                if key.len() > 2 {
                    self.key = None;
                }
            }
            return;
        }
        match b {
            b'"' => {
                self.in_string = true;
                if self.depth == 1 && self.key_next {
                    self.key = Some(Vec::new());
                    self.key_next = false;
                    self.key_is_id = false;
                }
            }
            b'{' | b'[' => {
                self.depth += 1;
                self.key_next = self.depth == 1 && b == b'{';
            }
            b'}' | b']' => self.depth = self.depth.saturating_sub(1),
            b',' if self.depth == 1 => self.key_next = true,
            b':' if self.depth == 1 && self.key_is_id => {
                self.key_is_id = false;
                if self.found.is_none() {
                    self.value = Some(Vec::new());
                }
            }
            _ => {}
        }
    }

    /// A byte of the id's value (after its `:`, before the `,` or `}` that
    /// ends it).
    fn step_in_value(&mut self, b: u8) {
        if self.in_string {
            self.closes_string(b);
        } else if matches!(b, b',' | b'}') {
            self.found = self.value.take();
            self.key_next = b == b',';
            if b == b'}' {
                self.depth = self.depth.saturating_sub(1);
            }
            return;
        } else if matches!(b, b'{' | b'[') {
            // Not an id anyone can answer to.
            self.value = None;
            self.depth += 1;
            return;
        } else if b == b'"' {
            self.in_string = true;
        }
        let Some(value) = &mut self.value else {
            return;
        };
        value.push(b);
        if value.len() > MAX_ID {
            self.value = None;
            self.in_string = false;
        }
    }

    /// The id found, if it is one JSON-RPC allows (a number or a string).
    fn id(&self) -> Option<RequestId> {
        let raw = self.found.as_deref()?;
        serde_json::from_slice(raw.trim_ascii()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// The scanner finds the top-level id wherever it is, and only that
    /// one, across chunk boundaries.
    #[test]
    fn finds_the_top_level_id() {
        let cases: &[(&str, Option<RequestId>)] = &[
            (
                r#"{"jsonrpc":"2.0","id":7,"method":"x"}"#,
                Some(RequestId::Number(7)),
            ),
            (
                r#"{"method":"x","params":{"id":1,"s":"\"id\":2"},"id":"a\"b"}"#,
                Some(RequestId::String("a\"b".into())),
            ),
            (r#"{"params":{"id":3}}"#, None),
            (r#"{"id":{"x":1}}"#, None),
            (r#"{"ids":1, "id" : 42 }"#, Some(RequestId::Number(42))),
            (r#"[{"id":1}]"#, None),
        ];
        for (text, want) in cases {
            for split in [1, 3, text.len()] {
                let mut scan = IdScan::default();
                for chunk in text.as_bytes().chunks(split) {
                    scan.feed(chunk);
                }
                assert_eq!(&scan.id(), want, "{text} in chunks of {split}");
            }
        }
    }

    /// A request over the limit is answered with an error for its id, and
    /// the next request is read as usual; a JSON line that is no message
    /// is answered too, and garbage skipped.
    #[tokio::test]
    async fn oversized_requests_are_answered() {
        let (mut client, server_in) = tokio::io::duplex(1 << 16);
        let (server_out, mut client_out) = tokio::io::duplex(1 << 16);
        let mut wire = StdioWire::new(server_in, server_out);
        let writer = tokio::spawn(async move {
            let head = br#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x","arguments":{"a":""#;
            client.write_all(head).await.unwrap();
            let filler = vec![b'x'; 1 << 20];
            for _ in 0..(MAX_LINE >> 20) + 1 {
                client.write_all(&filler).await.unwrap();
            }
            client.write_all(br#""}},"id":99}"#).await.unwrap();
            client
                .write_all(b"\nnot json\n{\"x\":1,\"id\":5}\n")
                .await
                .unwrap();
            client
                .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":100,\"method\":\"ping\"}\n")
                .await
                .unwrap();
            client
        });
        let next = wire.receive().await.expect("a message");
        assert!(
            matches!(&next, ClientJsonRpcMessage::Request(r) if r.id == RequestId::Number(100)),
            "{next:?}"
        );
        let _client = writer.await.unwrap();
        drop(wire);
        let mut out = String::new();
        client_out.read_to_string(&mut out).await.unwrap();
        let answers: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(answers.len(), 2, "{out}");
        assert_eq!(answers[0]["id"], 99);
        assert_eq!(answers[0]["error"]["code"], -32600);
        let message = answers[0]["error"]["message"].as_str().unwrap();
        assert!(message.contains("over weir's limit of 16 MiB"), "{message}");
        assert_eq!(answers[1]["id"], 5);
        assert_eq!(answers[1]["error"]["code"], -32600);
    }
}
