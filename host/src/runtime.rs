//! The host: sessions and sandbox under one owner, and the rules of a run
//! (a concurrency permit, the shutdown signal).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::fleet::Fleet;
use crate::gate::{Gate, Rules};
use crate::gateway::ToolGateway;
use crate::metrics::{Metrics, ServerNow};
use crate::plugins::{self, PluginError, PluginFile};
use crate::sandbox::{Captured, Plugin, RunError, Sandbox};
use crate::session::Sessions;

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    #[error("cannot find weir's own executable (needed for the built-in server): {0}")]
    SelfExe(std::io::Error),
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
}

/// Why a run did not produce an answer: the run itself failed, or the host
/// stopped it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HostRunError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("weir is shutting down: the run was stopped, or not started")]
    ShuttingDown,
}

/// The caller name of MCP clients' passed-through calls, in the audit
/// trail and the metrics: they obey the default policy, like a plugin the
/// operator did not name.
pub const CLIENT_CALLER: &str = "mcp-client";

/// A plugin of the plugins directory by name, loaded or not.
pub type LoadedPlugin = (String, Result<Plugin, PluginError>);

/// One weir host: owns every MCP session and runs plugins against them.
pub struct Host {
    config: Config,
    sessions: Arc<Sessions>,
    sandbox: Sandbox,
    metrics: Arc<Metrics>,
    /// What the replicas of a fleet share (nothing without `weir.redis`).
    fleet: Fleet,
    /// The rules of MCP clients' passed-through calls (the default
    /// policy), shared by every client and front end: one rate for all.
    client_rules: Arc<Rules>,
    /// One permit per run in flight; sized like the instance pool, so a
    /// burst of runs waits for a slot instead of failing to instantiate.
    permits: Arc<Semaphore>,
    /// Cancelled when the host stops taking new runs.
    accepting: CancellationToken,
    /// Cancelled when runs in flight are to be stopped.
    closing: CancellationToken,
}

