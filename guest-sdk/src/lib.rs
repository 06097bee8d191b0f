//! Write weir agent plugins in Rust.
//!
//! A plugin is a WebAssembly component that weir runs in a sandbox. It gets
//! one input and returns one answer; on the way it may call MCP tools — and
//! nothing else: no sockets, no files, no environment. The host makes every
//! call on the one session it keeps to each server.
//!
//! ```no_run
//! use weir_guest::{agent, call_tool};
//!
//! #[agent]
//! fn run(input: String) -> Result<String, weir_guest::CallError> {
//!     let reply = call_tool("builtin", "echo", &serde_json::json!({ "message": input }))?;
//!     Ok(reply.text())
//! }
//! # fn main() {}
//! ```
//!
//! The crate is a `cdylib`; build it with
//! `cargo build --target wasm32-wasip2 --release` and run the `.wasm` with
//! `weir run`.
//!
//! The function marked `#[agent]` takes the input (`String` or `&str`) and
//! returns `Result<T, E>` where `T` is a `String`, `&str` or
//! `serde_json::Value` and `E` is anything `Display`.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Marks the plugin's entry function. See the crate docs.
pub use weir_guest_macro::agent;

/// Bindings of weir's WIT world, used by [`agent`]'s expansion.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "weir:agent/agent",
        pub_export_macro: true,
        default_bindings_module: "::weir_guest::bindings",
    });
}

use bindings::weir::agent::mcp;

/// Why a tool call produced no result. A tool that ran and reported a
/// failure is not one of these: it is a [`ToolResult`] with `is_error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// weir's policy refused the call.
    Denied(String),
    /// No such server, or no such tool on it.
    NotFound(String),
    /// The arguments were not a JSON object (or could not be serialized).
    InvalidArguments(String),
    /// The server could not be started or reached.
    Unavailable(String),
    /// The server did not answer in time; weir cancelled the call.
    Timeout,
    /// The server answered with a protocol error or an invalid reply.
    Protocol(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied(m) => write!(f, "denied: {m}"),
            Self::NotFound(m) => write!(f, "not found: {m}"),
            Self::InvalidArguments(m) => write!(f, "invalid arguments: {m}"),
            Self::Unavailable(m) => write!(f, "unavailable: {m}"),
            Self::Timeout => write!(f, "timed out"),
            Self::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

impl std::error::Error for CallError {}

impl From<mcp::CallError> for CallError {
    fn from(e: mcp::CallError) -> Self {
        match e {
            mcp::CallError::Denied(m) => Self::Denied(m),
            mcp::CallError::NotFound(m) => Self::NotFound(m),
            mcp::CallError::InvalidArguments(m) => Self::InvalidArguments(m),
            mcp::CallError::Unavailable(m) => Self::Unavailable(m),
            mcp::CallError::Timeout => Self::Timeout,
            mcp::CallError::ProtocolError(m) => Self::Protocol(m),
        }
    }
}

/// One item of a tool result's content.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text(String),
    /// Images, audio, resources: the MCP content block as JSON.
    Other(Value),
}

/// A tool's answer: MCP's `CallToolResult`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ToolResult {
    pub content: Vec<Content>,
    pub structured_content: Option<Value>,
    /// The tool ran and reports a failure (its content says why).
    pub is_error: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResult {
    #[serde(default)]
    content: Vec<Value>,
    structured_content: Option<Value>,
    #[serde(default)]
    is_error: Option<bool>,
}

impl ToolResult {
    /// Parses the JSON `CallToolResult` the host returns.
    pub fn from_json(json: &str) -> Result<Self, CallError> {
        let wire: WireResult = serde_json::from_str(json).map_err(|e| {
            CallError::Protocol(format!("the host returned a malformed result: {e}"))
        })?;
        let content = wire
            .content
            .into_iter()
            .map(|block| match (block.get("type"), block.get("text")) {
                (Some(Value::String(t)), Some(Value::String(text))) if t == "text" => {
                    Content::Text(text.clone())
                }
                _ => Content::Other(block),
            })
            .collect();
        Ok(Self {
            content,
            structured_content: wire.structured_content,
            is_error: wire.is_error.unwrap_or(false),
        })
    }

    /// All text content, joined by newlines.
    pub fn text(&self) -> String {
        let texts: Vec<&str> = self
            .content
            .iter()
            .filter_map(|c| match c {
                Content::Text(t) => Some(t.as_str()),
                Content::Other(_) => None,
            })
            .collect();
        texts.join("\n")
    }

