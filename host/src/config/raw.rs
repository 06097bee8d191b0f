//! The file as serde reads it, and serde's errors turned into weir's
//! (a line and column for bad JSON, a path for a bad value).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{ConfigError, Ctx};

/// Parses a config's text, or says where and why it is not a config.
pub(super) fn parse(text: &str, ctx: &Ctx<'_>) -> Result<RawConfig, ConfigError> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        if inner.is_syntax() || inner.is_eof() {
            ctx.invalid(
                format!("line {}, column {}", inner.line(), inner.column()),
                strip_position(&inner.to_string()),
            )
        } else {
            let at = e.path().to_string();
            let at = if at == "." {
                "top level".to_owned()
            } else {
                at
            };
            ctx.invalid(at, strip_position(&inner.to_string()))
        }
    })
}

/// The file as serde reads it. Unknown keys in a server entry are tolerated
/// (clients add their own, like `autoApprove`); unknown keys in weir's own
/// section are typos and rejected.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawConfig {
    #[serde(default, deserialize_with = "unique_keys")]
    pub(super) mcp_servers: BTreeMap<String, RawServer>,
    #[serde(default)]
    pub(super) weir: RawWeir,
}

/// weir's own keys in a server entry are snake_case like the `weir`
/// section; the camelCase spelling of `mcpServers` files is accepted too.
#[derive(Debug, Deserialize)]
pub(super) struct RawServer {
    pub(super) command: Option<String>,
    #[serde(default)]
    pub(super) args: Vec<String>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub(super) env: BTreeMap<String, String>,
    pub(super) cwd: Option<String>,
    pub(super) url: Option<String>,
    #[serde(default, deserialize_with = "unique_keys")]
    pub(super) headers: BTreeMap<String, String>,
    #[serde(rename = "type")]
    pub(super) transport: Option<String>,
    #[serde(default)]
    pub(super) disabled: bool,
    #[serde(alias = "poolSize")]
    pub(super) pool_size: Option<usize>,
    pub(super) scope: Option<RawScope>,
    #[serde(alias = "callTimeoutSecs")]
    pub(super) call_timeout_secs: Option<f64>,
    #[serde(alias = "startupTimeoutSecs")]
    pub(super) startup_timeout_secs: Option<f64>,
    #[serde(alias = "pingIntervalSecs")]
    pub(super) ping_interval_secs: Option<f64>,
    #[serde(alias = "maxSessions")]
    pub(super) max_sessions: Option<usize>,
    /// `"auto"` or an MCP revision.
    pub(super) protocol: Option<String>,
    /// What to answer a server's request for input.
    pub(super) elicitation: Option<String>,
    /// How to authorize to a remote server that asks for OAuth.
    pub(super) oauth: Option<super::oauth::RawOAuth>,
    #[serde(flatten)]
    pub(super) other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawScope {
    Shared,
    Plugin,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeir {
    /// Offer the embedded server as `builtin` (default true).
    pub(super) builtin: Option<bool>,
    pub(super) plugins_dir: Option<String>,
    pub(super) memory_limit_mb: Option<u64>,
    pub(super) deadline_secs: Option<f64>,
    pub(super) output_limit_bytes: Option<usize>,
    pub(super) max_concurrent_runs: Option<usize>,
    pub(super) instance_pool: Option<bool>,
    pub(super) call_timeout_secs: Option<f64>,
    pub(super) startup_timeout_secs: Option<f64>,
    pub(super) shutdown_grace_secs: Option<f64>,
    pub(super) backoff_base_secs: Option<f64>,
    pub(super) backoff_max_secs: Option<f64>,
    pub(super) circuit_threshold: Option<u32>,
    pub(super) circuit_cooldown_secs: Option<f64>,
    /// Policy fields (see [`PolicySpec`]) for plugins not named below.
    pub(super) default_policy: Option<serde_json::Map<String, serde_json::Value>>,
    pub(super) scratch_root: Option<String>,
    /// `weir serve`: pass upstream tools through as `server.tool`.
    pub(super) expose_upstream_tools: Option<bool>,
    /// `weir serve`: "prefixed" (`server.tool`) or "bare".
    pub(super) upstream_tool_names: Option<super::UpstreamToolNames>,
    /// NAME -> "server/tool", or {"tool": "server/tool", "arguments": {…}}.
    #[serde(default, deserialize_with = "unique_keys")]
    pub(super) aliases: BTreeMap<String, serde_json::Value>,
    /// Compiled-plugin cache directory; `false` turns the cache off.
    pub(super) cache_dir: Option<serde_json::Value>,
    /// Code mode: `enabled`, plus policy fields for its runs.
    pub(super) code_mode: Option<serde_json::Map<String, serde_json::Value>>,
    /// Per plugin: policy fields, plus `sha256`.
    #[serde(default, deserialize_with = "unique_keys")]
    pub(super) plugins: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    pub(super) plugin_size_limit_mb: Option<u64>,
    pub(super) http_header_timeout_secs: Option<f64>,
    pub(super) http_body_timeout_secs: Option<f64>,
    pub(super) http_idle_timeout_secs: Option<f64>,
    pub(super) http_max_connections: Option<usize>,
    pub(super) http_max_sessions: Option<usize>,
    pub(super) http_session_idle_secs: Option<f64>,
    pub(super) http_max_body_bytes: Option<usize>,
    /// `weir serve --http`: who may call it (see [`super::auth`]).
    pub(super) auth: Option<super::auth::RawAuth>,
    /// This process's name in a fleet: the metrics' `replica` label.
    pub(super) replica: Option<String>,
    /// The Redis the fleet's replicas share state through.
    pub(super) redis: Option<String>,
}

/// A JSON object read into a map, refusing a key given twice: serde's own
/// maps keep the last silently, so `"a"` twice in `mcpServers` would drop
/// a server without a word.
fn unique_keys<'de, D, V>(deserializer: D) -> Result<BTreeMap<String, V>, D::Error>
where
    D: serde::Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct Unique<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> serde::de::Visitor<'de> for Unique<V> {
        type Value = BTreeMap<String, V>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!(
                        "the key `{key}` is given twice (the second would silently replace the first)"
                    )));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(Unique(std::marker::PhantomData))
}

/// serde_json appends "at line L column C" to its messages; the location is
/// reported separately, so drop it.
pub(super) fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}
