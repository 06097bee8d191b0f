//! The configuration file: the `mcpServers` JSON that MCP clients already
//! use, plus weir's own `weir` section.
//!
//! Parse, then validate: [`RawConfig`] mirrors the file as serde sees it;
//! [`Config::from_json`] turns it into a checked [`Config`] whose every error
//! names the file, the server and the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::policy::{Policy, PolicySpec, ToolPattern, positive_secs};

/// Name under which the embedded default server is offered.
pub const BUILTIN_SERVER: &str = "builtin";

/// The subcommand of the `weir` binary that serves the built-in server
/// on stdio (how the session manager starts it).
pub const BUILTIN_SUBCOMMAND: &str = "builtin-server";

/// Default bound on a plugin file's size (`weir.plugin_size_limit_mb`).
pub const DEFAULT_MAX_PLUGIN_BYTES: u64 = 128 << 20;

/// The default compile cache: `$XDG_CACHE_HOME/weir/compiled` or
/// `~/.cache/weir/compiled`.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|base| base.join("weir").join("compiled"))
}

/// Environment variables a stdio server inherits from weir's own
/// environment. Everything else (tokens of other servers, say) stays out
/// unless the server's `env` names it — the same default as the MCP SDKs.
pub const INHERITED_ENV: &[&str] = &[
    "HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR", "TZ",
];

/// A checked configuration: everything the host needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, for messages; `None` for the built-in default.
    pub source: Option<PathBuf>,
    /// MCP servers by name. A name is how plugins address a server.
    pub servers: BTreeMap<String, ServerConfig>,
    /// Where `weir run NAME` looks for `NAME.wasm`.
    pub plugins_dir: Option<PathBuf>,
    /// Limits applied to every plugin run.
    pub limits: RunLimits,
    /// Timeouts of the session manager.
    pub sessions: SessionSettings,
    /// The policy of every plugin the operator did not name: by default,
    /// the built-in server's tools and nothing else.
    pub default_policy: Policy,
    /// Grants for named plugins (`weir.plugins.NAME`).
    pub plugins: BTreeMap<String, PluginGrant>,
    /// Where compiled plugins are cached; `None`: compile at every start.
    pub cache_dir: Option<PathBuf>,
    /// Where per-run scratch directories are made; `None`: the system's
    /// temporary directory.
    pub scratch_root: Option<PathBuf>,
    /// `weir serve` also offers each upstream server's tools, as
    /// `server.tool`, under the default policy. Off unless asked for: a
    /// client should reach upstream tools through an agent by default.
    pub expose_upstream_tools: bool,
    /// Logical tool names plugins call as `alias/NAME`, each standing for a
    /// server's tool: moving a capability to another server is a config
    /// change, not a plugin rebuild.
    pub aliases: BTreeMap<String, Alias>,
    /// Largest plugin file weir reads (`weir.plugin_size_limit_mb`).
    pub plugin_size_limit: u64,
    /// Bounds on the clients of `weir serve --http`.
    pub http: HttpLimits,
}

/// Bounds on what the clients of `weir serve --http` can hold: a client
/// that sends nothing, or a byte at a time, or opens sessions it never
/// ends, costs a bounded amount and is then let go.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpLimits {
    /// A request's headers must arrive within this (slow-header clients).
    pub header_timeout: Duration,
    /// A request's body must arrive within this (slow-body clients).
    pub body_timeout: Duration,
    /// A connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// Connections open at once; past it a new one is answered 503.
    pub max_connections: usize,
    /// Legacy MCP sessions (`Mcp-Session-Id`) open at once; past it the
    /// one idle longest is ended to make room, and the log says so.
    pub max_sessions: usize,
    /// A legacy session nobody used for this long is ended.
    pub session_idle: Duration,
    /// Largest request body.
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_sessions: 1000,
            session_idle: Duration::from_secs(300),
            max_body_bytes: 4 << 20,
        }
    }
}

use crate::gateway::{ALIAS_SERVER, Alias};

/// What the operator set for one plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginGrant {
    pub policy: Policy,
    /// The plugin file's expected sha256 (hex); a mismatch refuses it.
    pub sha256: Option<String>,
}

impl Config {
    /// Grants `allow` too, to every plugin, for this process only: what
    /// `weir run --allow` adds to a one-off run without editing a config.
    pub fn allow_also(&mut self, allow: &[ToolPattern]) {
        let policies = std::iter::once(&mut self.default_policy)
            .chain(self.plugins.values_mut().map(|g| &mut g.policy));
        for policy in policies {
            policy.allow.extend(allow.iter().cloned());
        }
    }

    /// Grants exactly `allow` to every plugin: a replay runs under the
    /// grants its recording was made under, whatever this config says.
    pub fn allow_only(&mut self, allow: &[ToolPattern]) {
        let policies = std::iter::once(&mut self.default_policy)
            .chain(self.plugins.values_mut().map(|g| &mut g.policy));
        for policy in policies {
            policy.allow = allow.to_vec();
        }
    }

    /// The operator's policy and pin for plugin `name`.
    pub fn grant_for(&self, name: &str) -> (&Policy, Option<&str>) {
        match self.plugins.get(name) {
            Some(g) => (&g.policy, g.sha256.as_deref()),
            None => (&self.default_policy, None),
        }
    }
}

/// One MCP server the host may open sessions to, and how many.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub transport: Transport,
    /// Sessions kept to the server (per scope); calls go to the least
    /// loaded. One suffices for most servers, which answer many requests
    /// in flight; more helps a server that handles one at a time.
    pub pool_size: usize,
    pub scope: Scope,
    /// Overrides [`SessionSettings::call_timeout`] for this server.
    pub call_timeout: Option<Duration>,
    /// Overrides [`SessionSettings::startup_timeout`] for this server.
    pub startup_timeout: Option<Duration>,
    /// Ping an idle session this often; a session that fails the ping is
    /// recycled. `None`: no pings.
    pub ping_interval: Option<Duration>,
    /// With [`Scope::Plugin`], sessions at most across all plugins; the
    /// least recently used idle plugin's sessions are closed to make room.
    pub max_sessions: usize,
}