    /// The structured content (or, failing that, the text parsed as JSON)
    /// as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match &self.structured_content {
            Some(v) => T::deserialize(v),
            None => serde_json::from_str(&self.text()),
        }
    }
}

/// A tool the plugin may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub server: String,
    pub name: String,
    pub description: Option<String>,
    /// The tool's input JSON Schema.
    pub input_schema: Value,
}

/// Calls `tool` on `server` with `arguments` (anything that serializes to
/// a JSON object; `()` for none). Blocks until the host has the answer.
pub fn call_tool<A: Serialize + ?Sized>(
    server: &str,
    tool: &str,
    arguments: &A,
) -> Result<ToolResult, CallError> {
    let arguments = serde_json::to_string(arguments)
        .map_err(|e| CallError::InvalidArguments(format!("cannot serialize the arguments: {e}")))?;
    call_tool_json(server, tool, &arguments)
}

/// [`call_tool`] with the arguments already as JSON text.
pub fn call_tool_json(server: &str, tool: &str, arguments: &str) -> Result<ToolResult, CallError> {
    let json = mcp::call_tool(server, tool, arguments)?;
    ToolResult::from_json(&json)
}

/// One call of a batch for [`call_tools`].
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub server: String,
    pub tool: String,
    /// The arguments as JSON text (an object; empty for none).
    pub arguments: String,
}

impl Call {
    /// A call of `tool` on `server` with `arguments` (anything that
    /// serializes to a JSON object).
    pub fn new<A: Serialize + ?Sized>(
        server: &str,
        tool: &str,
        arguments: &A,
    ) -> Result<Self, CallError> {
        Ok(Self {
            server: server.to_owned(),
            tool: tool.to_owned(),
            arguments: serde_json::to_string(arguments).map_err(|e| {
                CallError::InvalidArguments(format!("cannot serialize the arguments: {e}"))
            })?,
        })
    }
}

/// Makes several tool calls at once — what an LLM's parallel tool calls
/// ask for. The host runs them concurrently on its shared sessions (up to
/// the plugin's `max_parallel_calls` at a time); the results come back in
/// the order of `calls`, each as [`call_tool`] would return it.
pub fn call_tools(calls: &[Call]) -> Vec<Result<ToolResult, CallError>> {
    let wire: Vec<mcp::Call> = calls
        .iter()
        .map(|c| mcp::Call {
            server: c.server.clone(),
            tool: c.tool.clone(),
            arguments: c.arguments.clone(),
        })
        .collect();
    mcp::call_tools(&wire)
        .into_iter()
        .map(|r| {
            r.map_err(CallError::from)
                .and_then(|json| ToolResult::from_json(&json))
        })
        .collect()
}

/// Every tool the plugin may call, from the host's cache.
pub fn list_tools() -> Vec<Tool> {
    mcp::list_tools()
        .into_iter()
        .map(|t| Tool {
            input_schema: serde_json::from_str(&t.input_schema).unwrap_or(Value::Null),
            server: t.server,
            name: t.name,
            description: t.description,
        })
        .collect()
}

/// What an agent function may return on success.
pub trait AgentOutput {
    fn into_output(self) -> String;
}

impl AgentOutput for String {
    fn into_output(self) -> String {
        self
    }
}

impl AgentOutput for &str {
    fn into_output(self) -> String {
        self.to_owned()
    }
}

impl AgentOutput for Value {
    fn into_output(self) -> String {
        self.to_string()
    }
}

/// Used by [`agent`]'s expansion; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub fn finish<T: super::AgentOutput, E: std::fmt::Display>(
        result: Result<T, E>,
    ) -> Result<String, String> {
        result.map(T::into_output).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host's JSON result becomes typed content, text and flags.
    #[test]
    fn parses_tool_results() {
        let r = ToolResult::from_json(
            r#"{"content":[{"type":"text","text":"a"},{"type":"image","data":"x","mimeType":"image/png"},{"type":"text","text":"b"}],"isError":true}"#,
        )
        .unwrap();
        assert_eq!(r.text(), "a\nb");
        assert!(r.is_error);
        assert!(matches!(&r.content[1], Content::Other(v) if v["type"] == "image"));

        let s = ToolResult::from_json(r#"{"content":[],"structuredContent":{"sum":3}}"#).unwrap();
        assert_eq!(s.json::<serde_json::Value>().unwrap()["sum"], 3);
        assert!(!s.is_error);

        let bad = ToolResult::from_json("nope").unwrap_err();
        assert!(matches!(bad, CallError::Protocol(m) if m.contains("malformed")));
    }
}
