//! The configuration file: the `mcpServers` JSON that MCP clients already
//! use, plus weir's own `weir` section.
//!
//! Parse, then validate: [`RawConfig`] mirrors the file as serde sees it;
//! [`Config::from_json`] turns it into a checked [`Config`] whose every error
//! names the file, the server and the field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::policy::{Policy, ToolPattern};
pub use oauth::{Grant, OAuthSettings, PrivateKey};

mod auth;
mod expand;
mod grants;
mod oauth;
mod raw;
mod servers;
mod settings;

pub use auth::{ServeAuth, TokenCheck};
pub use expand::expand_vars;

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
    /// How passed-through tools are named (`weir.upstream_tool_names`).
    pub upstream_tool_names: UpstreamToolNames,
    /// Logical tool names plugins call as `alias/NAME`, each standing for a
    /// server's tool: moving a capability to another server is a config
    /// change, not a plugin rebuild.
    pub aliases: BTreeMap<String, Alias>,
    /// Largest plugin file weir reads (`weir.plugin_size_limit_mb`).
    pub plugin_size_limit: u64,
    /// Bounds on the clients of `weir serve --http`.
    pub http: HttpLimits,
    /// `weir.code_mode.enabled`: `weir serve` offers code mode's tools
    /// without `--code-mode`. Its runs' policy is the grant of
    /// [`CODE_MODE_CALLER`] (`weir.code_mode`'s policy fields).
    pub code_mode: bool,
    /// Who may use `weir serve --http` (`weir.auth`); `None`: anyone who
    /// can reach it.
    pub serve_auth: Option<ServeAuth>,
    /// This process's name in a fleet (`weir.replica`, e.g.
    /// `"${POD_NAME}"`): the `replica` label on every metric.
    pub replica: Option<String>,
    /// The Redis the replicas of a fleet share state through (`weir.redis`,
    /// `redis://[user:password@]host[:port][/db]` or `unix:///path`):
    /// `calls_per_second`, circuits, the built-in kv, legacy sessions.
    /// `None`: every replica keeps its own, in memory.
    pub redis: Option<String>,
}

/// How `weir serve` names the upstream tools it passes through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamToolNames {
    /// `server.tool`: never ambiguous, whatever the servers list.
    #[default]
    Prefixed,
    /// The tool's own name, where only one server has it and no plugin or
    /// code-mode tool is called that; `server.tool` otherwise. For a
    /// gateway in front of servers whose clients expect their names.
    Bare,
}

/// The caller name of code-mode scripts: their grant, audit events and
/// metrics go by it, like a plugin's.
pub const CODE_MODE_CALLER: &str = "code-mode";

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

use crate::gateway::Alias;

/// What the operator set for one plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginGrant {
    pub policy: Policy,
    /// The plugin file's expected sha256 (hex); a mismatch refuses it.
    pub sha256: Option<String>,
}

impl Config {
    /// `weir serve`: servers whose entry does not say what to answer
    /// their requests for input get [`Elicitation::Forward`] — its
    /// clients are people's MCP clients, who can be asked.
    pub fn forward_elicitation_by_default(&mut self) {
        for server in self.servers.values_mut() {
            server.elicitation.get_or_insert(Elicitation::Forward);
        }
    }

    /// Grants `allow` too, to every plugin, for this process only: what
    /// `weir run --allow` adds to a one-off run without editing a config.
    pub fn allow_also(&mut self, allow: &[ToolPattern]) {
        for policy in self.policies_mut() {
            policy.allow.extend(allow.iter().cloned());
        }
    }

    /// Grants exactly `allow` to every plugin: a replay runs under the
    /// grants its recording was made under, whatever this config says.
    pub fn allow_only(&mut self, allow: &[ToolPattern]) {
        for policy in self.policies_mut() {
            policy.allow = allow.to_vec();
        }
    }

    /// Every policy a plugin can run under: the default and each named one.
    fn policies_mut(&mut self) -> impl Iterator<Item = &mut Policy> {
        std::iter::once(&mut self.default_policy)
            .chain(self.plugins.values_mut().map(|g| &mut g.policy))
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
    /// Which MCP revision to speak with the server (`"protocol"`).
    pub protocol: Protocol,
    /// What weir answers when the server asks for input (`"elicitation"`);
    /// `None`: not said, which is [`Elicitation::Forward`] under
    /// `weir serve` (see [`Config::forward_elicitation_by_default`]) and
    /// [`Elicitation::Decline`] elsewhere, where no one can be asked.
    pub elicitation: Option<Elicitation>,
}

/// What weir answers a server's request for input (`elicitation/create`,
/// or a question in an `input_required` result). Never a made-up value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Elicitation {
    /// Decline every request: the server goes on without the input.
    #[default]
    Decline,
    /// Accept with the schema's defaults when every requested field has
    /// one (SEP-1034); decline otherwise.
    Defaults,
    /// Ask the person at the MCP client whose call it is — a `weir serve`
    /// client that declared elicitation — and relay their answer; decline
    /// where there is no one to ask (`weir run`, a client without it).
    Forward,
}