impl ServerConfig {
    /// A server with the defaults: one shared session.
    pub fn new(transport: Transport) -> Self {
        Self {
            transport,
            pool_size: 1,
            scope: Scope::Shared,
            call_timeout: None,
            startup_timeout: None,
            ping_interval: None,
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }
}

/// Default bound on plugin-scoped sessions to one server.
pub const DEFAULT_MAX_SESSIONS: usize = 16;

/// How to reach a server.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// A child process speaking MCP over its stdin/stdout.
    Stdio(StdioServer),
    /// weir's own embedded server, run as a child process of the `weir`
    /// binary so that it goes through the same session path as any other.
    Builtin,
    /// A remote server speaking MCP's streamable HTTP transport.
    Http(HttpServer),
}

/// How to reach a streamable HTTP server. Its `Debug` shows no secret.
#[derive(Clone, PartialEq)]
pub struct HttpServer {
    /// The MCP endpoint, e.g. `https://example.com/mcp`.
    pub url: url::Url,
    /// Sent with every request (`Authorization`, API keys): checked when
    /// the config was read, so a bad one never reaches a request.
    pub headers: http::HeaderMap,
}

impl HttpServer {
    /// The URL as weir shows it: userinfo and query values masked.
    pub fn shown(&self) -> String {
        crate::redact::url(&self.url)
    }
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("url", &self.shown())
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Who shares a server's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// One pool for every plugin: the fewest connections.
    #[default]
    Shared,
    /// A pool per plugin: state kept by a stateful server (a browser, a
    /// memory store) is never seen by another plugin.
    Plugin,
}

/// How to start a stdio server. Its `Debug` shows no secret.
#[derive(Clone, PartialEq)]
pub struct StdioServer {
    pub command: String,
    pub args: Vec<String>,
    /// Added to [`INHERITED_ENV`]; wins over it.
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
    /// The command line as weir shows it: as written in the config, each
    /// `${VAR}` unexpanded (so its value never appears), secrets masked.
    pub shown: String,
}

impl std::fmt::Debug for StdioServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioServer")
            .field("command_line", &self.shown)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("cwd", &self.cwd)
            .finish()
    }
}

impl Transport {
    /// How weir reaches the server, as weir shows it (doctor, errors):
    /// the command line or URL, with no secret in it.
    pub fn shown(&self) -> String {
        match self {
            Self::Builtin => "weir builtin-server".into(),
            Self::Stdio(s) => s.shown.clone(),
            Self::Http(h) => h.shown(),
        }
    }
}

/// Limits of one plugin run. Each is a ceiling that ends only that run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunLimits {
    /// Linear memory a plugin may grow to.
    pub memory_bytes: usize,
    /// Wall-clock time of a whole run, time spent waiting in `call-tool`
    /// included: a plugin that waits forever is as stuck as one that loops.
    pub deadline: Duration,
    /// Bytes of stdout and of stderr kept per run; the rest is dropped (and
    /// counted), so a chatty plugin cannot fill the host's memory.
    pub output_bytes: usize,
    /// Runs in flight at once across the host; each holds one instance slot
    /// of the pooling allocator, so this also sizes the pool.
    pub max_concurrent_runs: usize,
    /// Pre-reserve instance slots (the pooling allocator): instantiation in
    /// microseconds, at the price of reserved address space. Off: each run
    /// maps its memory afresh.
    pub instance_pool: bool,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            deadline: Duration::from_secs(30),
            output_bytes: 64 << 10,
            max_concurrent_runs: 256,
            instance_pool: true,
        }
    }
}

/// Timeouts of the session manager.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSettings {
    /// One `tools/call` round trip; past it the call is cancelled at the
    /// server and the plugin gets `timeout`.
    pub call_timeout: Duration,
    /// Process start plus `initialize` plus the first `tools/list`.
    pub startup_timeout: Duration,
    /// On shutdown, how long a server gets to exit after its stdin closes
    /// before it is sent SIGTERM, and again before SIGKILL.
    pub shutdown_grace: Duration,
    /// Wait after the first failed start; doubled after each further
    /// failure (with jitter, so many hosts do not retry in step).
    pub backoff_base: Duration,
    /// The longest wait between two start attempts.
    pub backoff_max: Duration,
    /// Consecutive failed starts that open the circuit: calls then fail
    /// fast until one probe start succeeds.
    pub circuit_threshold: u32,
    /// How long an open circuit stays open before the next probe.
    pub circuit_cooldown: Duration,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(60),
            startup_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(2),
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            circuit_threshold: 5,
            circuit_cooldown: Duration::from_secs(30),
        }
    }
}

impl Default for Config {
    /// No file: the built-in server only.
    fn default() -> Self {
        let limits = RunLimits::default();
        Self {
            default_policy: base_policy(&limits, true),
            plugins: BTreeMap::new(),
            cache_dir: default_cache_dir(),
            scratch_root: None,
            expose_upstream_tools: false,
            aliases: BTreeMap::new(),
            source: None,
            servers: BTreeMap::from([(
                BUILTIN_SERVER.to_owned(),
                ServerConfig::new(Transport::Builtin),
            )]),
            plugins_dir: None,
            limits,
            sessions: SessionSettings::default(),
            plugin_size_limit: DEFAULT_MAX_PLUGIN_BYTES,
            http: HttpLimits::default(),
        }
    }
}

/// The policy before any operator layer: the host-wide limits, and a
/// grant of the built-in server's tools when it is offered.
fn base_policy(limits: &RunLimits, builtin: bool) -> Policy {
    Policy {
        allow: if builtin {
            vec![
                ToolPattern::parse(&format!("{BUILTIN_SERVER}/*"))
                    .unwrap_or_else(|e| unreachable!("{e}")),
            ]
        } else {
            Vec::new()
        },
        memory_bytes: limits.memory_bytes,
        deadline: limits.deadline,
        output_bytes: limits.output_bytes,
        ..Policy::default()
    }
}

