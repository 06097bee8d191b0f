//! The narrow door between the sandbox and the sessions.
//!
//! The sandbox knows nothing of MCP, rmcp or processes; the session manager
//! knows nothing of wasmtime. They meet here, in plain types: a plugin's
//! `call-tool` becomes a [`ToolGateway::call_tool`], whatever stands behind it.

use futures::future::BoxFuture;
use serde_json::{Map, Value};

/// A JSON object of tool arguments, as a map: what an alias's defaults
/// and a recording hold.
pub type ArgumentMap = Map<String, Value>;

/// A call's arguments: a JSON object, kept as the text it came in. It is
/// checked once, at the gate, without building a tree, and written to the
/// wire as is; only a call that needs the values (an alias merging its
/// defaults, the rmcp client of an HTTP server) parses it.
#[derive(Debug, Clone)]
pub struct Arguments(Box<serde_json::value::RawValue>);

impl Arguments {
    /// Reads argument text: a JSON object, or empty (or `null`) for no
    /// arguments. Anything else is `invalid-arguments`, saying what was
    /// seen.
    pub fn parse(text: &str) -> Result<Option<Self>, CallError> {
        if text.len() > MAX_ARGUMENT_BYTES {
            return Err(CallError::InvalidArguments(format!(
                "arguments are {} bytes, more than the {MAX_ARGUMENT_BYTES} allowed",
                text.len()
            )));
        }
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        // Checks the whole text is one JSON value, building nothing.
        let raw = serde_json::from_str::<&serde_json::value::RawValue>(text).map_err(|e| {
            CallError::InvalidArguments(format!("arguments are not valid JSON: {e}"))
        })?;
        match raw.get().as_bytes().first() {
            Some(b'{') => Ok(Some(Self(raw.to_owned()))),
            Some(b'n') => Ok(None),
            first => Err(CallError::InvalidArguments(format!(
                "arguments must be a JSON object, got {}",
                match first {
                    Some(b'[') => "an array",
                    Some(b'"') => "a string",
                    Some(b't' | b'f') => "a boolean",
                    _ => "a number",
                }
            ))),
        }
    }

    /// Arguments holding `map`.
    pub fn from_map(map: &ArgumentMap) -> Result<Self, CallError> {
        serde_json::value::to_raw_value(map)
            .map(Self)
            .map_err(|e| CallError::InvalidArguments(format!("cannot write the arguments: {e}")))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// The text, as the raw JSON value it is (to embed in a message).
    pub fn raw(&self) -> &serde_json::value::RawValue {
        &self.0
    }

    /// The values, parsed: for a call that must read them.
    pub fn to_map(&self) -> ArgumentMap {
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }
}

/// Equal when they hold the same values, however written.
impl PartialEq for Arguments {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get() || self.to_map() == other.to_map()
    }
}

/// Why a tool call produced no result. Mirrors the WIT `call-error`; a tool
/// that ran and failed is a result with `isError`, not one of these.
/// Serialized as `{"error": KIND, "message": …}` (KIND as [`CallError::kind`]
/// names it): the one mapping recordings use, where an unknown kind is an
/// error, never silently another.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(into = "WireCallError", try_from = "WireCallError")]
pub enum CallError {
    #[error("denied: {0}")]
    Denied(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("timed out")]
    Timeout,
    /// The server answered with a JSON-RPC error, or with something that is
    /// not a valid reply.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server needs a capability of its client that weir does not
    /// offer it (MCP's `-32021`); `required` is the JSON of the
    /// capabilities it named. A plugin sees it as `unavailable`; `weir
    /// serve` relays it to a client that lacks the capability too.
    #[error("unavailable: {message}")]
    NeedsClientCapability { message: String, required: String },
}

impl CallError {
    /// The WIT variant's name: what the audit log records as the outcome.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Denied(_) => "denied",
            Self::NotFound(_) => "not-found",
            Self::InvalidArguments(_) => "invalid-arguments",
            Self::Unavailable(_) => "unavailable",
            Self::Timeout => "timeout",
            Self::Protocol(_) => "protocol-error",
            Self::NeedsClientCapability { .. } => "unavailable",
        }
    }
}

/// [`CallError`] as it is written down.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct WireCallError {
    error: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    message: String,
}

impl From<CallError> for WireCallError {
    fn from(e: CallError) -> Self {
        let error = e.kind().to_owned();
        let message = match e {
            CallError::Denied(m)
            | CallError::NotFound(m)
            | CallError::InvalidArguments(m)
            | CallError::Unavailable(m)
            | CallError::Protocol(m)
            | CallError::NeedsClientCapability { message: m, .. } => m,
            CallError::Timeout => String::new(),
        };
        Self { error, message }
    }
}

impl TryFrom<WireCallError> for CallError {
    type Error = String;

    fn try_from(w: WireCallError) -> Result<Self, String> {
        Ok(match w.error.as_str() {
            "denied" => Self::Denied(w.message),
            "not-found" => Self::NotFound(w.message),
            "invalid-arguments" => Self::InvalidArguments(w.message),
            "unavailable" => Self::Unavailable(w.message),
            "timeout" => Self::Timeout,
            "protocol-error" => Self::Protocol(w.message),
            other => {
                return Err(format!(
                    "unknown call error `{other}` (one of denied, not-found, \
                     invalid-arguments, unavailable, timeout, protocol-error)"
                ));
            }
        })
    }
}