impl Elicitation {
    /// Reads a config value.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "decline" => Ok(Self::Decline),
            "defaults" => Ok(Self::Defaults),
            "forward" => Ok(Self::Forward),
            other => Err(format!(
                "unknown value \"{other}\"; use \"forward\", \"decline\" or \"defaults\""
            )),
        }
    }
}

/// Which MCP revision weir speaks with a server. Most servers are best
/// left to [`Protocol::Auto`]; a pinned revision is for a server that
/// misbehaves when probed, or for testing one revision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Protocol {
    /// Ask first (`server/discover`, the 2026-07-28 lifecycle); a server
    /// that does not know it gets `initialize` with the newest revision
    /// that has one. What the server settled on is remembered for it.
    #[default]
    Auto,
    /// Speak this revision only: `initialize` for revisions that have it,
    /// `server/discover` for those that do not.
    Revision(rmcp::model::ProtocolVersion),
}

impl Protocol {
    /// Reads a config value: `"auto"` or a revision weir knows.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "auto" {
            return Ok(Self::Auto);
        }
        rmcp::model::ProtocolVersion::KNOWN_VERSIONS
            .iter()
            .find(|v| v.as_str() == text)
            .map(|v| Self::Revision(v.clone()))
            .ok_or_else(|| {
                let known: Vec<&str> = rmcp::model::ProtocolVersion::KNOWN_VERSIONS
                    .iter()
                    .rev()
                    .map(|v| v.as_str())
                    .collect();
                format!(
                    "unknown MCP revision \"{text}\"; use \"auto\" or one of {}",
                    known.join(", ")
                )
            })
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => f.write_str("auto"),
            Self::Revision(v) => f.write_str(v.as_str()),
        }
    }
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
            protocol: Protocol::Auto,
            elicitation: None,
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
    /// How weir authorizes when the server asks for OAuth (`"oauth"`);
    /// unused when `headers` carry an `Authorization` of their own.
    pub oauth: Box<OAuthSettings>,
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
            .field("oauth", &self.oauth)
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
            upstream_tool_names: UpstreamToolNames::Prefixed,
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
            code_mode: false,
            serve_auth: None,
            replica: None,
            redis: None,
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
    /// Parse, then validate: the raw file, then each concern in its own
    /// reader — servers, host settings, grants — under one error context.
    pub fn from_json(
        path: &Path,
        text: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let ctx = Ctx {
            path,
            base: path.parent().unwrap_or(Path::new(".")),
            env: &env,
        };
        let raw = raw::parse(text, &ctx)?;
        let builtin = raw.weir.builtin.unwrap_or(true);
        let expose_upstream_tools = raw.weir.expose_upstream_tools.unwrap_or(false);
        let settings = settings::read(&raw.weir, &ctx)?;
        let servers = servers::read(raw.mcp_servers, builtin, &ctx)?;
        let grants = grants::read(&raw.weir, &servers, &settings.limits, builtin, &ctx)?;
        let serve_auth = auth::read(raw.weir.auth, &ctx)?;
        let replica = match &raw.weir.replica {
            Some(name) => {
                let name = ctx.expand("weir.replica".into(), name)?;
                if name.is_empty() || name.contains(['"', '\\', '\n']) {
                    return Err(ctx.invalid(
                        "weir.replica".into(),
                        format!("`{name}` is not a usable replica name"),
                    ));
                }
                Some(name)
            }
            None => None,
        };
        let redis = match &raw.weir.redis {
            Some(url) => Some(redis_url(&ctx, url)?),
            None => None,
        };
        Ok(Self {
            source: Some(path.to_owned()),
            servers,
            plugins_dir: settings.plugins_dir,
            limits: settings.limits,
            sessions: settings.sessions,
            default_policy: grants.default_policy,
            plugins: grants.plugins,
            cache_dir: settings.cache_dir,
            scratch_root: settings.scratch_root,
            expose_upstream_tools,
            upstream_tool_names: raw.weir.upstream_tool_names.unwrap_or_default(),
            aliases: grants.aliases,
            plugin_size_limit: settings.plugin_size_limit,
            http: settings.http,
            code_mode: grants.code_mode,
            serve_auth,
            replica,
            redis,
        })
    }
}