/// A configuration that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `location` is a path into the document (`mcpServers.fs.env.TOKEN`)
    /// or a line and column for JSON syntax errors.
    #[error("config file {path}: {location}: {message}")]
    Invalid {
        path: PathBuf,
        location: String,
        message: String,
    },
}

/// The file as serde reads it. Unknown keys in a server entry are tolerated
/// (clients add their own, like `autoApprove`); unknown keys in weir's own
/// section are typos and rejected.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[serde(default, deserialize_with = "unique_keys")]
    mcp_servers: BTreeMap<String, RawServer>,
    #[serde(default)]
    weir: RawWeir,
}

/// weir's own keys in a server entry are snake_case like the `weir`
/// section; the camelCase spelling of `mcpServers` files is accepted too.
#[derive(Debug, Deserialize)]
struct RawServer {
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default, deserialize_with = "unique_keys")]
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    url: Option<String>,
    #[serde(default, deserialize_with = "unique_keys")]
    headers: BTreeMap<String, String>,
    #[serde(rename = "type")]
    transport: Option<String>,
    #[serde(default)]
    disabled: bool,
    #[serde(alias = "poolSize")]
    pool_size: Option<usize>,
    scope: Option<RawScope>,
    #[serde(alias = "callTimeoutSecs")]
    call_timeout_secs: Option<f64>,
    #[serde(alias = "startupTimeoutSecs")]
    startup_timeout_secs: Option<f64>,
    #[serde(alias = "pingIntervalSecs")]
    ping_interval_secs: Option<f64>,
    #[serde(alias = "maxSessions")]
    max_sessions: Option<usize>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawScope {
    Shared,
    Plugin,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeir {
    /// Offer the embedded server as `builtin` (default true).
    builtin: Option<bool>,
    plugins_dir: Option<String>,
    memory_limit_mb: Option<u64>,
    deadline_secs: Option<f64>,
    output_limit_bytes: Option<usize>,
    max_concurrent_runs: Option<usize>,
    instance_pool: Option<bool>,
    call_timeout_secs: Option<f64>,
    startup_timeout_secs: Option<f64>,
    shutdown_grace_secs: Option<f64>,
    backoff_base_secs: Option<f64>,
    backoff_max_secs: Option<f64>,
    circuit_threshold: Option<u32>,
    circuit_cooldown_secs: Option<f64>,
    /// Policy fields (see [`PolicySpec`]) for plugins not named below.
    default_policy: Option<serde_json::Map<String, serde_json::Value>>,
    scratch_root: Option<String>,
    /// `weir serve`: pass upstream tools through as `server.tool`.
    expose_upstream_tools: Option<bool>,
    /// NAME -> "server/tool", or {"tool": "server/tool", "arguments": {…}}.
    #[serde(default, deserialize_with = "unique_keys")]
    aliases: BTreeMap<String, serde_json::Value>,
    /// Compiled-plugin cache directory; `false` turns the cache off.
    cache_dir: Option<serde_json::Value>,
    /// Per plugin: policy fields, plus `sha256`.
    #[serde(default, deserialize_with = "unique_keys")]
    plugins: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    plugin_size_limit_mb: Option<u64>,
    http_header_timeout_secs: Option<f64>,
    http_body_timeout_secs: Option<f64>,
    http_idle_timeout_secs: Option<f64>,
    http_max_connections: Option<usize>,
    http_max_sessions: Option<usize>,
    http_session_idle_secs: Option<f64>,
    http_max_body_bytes: Option<usize>,
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

impl Config {
    /// Reads and checks a configuration file, expanding `${VAR}` from the
    /// process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(path, &text, |name| std::env::var(name).ok())
    }

    /// Checks a configuration given as text. `path` is used for messages and
    /// to resolve relative paths; `env` looks up `${VAR}` references.
    pub fn from_json(
        path: &Path,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let invalid = |location: String, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            location,
            message,
        };
        let mut de = serde_json::Deserializer::from_str(text);
        let raw: RawConfig = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let inner = e.inner();
            if inner.is_syntax() || inner.is_eof() {
                invalid(
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
                invalid(at, strip_position(&inner.to_string()))
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));

        let mut servers = BTreeMap::new();
        if raw.weir.builtin.unwrap_or(true) {
            servers.insert(
                BUILTIN_SERVER.to_owned(),
                ServerConfig::new(Transport::Builtin),
            );
        }
        for (name, server) in raw.mcp_servers {
            let at = |field: &str| format!("mcpServers.{name}{field}");
            if !valid_server_name(&name) {
                return Err(invalid(
                    at(""),
                    "a server name must be 1-64 letters, digits, '-' or '_'".into(),
                ));
            }
            if name == BUILTIN_SERVER {
                return Err(invalid(
                    at(""),
                    format!(
                        "`{BUILTIN_SERVER}` is the name of weir's embedded server; give this \
                         server another name (weir.builtin = false turns the embedded one off)"
                    ),
                ));
            }
            if name == ALIAS_SERVER {
                return Err(invalid(
                    at(""),
                    format!("`{ALIAS_SERVER}` is reserved: plugins call aliases through it"),
                ));
            }
            if server.disabled {
                servers.remove(&name);
                continue;
            }
            for key in server.other.keys() {
                tracing::debug!(server = %name, key = %key, "ignoring config key weir does not use");
            }
            let expand_at = |field: String, value: &str| {
                expand_vars(value, &env).map_err(|message| invalid(field, message))
            };
            // Where secrets are: every `${VAR}` value, registered so that
            // nothing weir prints shows it.
            let secret_env = |name: &str| {
                let value = env(name);
                if let Some(v) = &value {
                    crate::redact::register(v);
                }
                value
            };
            let expand_secret = |field: String, value: &str| {
                expand_vars(value, secret_env).map_err(|message| invalid(field, message))
            };
            let transport = match (server.transport.as_deref(), &server.url, &server.command) {
                (Some("sse"), _, _) => {
                    return Err(invalid(
                        at(".type"),
                        "the legacy HTTP+SSE transport is not supported; point \"url\" at the \
                         server's streamable HTTP endpoint (usually /mcp) instead"
                            .into(),
                    ));
                }
                (Some(t), _, _)
                    if !matches!(t, "stdio" | "http" | "streamable-http" | "streamableHttp") =>
                {
                    return Err(invalid(
                        at(".type"),
                        format!("unknown transport \"{t}\"; use \"stdio\" or \"http\""),
                    ));
                }
                (_, Some(_), Some(_)) => {
                    return Err(invalid(
                        at(""),
                        "give either \"command\" or \"url\", not both".into(),
                    ));
                }
                (_, Some(url), None) => {
                    let url = expand_secret(at(".url"), url.trim())?;
                    let url = parse_url(&url).map_err(|m| invalid(at(".url"), m))?;
                    crate::redact::register_url(&url);
                    let mut headers = http::HeaderMap::new();
                    for (k, v) in &server.headers {
                        let value = expand_secret(at(&format!(".headers.{k}")), v)?;
                        crate::redact::register(&value);
                        let (name, value) = parse_header(k, &value)
                            .map_err(|m| invalid(at(&format!(".headers.{k}")), m))?;
                        headers.append(name, value);
                    }
                    Transport::Http(HttpServer { url, headers })
                }
                (_, None, command) => {
                    let (command, written) = match command.as_deref().map(str::trim) {
                        Some(c) if !c.is_empty() => (expand_secret(at(".command"), c)?, c),
                        _ => {
                            return Err(invalid(at(""), "missing \"command\" (or \"url\")".into()));
                        }
                    };
                    let args = server
                        .args
                        .iter()
                        .enumerate()
                        .map(|(i, a)| expand_secret(at(&format!(".args[{i}]")), a))
                        .collect::<Result<_, _>>()?;
                    // A server's environment is where MCP configs put
                    // tokens, written out or not: every value is a secret.
                    let env_vars = server
                        .env
                        .iter()
                        .map(|(k, v)| {
                            let value = expand_secret(at(&format!(".env.{k}")), v)?;
                            crate::redact::register(&value);
                            Ok((k.clone(), value))
                        })
                        .collect::<Result<_, ConfigError>>()?;
                    let shown = crate::redact::scrub(
                        &std::iter::once(written)
                            .chain(server.args.iter().map(String::as_str))
                            .collect::<Vec<_>>()
                            .join(" "),
                    );
                    let cwd = server
                        .cwd
                        .as_deref()
                        .map(|c| expand_at(at(".cwd"), c).map(|c| base.join(c)))
                        .transpose()?;
                    Transport::Stdio(StdioServer {
                        command,
                        args,
                        env: env_vars,
                        cwd,
                        shown,
                    })
                }
            };
            let mut entry = ServerConfig::new(transport);
            if let Some(n) = server.pool_size {
                if !(1..=64).contains(&n) {
                    return Err(invalid(
                        at(".pool_size"),
                        format!("{n} is out of range 1..=64"),
                    ));
                }
                entry.pool_size = n;
            }
            if let Some(n) = server.max_sessions {
                if !(1..=1024).contains(&n) {
                    return Err(invalid(
                        at(".max_sessions"),
                        format!("{n} is out of range 1..=1024"),
                    ));
                }
                entry.max_sessions = n;
            }
            if entry.max_sessions < entry.pool_size {
                return Err(invalid(
                    at(".max_sessions"),
                    format!(
                        "{} is less than pool_size {}: not even one plugin's pool would fit",
                        entry.max_sessions, entry.pool_size
                    ),
                ));
            }
            entry.scope = match server.scope {
                None | Some(RawScope::Shared) => Scope::Shared,
                Some(RawScope::Plugin) => Scope::Plugin,
            };
            let optional_secs = |field: &str, value: Option<f64>| {
                value
                    .map(|s| {
                        positive_secs(s).ok_or_else(|| {
                            invalid(
                                at(&format!(".{field}")),
                                format!("{s} is not a positive number of seconds"),
                            )
                        })
                    })
                    .transpose()
            };
            entry.call_timeout = optional_secs("call_timeout_secs", server.call_timeout_secs)?;
            entry.startup_timeout =
                optional_secs("startup_timeout_secs", server.startup_timeout_secs)?;
            entry.ping_interval = optional_secs("ping_interval_secs", server.ping_interval_secs)?;
            servers.insert(name, entry);
        }

        let w = &raw.weir;
        let mut limits = RunLimits::default();
        let mut sessions = SessionSettings::default();
        if let Some(mb) = w.memory_limit_mb {
            if !(1..=4096).contains(&mb) {
                return Err(invalid(
                    "weir.memory_limit_mb".into(),
                    format!("{mb} is out of range 1..=4096"),
                ));
            }
            limits.memory_bytes = (mb as usize) << 20;
        }
        let secs = |field: &str, value: Option<f64>, slot: &mut Duration| {
            if let Some(s) = value {
                *slot = positive_secs(s).ok_or_else(|| {
                    invalid(
                        format!("weir.{field}"),
                        format!("{s} is not a positive number of seconds"),
                    )
                })?;
            }
            Ok::<_, ConfigError>(())
        };
        secs("deadline_secs", w.deadline_secs, &mut limits.deadline)?;
        secs(
            "call_timeout_secs",
            w.call_timeout_secs,
            &mut sessions.call_timeout,
        )?;
        secs(
            "startup_timeout_secs",
            w.startup_timeout_secs,
            &mut sessions.startup_timeout,
        )?;
        secs(
            "shutdown_grace_secs",
            w.shutdown_grace_secs,
            &mut sessions.shutdown_grace,
        )?;
        secs(
            "backoff_base_secs",
            w.backoff_base_secs,
            &mut sessions.backoff_base,
        )?;
        secs(
            "backoff_max_secs",
            w.backoff_max_secs,
            &mut sessions.backoff_max,
        )?;
        secs(
            "circuit_cooldown_secs",
            w.circuit_cooldown_secs,
            &mut sessions.circuit_cooldown,
        )?;
        if let Some(n) = w.circuit_threshold {
            if n == 0 {
                return Err(invalid(
                    "weir.circuit_threshold".into(),
                    "must be at least 1".into(),
                ));
            }
            sessions.circuit_threshold = n;
        }
        if let Some(n) = w.output_limit_bytes {
            limits.output_bytes = n;
        }
        if let Some(pool) = w.instance_pool {
            limits.instance_pool = pool;
        }
        if let Some(n) = w.max_concurrent_runs {
            if !(1..=10_000).contains(&n) {
                return Err(invalid(
                    "weir.max_concurrent_runs".into(),
                    format!("{n} is out of range 1..=10000"),
                ));
            }
            limits.max_concurrent_runs = n;
        }
        let mut plugin_size_limit = DEFAULT_MAX_PLUGIN_BYTES;
        if let Some(mb) = w.plugin_size_limit_mb {
            if !(1..=4096).contains(&mb) {
                return Err(invalid(
                    "weir.plugin_size_limit_mb".into(),
                    format!("{mb} is out of range 1..=4096"),
                ));
            }
            plugin_size_limit = mb << 20;
        }
        let mut http = HttpLimits::default();
        secs(
            "http_header_timeout_secs",
            w.http_header_timeout_secs,
            &mut http.header_timeout,
        )?;
        secs(
            "http_body_timeout_secs",
            w.http_body_timeout_secs,
            &mut http.body_timeout,
        )?;
        secs(
            "http_idle_timeout_secs",
            w.http_idle_timeout_secs,
            &mut http.idle_timeout,
        )?;
        secs(
            "http_session_idle_secs",
            w.http_session_idle_secs,
            &mut http.session_idle,
        )?;
        let count = |field: &str,
                     value: Option<usize>,
                     range: std::ops::RangeInclusive<usize>,
                     slot: &mut usize| {
            if let Some(n) = value {
                if !range.contains(&n) {
                    return Err(invalid(
                        format!("weir.{field}"),
                        format!("{n} is out of range {}..={}", range.start(), range.end()),
                    ));
                }
                *slot = n;
            }
            Ok(())
        };
        count(
            "http_max_connections",
            w.http_max_connections,
            1..=1_000_000,
            &mut http.max_connections,
        )?;
        count(
            "http_max_sessions",
            w.http_max_sessions,
            1..=1_000_000,
            &mut http.max_sessions,
        )?;
        count(
            "http_max_body_bytes",
            w.http_max_body_bytes,
            1024..=(1 << 30),
            &mut http.max_body_bytes,
        )?;
        let plugins_dir = w
            .plugins_dir
            .as_deref()
            .map(|d| expand_vars(d, &env).map(|d| base.join(d)))
            .transpose()
            .map_err(|m| invalid("weir.plugins_dir".into(), m))?;

        let builtin_grant = base_policy(&limits, raw.weir.builtin.unwrap_or(true));
        let default_policy = match &w.default_policy {
            None => builtin_grant,
            Some(fields) => policy_spec(fields, "weir.default_policy", &invalid)?
                .over(&builtin_grant)
                .map_err(|m| invalid("weir.default_policy".into(), m))?,
        };
        let mut aliases = BTreeMap::new();
        for (name, value) in &w.aliases {
            let at = format!("weir.aliases.{name}");
            let alias = parse_alias(name, value, &servers).map_err(|m| invalid(at, m))?;
            aliases.insert(name.clone(), alias);
        }
        let mut plugins = BTreeMap::new();
        for (name, fields) in &w.plugins {
            let at = format!("weir.plugins.{name}");
            let mut fields = fields.clone();
            let sha256 = match fields.remove("sha256") {
                None => None,
                Some(serde_json::Value::String(h))
                    if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) =>
                {
                    Some(h.to_ascii_lowercase())
                }
                Some(other) => {
                    return Err(invalid(
                        format!("{at}.sha256"),
                        format!("{other} is not 64 hex digits"),
                    ));
                }
            };
            let policy = policy_spec(&fields, &at, &invalid)?
                .over(&default_policy)
                .map_err(|m| invalid(at.clone(), m))?;
            if policy.memory_bytes > limits.memory_bytes {
                return Err(invalid(
                    format!("{at}.memory_limit_mb"),
                    format!(
                        "{} MiB is above the host-wide memory_limit_mb of {} MiB",
                        policy.memory_bytes >> 20,
                        limits.memory_bytes >> 20
                    ),
                ));
            }
            plugins.insert(name.clone(), PluginGrant { policy, sha256 });
        }

        let cache_dir = match &w.cache_dir {
            None => default_cache_dir(),
            Some(serde_json::Value::Bool(false)) => None,
            Some(serde_json::Value::String(dir)) => Some(
                base.join(expand_vars(dir, &env).map_err(|m| invalid("weir.cache_dir".into(), m))?),
            ),
            Some(other) => {
                return Err(invalid(
                    "weir.cache_dir".into(),
                    format!("{other} is neither a directory nor false"),
                ));
            }
        };

        Ok(Self {
            source: Some(path.to_owned()),
            servers,
            plugins_dir,
            limits,
            sessions,
            default_policy,
            plugins,
            cache_dir,
            scratch_root: w
                .scratch_root
                .as_deref()
                .map(|d| expand_vars(d, &env).map(|d| base.join(d)))
                .transpose()
                .map_err(|m| invalid("weir.scratch_root".into(), m))?,
            expose_upstream_tools: w.expose_upstream_tools.unwrap_or(false),
            aliases,
            plugin_size_limit,
            http,
        })
    }
}

