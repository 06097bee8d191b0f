//! `weir doctor`: is everything the config names usable, and if not, what
//! to do about it. Every server is started and asked `initialize`,
//! `tools/list` and `ping`; every plugin is loaded and its policy read
//! against the servers that exist.

use std::time::{Duration, Instant};

use futures::future::join_all;
use serde::Serialize;

use weir_host::gateway::Caller;
use weir_host::plugins::PluginError;
use weir_host::runtime::Host;

/// What doctor found for one server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerCheck {
    pub name: String,
    /// How weir reaches it: the command line, or the URL.
    pub target: String,
    pub ok: bool,
    /// Start, `initialize` and `tools/list`, in milliseconds.
    pub start_ms: Option<f64>,
    pub protocol: Option<String>,
    pub tools: Option<usize>,
    /// One `ping` round trip, in milliseconds.
    pub ping_ms: Option<f64>,
    pub error: Option<String>,
    /// What to do about the error.
    pub next_step: Option<String>,
}

/// What doctor found for one plugin.
#[derive(Debug, Clone, Serialize)]
pub struct PluginCheck {
    pub name: String,
    pub ok: bool,
    /// What it may call, when it loaded.
    pub may_call: Vec<String>,
    /// Things that work but look wrong (a grant for a server that does not
    /// exist).
    pub warnings: Vec<String>,
    pub error: Option<String>,
    pub next_step: Option<String>,
}

/// What doctor found for one alias.
#[derive(Debug, Clone, Serialize)]
pub struct AliasCheck {
    pub name: String,
    /// `server/tool`.
    pub target: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// What doctor found of the fleet's Redis (`weir.redis`).
#[derive(Debug, Clone, Serialize)]
pub struct RedisCheck {
    /// The URL, password masked.
    pub target: String,
    pub ok: bool,
    /// One `PING` round trip, in milliseconds.
    pub ping_ms: Option<f64>,
    pub error: Option<String>,
}

/// Everything doctor found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The fleet's Redis, where one is configured.
    pub redis: Option<RedisCheck>,
    pub servers: Vec<ServerCheck>,
    pub plugins: Vec<PluginCheck>,
    pub aliases: Vec<AliasCheck>,
    /// Why plugins were not checked at all (no plugins directory), if so.
    pub plugins_note: Option<String>,
}

impl Report {
    /// Whether everything checked is usable.
    pub fn ok(&self) -> bool {
        self.redis.as_ref().is_none_or(|r| r.ok)
            && self.servers.iter().all(|s| s.ok)
            && self.plugins.iter().all(|p| p.ok)
            && self.aliases.iter().all(|a| a.ok)
    }
}

/// Checks every server (all at once) and every plugin.
pub async fn check(host: &Host) -> Report {
    let sessions = host.sessions();
    let caller = Caller::new("weir-doctor");
    let servers = join_all(sessions.server_names().map(|name| {
        let caller = &caller;
        async move {
            let target = describe_target(host, name);
            let started = Instant::now();
            let tools = sessions.server_tools(caller, name).await;
            let start_ms = ms(started.elapsed());
            match tools {
                Err(error) => {
                    let error = error.to_string();
                    ServerCheck {
                        name: name.to_owned(),
                        next_step: Some(next_step_for_server(&error, host, name)),
                        target,
                        ok: false,
                        start_ms: None,
                        protocol: None,
                        tools: None,
                        ping_ms: None,
                        error: Some(error),
                    }
                }
                Ok(tools) => {
                    let ping = sessions.ping(caller, name).await;
                    let protocol = sessions
                        .stats()
                        .into_iter()
                        .find(|s| s.name == name)
                        .and_then(|s| s.protocol);
                    let (ping_ms, error) = match ping {
                        Ok(rtt) => (Some(ms(rtt)), None),
                        Err(e) => (None, Some(format!("ping failed: {e}"))),
                    };
                    ServerCheck {
                        name: name.to_owned(),
                        target,
                        ok: error.is_none(),
                        start_ms: Some(start_ms),
                        protocol,
                        tools: Some(tools.len()),
                        ping_ms,
                        next_step: error.as_ref().map(|_| {
                            "the server initialized but does not answer `ping`: \
                             update it, or leave ping_interval_secs unset for it"
                                .to_owned()
                        }),
                        error,
                    }
                }
            }
        }
    }))
    .await;

    let (plugins, plugins_note) = match host.load_all() {
        Ok(loaded) => {
            let mut checks = Vec::new();
            for (name, plugin) in loaded {
                // Loaded is not enough: it must instantiate under its limits.
                let instantiated = match &plugin {
                    Ok(p) => host.instantiate_only(p).await.err(),
                    Err(_) => None,
                };
                let mut check = plugin_check(host, name, plugin);
                if let Some(error) = instantiated {
                    check.ok = false;
                    check.next_step = Some(match error {
                        weir_host::sandbox::RunError::MemoryLimit(_) => format!(
                            "raise its memory limit (weir.plugins.{}.memory_limit_mb)",
                            check.name
                        ),
                        _ => "rebuild it; if it persists, report the error".into(),
                    });
                    check.error = Some(format!("cannot be instantiated: {error}"));
                }
                checks.push(check);
            }
            (checks, None)
        }
        Err(PluginError::NoDirectory(_)) => (
            Vec::new(),
            Some("no plugins directory (pass --plugins DIR, or set weir.plugins_dir)".to_owned()),
        ),
        Err(e) => (
            vec![PluginCheck {
                name: "*".into(),
                ok: false,
                may_call: Vec::new(),
                warnings: Vec::new(),
                next_step: Some("check the path and its permissions".into()),
                error: Some(e.to_string()),
            }],
            None,
        ),
    };
    let dangling = sessions.dangling_aliases(&caller).await;
    let aliases = host
        .config()
        .aliases
        .iter()
        .map(|(name, alias)| {
            let error = dangling
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, why)| why.clone());
            AliasCheck {
                name: name.clone(),
                target: format!("{}/{}", alias.server, alias.tool),
                ok: error.is_none(),
                error,
            }
        })
        .collect();
    let redis = host.fleet().ping().await.map(|answer| RedisCheck {
        target: host.fleet().shown().unwrap_or("redis").to_owned(),
        ok: answer.is_ok(),
        ping_ms: answer.as_ref().ok().map(|rtt| ms(*rtt)),
        error: answer.err(),
    });
    Report {
        redis,
        servers,
        plugins,
        aliases,
        plugins_note,
    }
}