/// `weir.redis`, `${VAR}`s expanded, checked for a scheme weir's Redis
/// client speaks; its password is a secret from here on.
fn redis_url(ctx: &Ctx<'_>, url: &str) -> Result<String, ConfigError> {
    let field = || "weir.redis".to_owned();
    let url = ctx.expand_secret(field(), url)?;
    let parsed =
        url::Url::parse(&url).map_err(|e| ctx.invalid(field(), format!("not a valid URL: {e}")))?;
    match parsed.scheme() {
        "redis" | "unix" | "redis+unix" => {}
        "rediss" => {
            return Err(ctx.invalid(
                field(),
                "rediss:// (TLS) is not built into weir; reach Redis over a private network or a unix socket".into(),
            ));
        }
        other => {
            return Err(ctx.invalid(
                field(),
                format!("`{other}://` is not a Redis URL (redis://host:port or unix:///path)"),
            ));
        }
    }
    crate::redact::register_url(&parsed);
    Ok(url)
}

/// Where a config is being read — its file (which every error names), its
/// directory (relative paths resolve against it) and the environment its
/// `${VAR}`s come from: the one context every reader reports through.
pub(crate) struct Ctx<'a> {
    path: &'a Path,
    base: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Ctx<'_> {
    /// The error for the value at `location`.
    fn invalid(&self, location: String, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            location,
            message,
        }
    }

    /// `value` with its `${VAR}`s expanded.
    fn expand_plain(&self, value: &str) -> Result<String, String> {
        expand_vars(value, self.env)
    }

    /// [`Ctx::expand_plain`], the error naming `field`.
    fn expand(&self, field: String, value: &str) -> Result<String, ConfigError> {
        self.expand_plain(value)
            .map_err(|message| self.invalid(field, message))
    }

    /// [`Ctx::expand`] for a value that may carry a secret: every
    /// `${VAR}`'s value is registered with [`crate::redact`], so that
    /// nothing weir prints shows it.
    fn expand_secret(&self, field: String, value: &str) -> Result<String, ConfigError> {
        let env = |name: &str| {
            let value = (self.env)(name);
            if let Some(v) = &value {
                crate::redact::register(v);
            }
            value
        };
        expand_vars(value, env).map_err(|message| self.invalid(field, message))
    }
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
                oauth: Box::default(),
            })
        );
        assert!(
            !format!("{:?}", config.servers["remote"]).contains("s3cret"),
            "Debug shows no header value"
        );
    }

    /// A remote server's `"oauth"`: secrets expanded and hidden, bad
    /// combinations named.
    #[test]
    fn reads_oauth_settings() {
        let config = parse(
            r#"{"mcpServers": {"remote": {"url": "https://mcp.example/mcp",
                "oauth": {"client_id": "weir", "client_secret": "${TOKEN}",
                          "scopes": ["read", "write"], "redirect_port": 33418,
                          "client_metadata_url": "https://weir.example/client.json"}}}}"#,
        )
        .expect("valid config");
        let Transport::Http(http) = &config.servers["remote"].transport else {
            panic!("an HTTP server");
        };
        assert_eq!(http.oauth.client_id.as_deref(), Some("weir"));
        assert_eq!(http.oauth.client_secret.as_deref(), Some("s3cret"));
        assert_eq!(http.oauth.scopes, ["read", "write"]);
        assert_eq!(http.oauth.redirect_port, Some(33418));
        assert_eq!(http.oauth.grant, Grant::AuthorizationCode);
        assert!(!format!("{:?}", config.servers["remote"]).contains("s3cret"));

        for (oauth, expected) in [
            (r#"{"client_secret": "x"}"#, "give its \"client_id\" too"),
            (
                r#"{"grant": "client_credentials"}"#,
                "needs the registered \"client_id\"",
            ),
            (
                r#"{"client_id": "a", "grant": "client_credentials"}"#,
                "needs \"client_secret\"",
            ),
            (r#"{"grant": "implicit"}"#, "unknown grant \"implicit\""),
            (
                r#"{"client_metadata_url": "http://a.example/c.json"}"#,
                "not an https URL",
            ),
            (r#"{"scopes": ["a b"]}"#, "not a scope"),
            (
                r#"{"client_id": "a", "grant": "client_credentials", "private_key_file": "/nonexistent/k.pem"}"#,
                "cannot read /nonexistent/k.pem",
            ),
            (r#"{"colour": "red"}"#, "unknown field `colour`"),
        ] {
            let text = format!(
                r#"{{"mcpServers": {{"remote": {{"url": "https://mcp.example/mcp", "oauth": {oauth}}}}}}}"#
            );
            let error = error_of(&text);
            assert!(error.contains(expected), "{oauth}: {error}");
        }
        let stdio = error_of(r#"{"mcpServers": {"local": {"command": "x", "oauth": {}}}}"#);
        assert!(stdio.contains("mcpServers.local.oauth"), "{stdio}");
    }

    /// `weir.redis`: a Redis URL, its password a secret; TLS and other
    /// schemes refused saying why.
    #[test]
    fn reads_the_fleets_redis() {
        let config = parse(r#"{"weir": {"redis": "redis://:${TOKEN}@127.0.0.1:6379/2"}}"#)
            .expect("valid config");
        assert_eq!(
            config.redis.as_deref(),
            Some("redis://:s3cret@127.0.0.1:6379/2")
        );
        assert!(!crate::redact::scrub("auth s3cret").contains("s3cret"));
        assert_eq!(parse("{}").expect("valid").redis, None);
        for (url, expected) in [
            ("rediss://r.example:6380", "TLS) is not built into weir"),
            ("http://127.0.0.1:6379", "`http://` is not a Redis URL"),
            ("127.0.0.1:6379", "not a valid URL"),
            ("redis://${NOPE}", "NOPE"),
        ] {
            let error = error_of(&format!(r#"{{"weir": {{"redis": "{url}"}}}}"#));
            assert!(
                error.contains("weir.redis") && error.contains(expected),
                "{url}: {error}"
            );
        }
    }

    /// Per-server session settings: pool, scope, timeouts, ping.
    #[test]
    fn reads_serve_auth() {
        let jwt = parse(
            r#"{"weir": {"auth": {"resource": "https://weir.example/mcp",
                "issuer": "https://login.example", "jwks_url": "https://login.example/jwks",
                "scopes": {"read": ["hello"]}}}}"#,
        )
        .expect("valid");
        let auth = jwt.serve_auth.expect("auth");
        assert_eq!(auth.resource(), Some("https://weir.example/mcp"));
        assert_eq!(auth.scopes_supported(), ["read"]);
        assert!(!auth.protect_status);
        let tokens =
            parse(r#"{"weir": {"auth": {"tokens": ["${TOKEN}-and-more-chars"]}}}"#).expect("valid");
        assert_eq!(
            tokens.serve_auth.map(|a| a.check),
            Some(TokenCheck::Static(vec!["s3cret-and-more-chars".into()]))
        );
        assert!(parse("{}").expect("valid").serve_auth.is_none());
        for (text, want) in [
            (r#"{"weir": {"auth": {}}}"#, "say how tokens are checked"),
            (
                r#"{"weir": {"auth": {"tokens": ["short"]}}}"#,
                "too easy to guess",
            ),
            (
                r#"{"weir": {"auth": {"issuer": "https://i", "jwks_url": "https://i/k"}}}"#,
                "weir.auth.resource: JWTs need the resource URI",
            ),
            (
                r#"{"weir": {"auth": {"tokens": ["0123456789abcdefgh"], "issuer": "https://i"}}}"#,
                "not both",
            ),
            (
                r#"{"weir": {"auth": {"token": "x"}}}"#,
                "unknown field `token`",
            ),
        ] {
            let error = error_of(text);
            assert!(error.contains(want), "{text}: {error}");
        }
    }

    #[test]
    fn reads_server_session_settings() {
        let config = parse(
            r#"{"mcpServers": {"mem": {"command": "m", "pool_size": 4, "scope": "plugin",
                "call_timeout_secs": 5, "startup_timeout_secs": 2, "ping_interval_secs": 10,
                "max_sessions": 8}, "old": {"command": "o", "protocol": "2025-06-18",
                "elicitation": "defaults"}}}"#,
        )
        .expect("valid config");
        assert_eq!(
            config.servers["old"].protocol,
            Protocol::Revision(rmcp::model::ProtocolVersion::V_2025_06_18)
        );
        assert_eq!(
            config.servers["old"].elicitation,
            Some(Elicitation::Defaults)
        );
        assert_eq!(config.servers["mem"].elicitation, None);
        let mem = &config.servers["mem"];
        assert_eq!(mem.pool_size, 4);
        assert_eq!(mem.scope, Scope::Plugin);
        assert_eq!(mem.call_timeout, Some(Duration::from_secs(5)));
        assert_eq!(mem.startup_timeout, Some(Duration::from_secs(2)));
        assert_eq!(mem.ping_interval, Some(Duration::from_secs(10)));
        assert_eq!(mem.protocol, Protocol::Auto);
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
                r#"{"mcpServers": {"m": {"command": "m", "elicitation": "ask"}}}"#,
                "mcpServers.m.elicitation: unknown value \"ask\"; use \"forward\", \"decline\" or \"defaults\"",
            ),
            (
                r#"{"mcpServers": {"m": {"command": "m", "protocol": "2025-13-01"}}}"#,
                "mcpServers.m.protocol: unknown MCP revision \"2025-13-01\"; use \"auto\" or one of 2026-07-28, 2025-11-25, 2025-06-18, 2025-03-26, 2024-11-05",
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