/// A URL weir can connect to: http or https, and naming a host. Errors
/// never quote it: a URL can carry a key in its query.
fn parse_url(url: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "the URL's scheme is {:?}; use an http:// or https:// URL",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("the URL names no host".into());
    }
    Ok(parsed)
}

/// A header weir can send: a valid name, and a value without line breaks.
/// The value is marked sensitive, so no HTTP library logs it.
fn parse_header(name: &str, value: &str) -> Result<(http::HeaderName, http::HeaderValue), String> {
    let name = http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid HTTP header name"))?;
    let mut value = http::HeaderValue::from_str(value)
        .map_err(|_| "the value has characters an HTTP header cannot carry".to_owned())?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// Reads policy fields, naming the field of any error.
fn policy_spec(
    fields: &serde_json::Map<String, serde_json::Value>,
    at: &str,
    invalid: &impl Fn(String, String) -> ConfigError,
) -> Result<PolicySpec, ConfigError> {
    serde_path_to_error::deserialize(serde_json::Value::Object(fields.clone())).map_err(|e| {
        let path = e.path().to_string();
        let location = if path == "." {
            at.to_owned()
        } else {
            format!("{at}.{path}")
        };
        invalid(location, strip_position(&e.inner().to_string()))
    })
}

/// One alias: `"server/tool"` or `{"tool": "server/tool", "arguments": {…}}`,
/// pointing at a configured server.
fn parse_alias(
    name: &str,
    value: &serde_json::Value,
    servers: &BTreeMap<String, ServerConfig>,
) -> Result<Alias, String> {
    if !valid_server_name(name) {
        return Err("an alias name must be 1-64 letters, digits, '-' or '_'".into());
    }
    let (target, arguments) = match value {
        serde_json::Value::String(target) => (target.as_str(), serde_json::Map::new()),
        serde_json::Value::Object(map) => {
            if let Some(key) = map.keys().find(|k| *k != "tool" && *k != "arguments") {
                return Err(format!(
                    "unknown field `{key}` (expected `tool`, `arguments`)"
                ));
            }
            let target = map
                .get("tool")
                .and_then(serde_json::Value::as_str)
                .ok_or("missing \"tool\": \"server/tool\"")?;
            let arguments = match map.get("arguments") {
                None => serde_json::Map::new(),
                Some(serde_json::Value::Object(args)) => args.clone(),
                Some(_) => return Err("\"arguments\" must be an object".into()),
            };
            (target, arguments)
        }
        _ => {
            return Err(
                "give \"server/tool\", or {\"tool\": \"server/tool\", \"arguments\": {…}}".into(),
            );
        }
    };
    let (server, tool) = target
        .split_once('/')
        .filter(|(s, t)| !s.is_empty() && !t.is_empty())
        .ok_or_else(|| format!("{target:?} is not `server/tool`"))?;
    if !servers.contains_key(server) {
        let known: Vec<&str> = servers.keys().map(String::as_str).collect();
        return Err(format!(
            "alias `{name}` points to server `{server}`, which is not configured (configured: {})",
            known.join(", ")
        ));
    }
    Ok(Alias {
        server: server.to_owned(),
        tool: tool.to_owned(),
        arguments,
    })
}

fn valid_server_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// serde_json appends "at line L column C" to its messages; the location is
/// reported separately, so drop it.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Expands `${VAR}`, `${env:VAR}` (VS Code's spelling) and `${VAR:-default}`,
/// where the default may itself hold references (`${A:-${B}}`, as in a
/// shell); `$$` is a literal `$`. A variable that is unset and has no
/// default is an error: a server started with an empty token fails later,
/// and less clearly.
pub fn expand_vars(input: &str, env: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    expand_nested(input, input, &env, 0)
}

/// How deep defaults may nest: past this it is a mistake, not a config.
const MAX_VAR_NESTING: usize = 8;

fn expand_nested(
    input: &str,
    whole: &str,
    env: &impl Fn(&str) -> Option<String>,
    depth: usize,
) -> Result<String, String> {
    if depth > MAX_VAR_NESTING {
        return Err(format!(
            "defaults nest more than {MAX_VAR_NESTING} deep in {whole:?}"
        ));
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end =
                closing_brace(body).ok_or_else(|| format!("unterminated \"${{\" in {whole:?}"))?;
            let expr = &body[..end];
            let expr = expr.strip_prefix("env:").unwrap_or(expr);
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("\"${{{expr}}}\" is not a valid variable reference"));
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(&expand_nested(d, whole, env, depth + 1)?),
                (None, None) => {
                    return Err(format!("environment variable {name} is not set"));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Where the `}` closing a `${` is in `body` (the text after the `${`),
/// counting the `${ … }` pairs nested inside it.
fn closing_brace(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".into()),
            "HOME" => Some("/home/u".into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_json(Path::new("/etc/weir/weir.json"), text, env)
    }

    fn error_of(text: &str) -> String {
        match parse(text) {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// Variable expansion: every supported spelling, and the failures.
    #[test]
    fn expands_variables() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("plain", Ok("plain")),
            ("${TOKEN}", Ok("s3cret")),
            ("Bearer ${env:TOKEN}!", Ok("Bearer s3cret!")),
            ("${NOPE:-fallback}", Ok("fallback")),
            ("${TOKEN:-fallback}", Ok("s3cret")),
            ("cost $$5 and $x", Ok("cost $5 and $x")),
            ("${HOME}/${TOKEN}", Ok("/home/u/s3cret")),
            ("${NOPE}", Err("environment variable NOPE is not set")),
            ("${TOKEN", Err("unterminated")),
            ("${}", Err("not a valid variable reference")),
            ("${A B}", Err("not a valid variable reference")),
            // Defaults nest, as in a shell; a reference is never left as text.
            ("${X:-${HOME}}", Ok("/home/u")),
            ("${X:-${Y:-deep}}/x", Ok("deep/x")),
            ("${X:-a$$b}", Ok("a$b")),
            ("${X:-${NOPE}}", Err("environment variable NOPE is not set")),
            ("${A${B}}", Err("not a valid variable reference")),
            ("${X:-${HOME}", Err("unterminated")),
            (
                "${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-${A:-x}}}}}}}}}}",
                Err("nest more than"),
            ),
        ];
        for (input, want) in cases {
            let got = expand_vars(input, env);
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(g, w, "input {input:?}"),
                (Err(w), Err(g)) => assert!(g.contains(w), "input {input:?}: {g}"),
                _ => panic!("input {input:?}: want {want:?}, got {got:?}"),
            }
        }
    }

    /// What used to be accepted silently is an error naming its place: a
    /// key given twice, a server named like the embedded one, a URL that
    /// does not parse; the new limits are read and range-checked.
    #[test]
    fn refuses_silent_mistakes() {
        let cases = [
            (
                r#"{"mcpServers": {"a": {"command": "x"}, "a": {"command": "y"}}}"#,
                "the key `a` is given twice",
            ),
            (
                r#"{"mcpServers": {"a": {"command": "x", "env": {"K": "1", "K": "2"}}}}"#,
                "the key `K` is given twice",
            ),
            (
                r#"{"mcpServers": {"builtin": {"command": "x"}}}"#,
                "mcpServers.builtin: `builtin` is the name of weir's embedded server",
            ),
            (
                r#"{"mcpServers": {"a": {"url": "http://[::1"}}}"#,
                "mcpServers.a.url: not a valid URL",
            ),
            (
                r#"{"mcpServers": {"a": {"url": "http://[::1/?key=SECRET"}}}"#,
                "not a valid URL",
            ),
            (
                r#"{"weir": {"plugin_size_limit_mb": 0}}"#,
                "weir.plugin_size_limit_mb: 0 is out of range",
            ),
            (
                r#"{"weir": {"http_max_sessions": 0}}"#,
                "weir.http_max_sessions: 0 is out of range",
            ),
            (
                r#"{"weir": {"http_header_timeout_secs": -1}}"#,
                "weir.http_header_timeout_secs",
            ),
        ];
        for (text, want) in cases {
            let got = error_of(text);
            assert!(got.contains(want), "{text}: {got}");
            assert!(!got.contains("SECRET"), "{text}: {got}");
        }
        let config = parse(
            r#"{"weir": {"plugin_size_limit_mb": 8, "http_max_connections": 10,
                "http_idle_timeout_secs": 5, "http_max_sessions": 3}}"#,
        )
        .unwrap();
        assert_eq!(config.plugin_size_limit, 8 << 20);
        assert_eq!(config.http.max_connections, 10);
        assert_eq!(config.http.max_sessions, 3);
        assert_eq!(config.http.idle_timeout, Duration::from_secs(5));
    }

    /// The format MCP clients already write is accepted as it stands,
    /// including keys weir ignores.
    #[test]
    fn accepts_mcp_servers_format() {
        let config = parse(
            r#"{"mcpServers": {
                "fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "${HOME}"],
                       "env": {"API_TOKEN": "${TOKEN}"}, "autoApprove": [], "cwd": "work"},
                "off": {"command": "x", "disabled": true}
            }}"#,
        )
        .expect("valid config");
        let Transport::Stdio(fs) = &config.servers["fs"].transport else {
            panic!("fs is stdio")
        };
        assert_eq!(fs.command, "npx");
        assert_eq!(fs.args[2], "/home/u");
        assert_eq!(fs.env["API_TOKEN"], "s3cret");
        assert_eq!(fs.cwd.as_deref(), Some(Path::new("/etc/weir/work")));
        assert!(!config.servers.contains_key("off"));
        assert_eq!(
            config.servers[BUILTIN_SERVER],
            ServerConfig::new(Transport::Builtin)
        );
        assert_eq!(config.servers["fs"].pool_size, 1);
        assert_eq!(config.servers["fs"].scope, Scope::Shared);
    }

    /// Every error names the file, the server and the field.
    #[test]
    fn errors_name_file_server_and_field() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"mcpServers": {"gh": {"command": "x", "env": {"T": "${NOPE}"}}}}"#,
                "config file /etc/weir/weir.json: mcpServers.gh.env.T: environment variable NOPE is not set",
            ),
            (
                r#"{"mcpServers": {"gh": {"args": []}}}"#,
                "mcpServers.gh: missing \"command\"",
            ),
            (
                r#"{"mcpServers": {"gh": {"command": "x", "args": "oops"}}}"#,
                "mcpServers.gh.args: invalid type: string \"oops\", expected a sequence",
            ),
            (
                r#"{"mcpServers": {"gh": {"type": "sse", "url": "http://127.0.0.1:1/sse"}}}"#,
                "mcpServers.gh.type: the legacy HTTP+SSE transport is not supported",
            ),
            (
                r#"{"mcpServers": {"gh": {"url": "ftp://x"}}}"#,
                "mcpServers.gh.url: the URL's scheme is \"ftp\"; use an http:// or https:// URL",
            ),
            (
                r#"{"mcpServers": {"gh": {"url": "http://x/mcp", "command": "y"}}}"#,
                "mcpServers.gh: give either \"command\" or \"url\", not both",
            ),
            (
                r#"{"mcpServers": {"gh": {"url": "http://x/mcp", "headers": {"X-Key": "${NOPE}"}}}}"#,
                "mcpServers.gh.headers.X-Key: environment variable NOPE is not set",
            ),
            (
                r#"{"mcpServers": {"gh": {"url": "http://x/mcp", "headers": {"Bad Name": "v"}}}}"#,
                "mcpServers.gh.headers.Bad Name: \"Bad Name\" is not a valid HTTP header name",
            ),
            (
                r#"{"mcpServers": {"a b": {"command": "x"}}}"#,
                "mcpServers.a b: a server name",
            ),
            (
                r#"{"weir": {"memory_limit": 5}}"#,
                "weir.memory_limit: unknown field `memory_limit`, expected one of `builtin`",
            ),
            (
                r#"{"weir": {"deadline_secs": -1}}"#,
                "weir.deadline_secs: -1 is not a positive",
            ),
            (
                r#"{"weir": {"memory_limit_mb": 0}}"#,
                "weir.memory_limit_mb: 0 is out of range",
            ),
            (
                "{\"mcpServers\": {\n  \"a\": }",
                "line 2, column 8: expected value",
            ),
            ("", "line 1, column 0: EOF while parsing a value"),
        ];
        for (text, want) in cases {
            let got = error_of(text);
            assert!(
                got.contains(want),
                "config {text}\n  got:  {got}\n  want: {want}"
            );
            assert!(got.contains("/etc/weir/weir.json"), "{got}");
        }
    }

    /// Remote servers: `url` and `headers`, with variables expanded.
    #[test]
    fn reads_http_servers() {
        let config = parse(
            r#"{"mcpServers": {"remote": {"type": "http", "url": "https://mcp.example/mcp",
                "headers": {"Authorization": "Bearer ${TOKEN}"}}}}"#,
        )
        .expect("valid config");
        assert_eq!(
            config.servers["remote"].transport,
            Transport::Http(HttpServer {
                url: url::Url::parse("https://mcp.example/mcp").expect("url"),
                headers: http::HeaderMap::from_iter([(
                    http::header::AUTHORIZATION,
                    http::HeaderValue::from_static("Bearer s3cret"),
                )]),
            })
        );
        assert!(
            !format!("{:?}", config.servers["remote"]).contains("s3cret"),
            "Debug shows no header value"
        );
    }

    /// Per-server session settings: pool, scope, timeouts, ping.
    #[test]
    fn reads_server_session_settings() {
        let config = parse(
            r#"{"mcpServers": {"mem": {"command": "m", "pool_size": 4, "scope": "plugin",
                "call_timeout_secs": 5, "startup_timeout_secs": 2, "ping_interval_secs": 10,
                "max_sessions": 8}}}"#,
        )
        .expect("valid config");
        let mem = &config.servers["mem"];
        assert_eq!(mem.pool_size, 4);
        assert_eq!(mem.scope, Scope::Plugin);
        assert_eq!(mem.call_timeout, Some(Duration::from_secs(5)));
        assert_eq!(mem.startup_timeout, Some(Duration::from_secs(2)));
        assert_eq!(mem.ping_interval, Some(Duration::from_secs(10)));
        assert_eq!(mem.max_sessions, 8);
        let bad = [
            (
                r#"{"mcpServers": {"m": {"command": "m", "pool_size": 0}}}"#,
                "mcpServers.m.pool_size: 0 is out of range",
            ),
            (
                r#"{"mcpServers": {"m": {"command": "m", "scope": "global"}}}"#,
                "mcpServers.m.scope: unknown variant `global`",
            ),
            (
                r#"{"mcpServers": {"m": {"command": "m", "pool_size": 4, "max_sessions": 2}}}"#,
                "mcpServers.m.max_sessions: 2 is less than pool_size 4",
            ),
            (
                r#"{"mcpServers": {"m": {"command": "m", "ping_interval_secs": 0}}}"#,
                "mcpServers.m.ping_interval_secs: 0 is not a positive",
            ),
            (
                r#"{"weir": {"circuit_threshold": 0}}"#,
                "weir.circuit_threshold: must be at least 1",
            ),
        ];
        for (text, want) in bad {
            let got = error_of(text);
            assert!(got.contains(want), "{text}\n  got:  {got}\n  want: {want}");
        }
    }

    /// Policies: the default grants the built-in server only; the operator
    /// layers a default and per-plugin grants, pins included.
    #[test]
    fn reads_policies() {
        let plain = parse("{}").expect("valid");
        assert!(plain.default_policy.check_tool("builtin", "echo").is_ok());
        assert!(plain.default_policy.check_tool("fs", "read").is_err());

        let config = parse(&format!(
            r#"{{"weir": {{"memory_limit_mb": 32,
                "default_policy": {{"allow": ["time/*"], "max_calls_per_run": 50}},
                "plugins": {{"agent": {{"allow": ["fs/read_*"], "deadline_secs": 5, "sha256": "{}"}}}}}}}}"#,
            "AB".repeat(32)
        ))
        .expect("valid");
        assert!(
            config.default_policy.check_tool("builtin", "echo").is_err(),
            "the operator's list replaces the default"
        );
        assert_eq!(config.default_policy.max_calls_per_run, 50);
        assert_eq!(config.default_policy.memory_bytes, 32 << 20);
        let (agent, pin) = config.grant_for("agent");
        assert!(agent.check_tool("fs", "read_file").is_ok());
        assert_eq!(
            agent.max_calls_per_run, 50,
            "inherited from the default policy"
        );
        assert_eq!(agent.deadline, Duration::from_secs(5));
        assert_eq!(pin, Some("ab".repeat(32).as_str()));
        assert_eq!(config.grant_for("other").0, &config.default_policy);

        let bad = [
            (
                r#"{"weir": {"default_policy": {"allow": ["nope"]}}}"#,
                "weir.default_policy: \"nope\" is not a `server/tool` pattern",
            ),
            (
                r#"{"weir": {"plugins": {"a": {"alow": []}}}}"#,
                "weir.plugins.a.alow: unknown field `alow`",
            ),
            (
                r#"{"weir": {"plugins": {"a": {"sha256": "abc"}}}}"#,
                "weir.plugins.a.sha256: \"abc\" is not 64 hex digits",
            ),
            (
                r#"{"weir": {"plugins": {"a": {"memory_limit_mb": 128}}}}"#,
                "weir.plugins.a.memory_limit_mb: 128 MiB is above the host-wide",
            ),
            (
                r#"{"weir": {"plugins": {"a": {"max_calls_per_run": "many"}}}}"#,
                "weir.plugins.a.max_calls_per_run: invalid type",
            ),
        ];
        for (text, want) in bad {
            let got = error_of(text);
            assert!(got.contains(want), "{text}\n  got:  {got}\n  want: {want}");
        }
    }

    /// weir's own settings land in the limits they name.
    #[test]
    fn reads_weir_settings() {
        let config = parse(
            r#"{"weir": {"builtin": false, "memory_limit_mb": 16, "deadline_secs": 1.5,
                "call_timeout_secs": 3, "plugins_dir": "plugins", "max_concurrent_runs": 8}}"#,
        )
        .expect("valid config");
        assert!(config.servers.is_empty());
        assert_eq!(config.limits.memory_bytes, 16 << 20);
        assert_eq!(config.limits.deadline, Duration::from_millis(1500));
        assert_eq!(config.limits.max_concurrent_runs, 8);
        assert_eq!(config.sessions.call_timeout, Duration::from_secs(3));
        assert_eq!(
            config.plugins_dir.as_deref(),
            Some(Path::new("/etc/weir/plugins"))
        );
    }
}
