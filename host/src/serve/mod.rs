//! `weir serve`: the host as an MCP server. Each plugin is a tool; MCP
//! clients (desktop assistants, IDEs, scripts) call agents, and the agents'
//! own tool calls go through the host's shared upstream sessions — so no
//! number of clients or runs can open more than one session per server.
//!
//! - [`catalog`]: the plugins served, kept in step with their directory.
//! - [`handler`]: the MCP server itself (rmcp `ServerHandler`).
//! - [`asking`]: upstream servers' questions put to the client whose call
//!   it is (a request on its session, or 2026-07-28 `input_required` rounds).
//! - [`clients`]: who to tell when the tool list changes.
//! - [`watch`]: hot reload of the plugins directory.
//! - [`http`]: streamable HTTP, `/metrics`, the DNS-rebinding check.
//! - [`auth`]: `weir.auth` — bearer tokens (static, or JWTs checked against
//!   the issuer's JWKS), the protected-resource metadata, scopes to tools.
//! - [`health`]: `/healthz` and `/readyz`, for probes.
//! - [`connection`]: each HTTP connection bounded (count, header and idle
//!   timeouts).
//! - [`sessions`]: legacy MCP sessions, capped.
//! - [`stdio_wire`]: MCP over stdio, every line bounded and answered.

pub mod asking;
pub mod auth;
pub mod catalog;
pub mod clients;
pub mod code_docs;
pub mod code_tools;
pub mod connection;
pub mod handler;
pub mod health;
pub mod http;
pub mod in_flight;
pub mod passthrough;
pub mod sessions;
pub mod status;
pub mod stdio_wire;
pub mod watch;

use std::net::SocketAddr;
use std::sync::Arc;

use rmcp::ServiceExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::catalog::Catalog;
use self::clients::Clients;
use self::handler::WeirServer;
use self::http::Routes;
use crate::plugins::PluginError;
use crate::runtime::Host;

/// Where MCP clients reach the server.
#[derive(Debug, Clone)]
pub enum Listen {
    /// Over this process's stdin and stdout: one client, which started us.
    Stdio,
    /// Streamable HTTP on this address.
    Http(SocketAddr),
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: Listen,
    /// A separate listener for `/metrics` (for stdio mode; in HTTP mode
    /// metrics are served beside MCP).
    pub metrics: Option<SocketAddr>,
    /// Host names HTTP requests may be addressed to (DNS-rebinding check).
    pub allowed_hosts: Vec<String>,
    /// Code mode: offer `search_tools`, `describe_tools` and
    /// `execute_code` (beside the plugins, if a directory is given).
    pub code_mode: Option<crate::code::CodeMode>,
}

/// Why `weir serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "weir serve needs a plugins directory or code mode: pass --plugins DIR (or set \
         weir.plugins_dir in the config), or --code-mode"
    )]
    NoPluginsDir,
    #[error(transparent)]
    Plugins(#[from] PluginError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the MCP session on stdio failed: {0}")]
    Stdio(String),
    #[error("loading the plugins stopped unexpectedly: {0}")]
    Loading(String),
}