fn plugin_check(
    host: &Host,
    name: String,
    plugin: Result<weir_host::sandbox::Plugin, PluginError>,
) -> PluginCheck {
    match plugin {
        Ok(plugin) => {
            let servers: Vec<&str> = host.sessions().server_names().collect();
            let may_call: Vec<String> = plugin
                .policy()
                .allow
                .iter()
                .map(ToString::to_string)
                .collect();
            let warnings = may_call
                .iter()
                .filter_map(|pattern| {
                    let server = pattern.split('/').next().unwrap_or("");
                    let known = servers.iter().any(|s| match server.strip_suffix('*') {
                        Some(prefix) => s.starts_with(prefix),
                        None => *s == server,
                    });
                    (!known).then(|| {
                        format!("allows `{pattern}`, but no configured server matches `{server}`")
                    })
                })
                .collect();
            PluginCheck {
                name,
                ok: true,
                may_call,
                warnings,
                error: None,
                next_step: None,
            }
        }
        Err(error) => PluginCheck {
            next_step: Some(next_step_for_plugin(&error)),
            name,
            ok: false,
            may_call: Vec::new(),
            warnings: Vec::new(),
            error: Some(error.to_string()),
        },
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

fn describe_target(host: &Host, name: &str) -> String {
    host.config()
        .servers
        .get(name)
        .map(|s| s.transport.shown())
        .unwrap_or_default()
}

/// One clear next step for a server that failed, from what failed.
fn next_step_for_server(error: &str, host: &Host, name: &str) -> String {
    let field = format!("mcpServers.{name}");
    let source = host
        .config()
        .source
        .as_ref()
        .map_or_else(|| "the config".to_owned(), |p| p.display().to_string());
    // A server that wants a sign-in says so in weir's own words.
    if error.contains("weir auth login") {
        format!("sign in: `weir auth login {name}` (the server asks for OAuth)")
    } else if error.contains("refusing to use OAuth tokens") {
        "the token file is readable by others: chmod it as the error says, or          `weir auth logout` and sign in again"
            .into()
    // A connection that failed is said first: its words ("connection
    // refused") must not be read as another failure's.
    } else if error.contains("cannot connect to")
        || error.contains("error sending request")
        || error.contains("connect")
        || error.contains("Connection refused")
    {
        format!(
            "nothing answers at {field}.url: is the server running, and is the URL its MCP endpoint?"
        )
    } else if error.contains("not found on PATH") {
        format!("install the command, or give its full path in {field}.command ({source})")
    } else if error.contains("not found") {
        format!("fix the path in {field}.command ({source})")
    } else if error.contains("permission denied") {
        "make the command executable (chmod +x)".into()
    } else if error.contains("no answer to initialize") {
        format!(
            "the process started but never answered `initialize`: check that {field}.args \
             start it as an MCP server on stdio, or raise startup_timeout_secs if it is just slow"
        )
    } else if error.contains("initialize failed") {
        "the server answered, but not as an MCP server should: run it by hand and read its \
         stderr (weir -v shows it)"
            .into()
    } else {
        "run `weir -v doctor` to see the server's stderr".into()
    }
}

fn next_step_for_plugin(error: &PluginError) -> String {
    use weir_host::sandbox::LoadError;
    match error {
        PluginError::Load(LoadError::CoreModule(_)) => {
            "rebuild it for the wasm32-wasip2 target (cargo build --target wasm32-wasip2)".into()
        }
        PluginError::Load(LoadError::WrongWorld(..)) => {
            "rebuild it against weir's WIT (the weir-guest crate) — it targets another world".into()
        }
        PluginError::Load(LoadError::NotWasm(_) | LoadError::Invalid(..)) => {
            "the file is not a valid component: rebuild it, or remove it".into()
        }
        PluginError::Integrity { .. } => {
            "the file changed since it was pinned: check where it came from, then update \
             weir.plugins.NAME.sha256"
                .into()
        }
        PluginError::Manifest { .. } => "fix the manifest (NAME.toml) beside the plugin".into(),
        PluginError::Collision { .. } => "rename one of the two files".into(),
        _ => "check the file and its permissions".into(),
    }
}

/// The report as a table, for a terminal.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    if let Some(redis) = &report.redis {
        out.push_str("Shared state (weir.redis)\n");
        table(
            &mut out,
            ["redis", "status", "ping"],
            &[[
                redis.target.clone(),
                if redis.ok { "ok".into() } else { "FAIL".into() },
                redis.ping_ms.map_or("-".into(), |v| format!("{v:.2} ms")),
            ]],
        );
        if let Some(error) = &redis.error {
            out.push_str(&format!(
                "  ✗ {}: {error}\n    → start Redis there, or fix weir.redis; until it answers, each replica \
                 keeps its own rate limits, circuits and sessions, and the built-in kv refuses calls\n",
                redis.target
            ));
        }
        out.push('\n');
    }
    out.push_str("Servers\n");
    let rows: Vec<[String; 7]> = report
        .servers
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                if s.ok { "ok".into() } else { "FAIL".into() },
                s.start_ms.map_or("-".into(), |v| format!("{v:.0} ms")),
                s.protocol.clone().unwrap_or_else(|| "-".into()),
                s.tools.map_or("-".into(), |v| v.to_string()),
                s.ping_ms.map_or("-".into(), |v| format!("{v:.2} ms")),
                s.target.clone(),
            ]
        })
        .collect();
    table(
        &mut out,
        [
            "server",
            "status",
            "start",
            "protocol",
            "tools",
            "ping",
            "command / url",
        ],
        &rows,
    );
    for s in report.servers.iter().filter(|s| !s.ok) {
        out.push_str(&format!(
            "  ✗ {}: {}\n    → {}\n",
            s.name,
            s.error.as_deref().unwrap_or("failed"),
            s.next_step.as_deref().unwrap_or("")
        ));
    }
    out.push_str("\nPlugins\n");
    if let Some(note) = &report.plugins_note {
        out.push_str(&format!("  {note}\n"));
    }
    let rows: Vec<[String; 3]> = report
        .plugins
        .iter()
        .map(|p| {
            [
                p.name.clone(),
                if p.ok { "ok".into() } else { "FAIL".into() },
                if p.ok {
                    if p.may_call.is_empty() {
                        "may call nothing".into()
                    } else {
                        format!("may call {}", p.may_call.join(", "))
                    }
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    if !rows.is_empty() {
        table(&mut out, ["plugin", "status", "policy"], &rows);
    }
    for p in &report.plugins {
        for w in &p.warnings {
            out.push_str(&format!("  ! {}: {w}\n", p.name));
        }
        if let Some(error) = &p.error {
            out.push_str(&format!(
                "  ✗ {}: {error}\n    → {}\n",
                p.name,
                p.next_step.as_deref().unwrap_or("")
            ));
        }
    }
    if !report.aliases.is_empty() {
        out.push_str("\nAliases\n");
        let rows: Vec<[String; 3]> = report
            .aliases
            .iter()
            .map(|a| {
                [
                    a.name.clone(),
                    if a.ok { "ok".into() } else { "FAIL".into() },
                    a.target.clone(),
                ]
            })
            .collect();
        table(&mut out, ["alias", "status", "stands for"], &rows);
        for a in report.aliases.iter().filter(|a| !a.ok) {
            out.push_str(&format!(
                "  ✗ {}: {}\n    → point weir.aliases.{} at a tool the server has (weir list shows them)\n",
                a.name,
                a.error.as_deref().unwrap_or("failed"),
                a.name
            ));
        }
    }
    out.push_str(if report.ok() {
        "\nAll good.\n"
    } else {
        "\nSome checks failed (see → for what to do).\n"
    });
    out
}

/// Left-aligned columns, two spaces apart, indented by two.
pub(crate) fn table<const N: usize>(out: &mut String, header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::from(" ");
        for (cell, w) in cells.iter().zip(widths) {
            s.push(' ');
            s.push_str(cell);
            s.push_str(&" ".repeat(w.saturating_sub(cell.chars().count()) + 1));
        }
        s.trim_end().to_owned() + "\n"
    };
    out.push_str(&line(header.to_vec()));
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
}