impl Host {
    /// Builds the engine and prepares (but does not start) the sessions.
    /// `weir_exe` is the binary serving the built-in server; `None` means
    /// this process's own executable.
    pub fn new(config: Config, weir_exe: Option<PathBuf>) -> Result<Self, HostError> {
        let weir_exe = match weir_exe {
            Some(exe) => exe,
            None => std::env::current_exe().map_err(HostError::SelfExe)?,
        };
        let scratch_root = config
            .scratch_root
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let metrics = Arc::new(Metrics::for_replica(config.replica.as_deref()));
        let fleet = match &config.redis {
            Some(url) => Fleet::redis(url, config.replica.as_deref(), &metrics)?,
            None => Fleet::local(),
        };
        let sandbox = Sandbox::new(&config.limits, config.cache_dir.as_deref(), scratch_root)
            .map_err(|e| HostError::Engine(format!("{e:#}")))?;
        // TLS for remote servers. Installing twice (a second host in one
        // process) is refused harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Self {
            sessions: Arc::new(Sessions::new(
                &config,
                weir_exe,
                metrics.clone(),
                fleet.clone(),
            )),
            client_rules: Rules::shared(
                CLIENT_CALLER,
                config.default_policy.clone(),
                &metrics,
                fleet.clone(),
            ),
            metrics,
            fleet,
            permits: Arc::new(Semaphore::new(config.limits.max_concurrent_runs)),
            sandbox,
            config,
            accepting: CancellationToken::new(),
            closing: CancellationToken::new(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What this host shares with the other replicas of its fleet.
    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The gate MCP clients' passed-through calls go through: the default
    /// policy, in front of the sessions.
    pub fn client_gate(&self) -> Gate {
        Gate::new(self.client_rules.clone(), self.sessions.clone())
    }

    /// The sessions as the gateway runs call through (to put a recorder in
    /// front of).
    pub fn gateway(&self) -> Arc<dyn ToolGateway> {
        self.sessions.clone()
    }

    /// Everything the host counts, as OpenMetrics text (what `/metrics`
    /// serves).
    pub fn render_metrics(&self) -> String {
        self.metrics
            .render(self.sessions.stats().into_iter().map(|s| ServerNow {
                live: s.session_ages.len(),
                oldest: s.session_ages.iter().max().copied(),
                circuit_open: s.circuit_open,
                protocol: s.protocol,
                name: s.name,
            }))
    }

    /// Plugins `(compiled, taken from the compile cache)` since start.
    pub fn compile_counts(&self) -> (u64, u64) {
        self.sandbox.compile_counts()
    }

    /// Loads a plugin by path, or by name from the plugins directory, under
    /// the policy the operator set for its name (checking its pin).
    pub fn load(&self, spec: &str) -> Result<Plugin, PluginError> {
        self.load_file(&self.read(spec)?)
    }

    /// Reads a plugin's file and manifest, without compiling it: enough to
    /// tell whether it changed.
    pub fn read(&self, spec: &str) -> Result<PluginFile, PluginError> {
        plugins::read(
            spec,
            self.config.plugins_dir.as_deref(),
            self.config.plugin_size_limit,
        )
    }

    /// Compiles a plugin read by [`Host::read`], under the policy the
    /// operator set for its name (checking its pin).
    pub fn load_file(&self, file: &PluginFile) -> Result<Plugin, PluginError> {
        self.load_granted(file, None)
    }

    /// [`Host::load`], granted exactly `allow` instead of what the config
    /// grants (its other limits stay): how a replay runs under the grants
    /// its recording was made under.
    pub fn load_allowing(
        &self,
        spec: &str,
        allow: &[crate::policy::ToolPattern],
    ) -> Result<Plugin, PluginError> {
        self.load_granted(&self.read(spec)?, Some(allow))
    }

    fn load_granted(
        &self,
        file: &PluginFile,
        allow: Option<&[crate::policy::ToolPattern]>,
    ) -> Result<Plugin, PluginError> {
        let (granted, pin) = self.config.grant_for(&file.name);
        let replaced;
        let policy = match allow {
            Some(allow) => {
                replaced = crate::policy::Policy {
                    allow: allow.to_vec(),
                    ..granted.clone()
                };
                &replaced
            }
            None => granted,
        };
        if let Some(expected) = pin
            && file.sha256 != expected
        {
            return Err(PluginError::Integrity {
                location: file.location.clone(),
                expected: expected.to_owned(),
                actual: file.sha256.clone(),
            });
        }
        // A manifest may ask for less than the operator grants, never more.
        let policy = match file.manifest.as_ref().and_then(|m| m.policy.as_ref()) {
            Some(asked) => asked
                .narrow(policy)
                .map_err(|message| PluginError::Manifest {
                    location: format!("{}.toml", file.location.trim_end_matches(".wasm")),
                    message,
                })?,
            None => policy.clone(),
        };
        Ok(self.sandbox.load(
            &file.name,
            &file.location,
            &file.bytes,
            &file.sha256,
            Rules::shared(&file.name, policy, &self.metrics, self.fleet.clone()),
        )?)
    }

    /// Loads code mode's runtime from `bytes` (the component that ships
    /// with weir), under code mode's grant: pre-initialized once and
    /// cached (see [`Sandbox::load_preinitialized`]).
    pub async fn load_code_runtime(&self, bytes: &[u8]) -> Result<Plugin, PluginError> {
        let name = crate::config::CODE_MODE_CALLER;
        let (policy, _) = self.config.grant_for(name);
        Ok(self
            .sandbox
            .load_preinitialized(
                name,
                "code mode's runtime",
                bytes,
                &plugins::sha256_hex(bytes),
                Rules::shared(name, policy.clone(), &self.metrics, self.fleet.clone()),
                self.sessions.clone(),
            )
            .await?)
    }

    /// Loads every plugin of the plugins directory. Each file stands alone:
    /// one that fails says why and the others still load. Names that differ
    /// only in case collide (they would be one tool to a client).
    pub fn load_all(&self) -> Result<Vec<LoadedPlugin>, PluginError> {
        let dir = self
            .config
            .plugins_dir
            .as_deref()
            .ok_or_else(|| PluginError::NoDirectory("*".into()))?;
        let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        let listing = plugins::list(dir)?;
        let skipped = listing
            .skipped_errors(dir)
            .into_iter()
            .map(|(file, error)| {
                tracing::warn!(file = %file, %error, "plugin not loaded");
                (file, Err(error))
            });
        Ok(listing
            .names
            .into_iter()
            .map(|name| {
                let file = dir
                    .join(format!("{name}.{}", plugins::EXTENSION))
                    .display()
                    .to_string();
                let loaded = match seen.insert(name.to_lowercase(), file.clone()) {
                    Some(first) => Err(PluginError::Collision {
                        name: name.to_lowercase(),
                        first,
                        second: file,
                    }),
                    None => self.load(&name),
                };
                if let Err(error) = &loaded {
                    tracing::warn!(plugin = %name, %error, "plugin not loaded");
                }
                (name, loaded)
            })
            .chain(skipped)
            .collect())
    }

    /// Runs `plugin` once. Waits for a run slot if all are taken; a run
    /// started before shutdown is stopped by it (see [`Host::shutdown`]).
    pub async fn run(&self, plugin: &Plugin, input: &str) -> Result<String, HostRunError> {
        self.run_observed(plugin, input, None).await
    }

    /// [`run`](Host::run), keeping the run's count of tool calls in
    /// `progress` as it goes (for progress reports to a client).
    pub async fn run_observed(
        &self,
        plugin: &Plugin,
        input: &str,
        progress: Option<Arc<AtomicU64>>,
    ) -> Result<String, HostRunError> {
        let gateway: Arc<dyn ToolGateway> = self.sessions.clone();
        self.run_via(plugin, input, gateway, progress).await
    }

    /// [`run_observed`](Host::run_observed) with the plugin's tool calls
    /// going to `gateway` instead of the host's sessions: a recorder in
    /// front of them, or a replayer standing in for them.
    pub async fn run_via(
        &self,
        plugin: &Plugin,
        input: &str,
        gateway: Arc<dyn ToolGateway>,
        progress: Option<Arc<AtomicU64>>,
    ) -> Result<String, HostRunError> {
        // Counted from here: time waiting for a slot is part of the run's
        // latency as its caller sees it; a run dropped midway counts as
        // cancelled.
        let record = self.metrics.run_started(plugin.name());
        let result = self.run_inner(plugin, input, gateway, progress).await;
        record.finish(match &result {
            Ok(_) => "ok",
            Err(HostRunError::Run(e)) => e.kind(),
            Err(HostRunError::ShuttingDown) => "shutting-down",
        });
        result
    }

    /// [`run`](Host::run), with what the run wrote to stdout returned
    /// beside its outcome (see [`Sandbox::run_capturing`]): how a
    /// code-mode script's console reaches whoever ran it.
    pub async fn run_capturing(
        &self,
        plugin: &Plugin,
        input: &str,
    ) -> (Result<String, HostRunError>, Captured) {
        let record = self.metrics.run_started(plugin.name());
        let gateway: Arc<dyn ToolGateway> = self.sessions.clone();
        let (result, captured) = match self.run_slots(plugin).await {
            Err(e) => (Err(e), Captured::default()),
            Ok(_permits) => tokio::select! {
                (result, captured) = self.sandbox.run_capturing(plugin, input, gateway) => {
                    (result.map_err(HostRunError::from), captured)
                }
                () = self.closing.cancelled() => (Err(HostRunError::ShuttingDown), Captured::default()),
            },
        };
        record.finish(match &result {
            Ok(_) => "ok",
            Err(HostRunError::Run(e)) => e.kind(),
            Err(HostRunError::ShuttingDown) => "shutting-down",
        });
        (result, captured)
    }

    async fn run_inner(
        &self,
        plugin: &Plugin,
        input: &str,
        gateway: Arc<dyn ToolGateway>,
        progress: Option<Arc<AtomicU64>>,
    ) -> Result<String, HostRunError> {
        let _permits = self.run_slots(plugin).await?;
        tokio::select! {
            result = self.sandbox.run_observed(plugin, input, gateway, progress) => Ok(result?),
            () = self.closing.cancelled() => Err(HostRunError::ShuttingDown),
        }
    }

    /// Waits for a host-wide run slot, then for one of the plugin's own
    /// (its concurrency cap, inside the host's); refused once shutting
    /// down.
    async fn run_slots(
        &self,
        plugin: &Plugin,
    ) -> Result<
        (
            tokio::sync::SemaphorePermit<'_>,
            tokio::sync::OwnedSemaphorePermit,
        ),
        HostRunError,
    > {
        if self.accepting.is_cancelled() {
            return Err(HostRunError::ShuttingDown);
        }
        let permit = tokio::select! {
            permit = self.permits.acquire() => permit.map_err(|_| HostRunError::ShuttingDown)?,
            () = self.accepting.cancelled() => return Err(HostRunError::ShuttingDown),
        };
        let plugin_permit = tokio::select! {
            permit = plugin.run_permit() => permit.ok_or(HostRunError::ShuttingDown)?,
            () = self.accepting.cancelled() => return Err(HostRunError::ShuttingDown),
        };
        Ok((permit, plugin_permit))
    }

    /// What a plugin file imports and exports and whether it links (see
    /// [`Sandbox::shape`]).
    pub fn shape(&self, file: &PluginFile) -> Result<crate::sandbox::Shape, PluginError> {
        Ok(self
            .sandbox
            .shape(&file.location, &file.bytes, &file.sha256)?)
    }

    /// Instantiates `plugin` without running it (see
    /// [`Sandbox::instantiate_only`]).
    pub async fn instantiate_only(&self, plugin: &Plugin) -> Result<(), RunError> {
        let gateway: Arc<dyn ToolGateway> = self.sessions.clone();
        self.sandbox.instantiate_only(plugin, gateway).await
    }

    /// A graceful stop: takes no new runs, lets the runs in flight finish
    /// for up to `grace`, then [`shutdown`](Host::shutdown)s. Returns how
    /// many runs were still going when the grace ran out.
    pub async fn drain(&self, grace: std::time::Duration) -> usize {
        self.accepting.cancel();
        let all = u32::try_from(self.config.limits.max_concurrent_runs).unwrap_or(u32::MAX);
        let unfinished = match tokio::time::timeout(grace, self.permits.acquire_many(all)).await {
            Ok(_) => 0,
            Err(_) => self.config.limits.max_concurrent_runs - self.permits.available_permits(),
        };
        if unfinished > 0 {
            tracing::warn!(
                unfinished,
                "runs still going after the grace period; stopping them"
            );
        }
        self.shutdown().await;
        unfinished
    }

    /// Stops runs in flight, closes every session and ends every server
    /// process; returns when all are gone.
    pub async fn shutdown(&self) {
        self.accepting.cancel();
        self.closing.cancel();
        self.permits.close();
        self.sessions.shutdown().await;
    }
}