/// Serves until `shutdown` resolves (or, on stdio, the client hangs up),
/// then drains runs in flight and closes every upstream session.
pub async fn serve(
    host: Arc<Host>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let dir = host.config().plugins_dir.clone();
    if dir.is_none() && options.code_mode.is_none() {
        return Err(ServeError::NoPluginsDir);
    }
    let catalog = Arc::new(Catalog::new(host.clone()));
    let first = match &dir {
        Some(_) => {
            let catalog = catalog.clone();
            tokio::task::spawn_blocking(move || catalog.rescan())
                .await
                .map_err(|e| ServeError::Loading(e.to_string()))??
        }
        None => catalog::Changes::default(),
    };
    let clients = Arc::new(Clients::default());
    let stop = CancellationToken::new();
    // Cancelled first on a stop: the listeners close, and the requests
    // being answered get the grace period before `stop` ends the rest.
    let draining = CancellationToken::new();
    let mut in_flight = Vec::new();
    // Without a watcher (say, the system's inotify limit is reached) weir
    // still serves, just without hot reload.
    let watcher = dir.as_ref().and_then(|dir| {
        watch::spawn(dir, catalog.clone(), clients.clone(), stop.clone())
            .map_err(|error| {
                tracing::warn!(%error, dir = %dir.display(), "cannot watch the plugins directory; hot reload is off");
            })
            .ok()
    });
    let code_tools = options
        .code_mode
        .clone()
        .map(|code| Arc::new(code_tools::CodeTools::new(host.clone(), code)));
    let with_code = code_tools.is_some();
    let server = WeirServer::new(host.clone(), catalog.clone(), clients.clone(), code_tools);
    // Passed-through tools are the upstream servers' tools: when one says
    // its list changed, so did ours.
    let relay = host.config().expose_upstream_tools.then(|| {
        tokio::spawn(relay_tool_changes(
            host.sessions().tool_changes(),
            clients.clone(),
            stop.clone(),
        ))
    });

    let mut tasks = Vec::new();
    let mut places = Vec::new();
    if let Some(addr) = options.metrics {
        let listener = bind(addr).await?;
        let local = listener.local_addr().unwrap_or(addr);
        places.push(format!("metrics at http://{local}{}", http::METRICS_PATH));
        let limits = host.config().http.clone();
        let routes = Routes::metrics_only(host.clone(), options.allowed_hosts.clone(), &limits);
        tasks.push(tokio::spawn(connection::serve(
            listener,
            routes,
            draining.clone(),
            limits,
        )));
    }
    // The stdio server waits for its client's `initialize`: it starts
    // after the start line, so the line comes first.
    let stdio_server = match options.listen {
        Listen::Http(addr) => {
            let listener = bind(addr).await?;
            let local = listener.local_addr().unwrap_or(addr);
            places.insert(
                0,
                format!(
                    "MCP at http://{local}{}, metrics at http://{local}{}",
                    http::MCP_PATH,
                    http::METRICS_PATH
                ),
            );
            let routes = Routes::mcp_and_metrics(
                host.clone(),
                server,
                options.allowed_hosts.clone(),
                stop.child_token(),
                &host.config().http,
            );
            let limits = host.config().http.clone();
            in_flight.push(routes.in_flight());
            tasks.push(tokio::spawn(connection::serve(
                listener,
                routes,
                draining.clone(),
                limits,
            )));
            None
        }
        Listen::Stdio => {
            places.insert(0, "MCP on stdio".to_owned());
            Some(server)
        }
    };

    let served: Vec<String> = catalog.snapshot().keys().cloned().collect();
    let servers: Vec<&str> = host.sessions().server_names().collect();
    // One line, whatever the log level: what is served, and where.
    eprintln!(
        "weir serve: {}{} plugin{} ({}){}; servers: {}; {}",
        if with_code { "code mode, " } else { "" },
        served.len(),
        if served.len() == 1 { "" } else { "s" },
        served.join(", "),
        if first.rejected.is_empty() {
            String::new()
        } else {
            format!(", {} rejected (see above)", first.rejected.len())
        },
        servers.join(", "),
        places.join("; ")
    );
    // A dangling alias is an error at start, naming it. Checked beside
    // serving (it starts the servers aliases point to, which may take a
    // while); the sessions it opens are the ones calls will use.
    let alias_check = (!host.config().aliases.is_empty()).then(|| {
        let host = host.clone();
        tokio::spawn(async move {
            let caller = crate::gateway::Caller::new("weir-serve");
            for (_, why) in host.sessions().dangling_aliases(&caller).await {
                tracing::error!("{why}");
                eprintln!("weir serve: error: {why}");
            }
        })
    });
    let stdio = match stdio_server {
        Some(server) => Some(
            server
                .serve({
                    let (reader, writer) = crate::stdio::stdio();
                    stdio_wire::StdioWire::new(reader, writer)
                })
                .await
                .map_err(|e| ServeError::Stdio(e.to_string()))?,
        ),
        None => None,
    };

    match stdio {
        Some(running) => {
            tokio::select! {
                quit = running.waiting() => tracing::info!(?quit, "the stdio client hung up"),
                () = shutdown => {}
            }
        }
        None => shutdown.await,
    }
    draining.cancel();
    let grace = host.config().sessions.shutdown_grace;
    for requests in &in_flight {
        let waiting = requests.count();
        if waiting > 0 {
            tracing::info!(
                waiting,
                "stopping: no new requests; waiting for those in flight"
            );
        }
        let unanswered = requests.settle(grace).await;
        if unanswered > 0 {
            tracing::warn!(
                requests = unanswered,
                grace_secs = grace.as_secs_f64(),
                "requests still unanswered after the grace period; ending them"
            );
        }
    }
    stop.cancel();
    // Still waiting on a slow server? Not worth delaying the stop for.
    if let Some(check) = alias_check {
        check.abort();
    }
    if let Some(watcher) = watcher {
        let _ = watcher.await;
    }
    if let Some(relay) = relay {
        let _ = relay.await;
    }
    for task in tasks {
        let _ = task.await;
    }
    let unfinished = host.drain(host.config().sessions.shutdown_grace).await;
    tracing::info!(unfinished, "weir serve stopped");
    Ok(())
}

/// Tells `clients` their tool list changed whenever an upstream server
/// says its own did, until `stop`. A burst of notifications is told once
/// per turn, not once each.
async fn relay_tool_changes(
    mut changes: tokio::sync::watch::Receiver<u64>,
    clients: Arc<Clients>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            () = stop.cancelled() => return,
        }
        changes.mark_unchanged();
        let told = clients.tool_list_changed().await;
        tracing::info!(
            clients = told,
            "an upstream server's tools changed; clients told"
        );
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}