/// What an alias stands for: a tool the operator named (`weir.aliases`),
/// with default arguments. Serializable: a recording carries the aliases
/// its run was made with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alias {
    pub server: String,
    pub tool: String,
    /// Arguments sent unless the caller gives them.
    pub arguments: ArgumentMap,
}

/// The server name plugins use to call an alias: `call-tool("alias", NAME, …)`.
pub const ALIAS_SERVER: &str = "alias";

/// A tool as the host advertises it to plugins.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolInfo {
    pub server: String,
    pub name: String,
    pub description: Option<String>,
    /// The input JSON Schema, as JSON text.
    pub input_schema: String,
    /// The output JSON Schema, as JSON text, when the tool declares one
    /// (its results then carry `structuredContent` of that shape).
    pub output_schema: Option<String>,
}

#[cfg(test)]
impl ToolInfo {
    /// A tool with a name and nothing else, for tests.
    pub(crate) fn named(server: &str, name: &str) -> Self {
        Self {
            server: server.into(),
            name: name.into(),
            description: None,
            input_schema: "{}".into(),
            output_schema: None,
        }
    }
}

/// Who is calling: the plugin run on whose behalf a call is made. The
/// session manager routes by it (plugin-scoped sessions) and applies its
/// caps.
#[derive(Debug, Clone)]
pub struct Caller {
    pub plugin: std::sync::Arc<str>,
    /// Caps the server's call timeout for this caller.
    pub call_timeout: Option<std::time::Duration>,
}

impl Caller {
    pub fn new(plugin: impl Into<std::sync::Arc<str>>) -> Self {
        Self {
            plugin: plugin.into(),
            call_timeout: None,
        }
    }
}

/// What a plugin run may reach. Implemented by the session manager; an
/// object-safe trait so the sandbox holds `Arc<dyn ToolGateway>` and is
/// built and tested without any server.
pub trait ToolGateway: Send + Sync + 'static {
    /// Calls one tool; returns the MCP `CallToolResult` as JSON text.
    fn call_tool<'a>(
        &'a self,
        caller: &'a Caller,
        server: &'a str,
        tool: &'a str,
        arguments: Option<Arguments>,
    ) -> BoxFuture<'a, Result<String, CallError>>;

    /// Every tool on every server, from the cache of each server's session.
    fn list_tools<'a>(&'a self, caller: &'a Caller) -> BoxFuture<'a, Vec<ToolInfo>>;

    /// What alias `name` (called as server `alias`) stands for, if the
    /// operator defined it.
    fn alias(&self, _name: &str) -> Option<Alias> {
        None
    }
}

/// Largest argument text accepted from a plugin. A tool call is a message,
/// not a bulk transfer; this bounds what one call can push at a server.
pub const MAX_ARGUMENT_BYTES: usize = 4 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error survives a round trip; an unknown kind is refused.
    #[test]
    fn call_errors_round_trip() {
        for e in [
            CallError::Denied("d".into()),
            CallError::NotFound("n".into()),
            CallError::InvalidArguments("i".into()),
            CallError::Unavailable("u".into()),
            CallError::Timeout,
            CallError::Protocol("p".into()),
        ] {
            let text = serde_json::to_string(&e).expect("serialize");
            assert!(
                text.contains(&format!("\"error\":\"{}\"", e.kind())),
                "{text}"
            );
            assert_eq!(serde_json::from_str::<CallError>(&text).expect("back"), e);
        }
        let old_timeout: CallError =
            serde_json::from_str(r#"{"error":"timeout","message":""}"#).expect("old form");
        assert_eq!(old_timeout, CallError::Timeout);
        let unknown = serde_json::from_str::<CallError>(r#"{"error":"exploded","message":"x"}"#)
            .expect_err("unknown kind");
        assert!(
            unknown
                .to_string()
                .contains("unknown call error `exploded`"),
            "{unknown}"
        );
    }

    /// Argument text: what is accepted, and what each rejection says.
    #[test]
    fn parses_arguments() {
        assert_eq!(Arguments::parse("").unwrap(), None);
        assert_eq!(Arguments::parse("  null ").unwrap(), None);
        let args = Arguments::parse(r#" {"a": 1} "#).unwrap().unwrap();
        assert_eq!(args.get(), r#"{"a": 1}"#, "the text as it came, trimmed");
        assert_eq!(args.to_map()["a"], 1);
        let cases = [
            ("[1,2]", "must be a JSON object, got an array"),
            ("\"hi\"", "must be a JSON object, got a string"),
            ("42", "got a number"),
            (
                "{not json",
                "not valid JSON: key must be a string at line 1 column 2",
            ),
        ];
        for (text, want) in cases {
            match Arguments::parse(text) {
                Err(CallError::InvalidArguments(m)) => assert!(m.contains(want), "{text}: {m}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        let huge = format!("{{\"a\": \"{}\"}}", "x".repeat(MAX_ARGUMENT_BYTES));
        assert!(
            matches!(Arguments::parse(&huge), Err(CallError::InvalidArguments(m)) if m.contains("allowed"))
        );
    }
}
