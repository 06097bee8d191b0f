//! What one plugin run owns: its WASI context (which grants nothing), its
//! resource table, its limits, and its one handle to the outside — the
//! [`ToolGateway`].

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::output::CappedOutput;
use crate::gateway::{Caller, ToolGateway};
use crate::policy::{Policy, RateLimiter};

/// Table elements a plugin may grow a table to. Tables hold function
/// references; real guests need a few thousand.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Store data of one run. Built fresh per run and dropped with it, so
/// nothing a plugin does outlives its run.
pub(crate) struct RunState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: RunLimiter,
    pub gateway: Arc<dyn ToolGateway>,
    /// The plugin, as the session manager sees it.
    pub caller: Caller,
    pub stdout: CappedOutput,
    pub stderr: CappedOutput,
    /// The rules every call is checked against.
    pub policy: Arc<Policy>,
    /// The plugin's call-rate bucket, shared by its runs.
    pub rate: Option<Arc<std::sync::Mutex<RateLimiter>>>,
    /// `call-tool` requests made so far in this run.
    pub calls: u64,
    /// Epoch ticks the guest has run for: its CPU time.
    pub cpu_ticks: u64,
    /// Set when the CPU budget ran out, to name the trap that follows.
    pub cpu_exhausted: bool,
    /// Set when the plugin kept calling past its call budget.
    pub call_budget_exhausted: bool,
    /// The plugin's count of refused calls, for the metrics.
    pub denials: Option<prometheus_client::metrics::counter::Counter>,
    /// Mirrors `calls` for someone watching the run from outside (progress
    /// reports); only there when asked for.
    pub progress: Option<Arc<AtomicU64>>,
}

impl RunState {
    /// The guest's capabilities, listed in one place. An empty builder
    /// already denies all of this; it is spelled out so that a change of
    /// wasmtime-wasi defaults cannot quietly grant something:
    /// - no network: TCP, UDP and name lookup are off, every address refused;
    /// - no files: no preopened directories, so no path resolves — except,
    ///   if the policy grants one, the run's own empty scratch directory at
    ///   `/scratch`, which `..` cannot leave;
    /// - no environment variables and no arguments;
    /// - stdin is closed; stdout and stderr go to capped buffers;
    /// - clocks and randomness are allowed (they reach nothing).
    pub fn new(
        caller: Caller,
        gateway: Arc<dyn ToolGateway>,
        policy: Arc<Policy>,
        rate: Option<Arc<std::sync::Mutex<RateLimiter>>>,
        scratch: Option<&std::path::Path>,
    ) -> wasmtime::Result<Self> {
        let stdout = CappedOutput::new(policy.output_bytes);
        let stderr = CappedOutput::new(policy.output_bytes);
        let mut builder = WasiCtx::builder();
        builder
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }));
        if let Some(dir) = scratch {
            builder.preopened_dir(
                dir,
                super::scratch::GUEST_PATH,
                wasmtime_wasi::FsPerms::ReadWrite,
            )?;
        }
        let wasi = builder.build();
        Ok(Self {
            wasi,
            table: ResourceTable::new(),
            limiter: RunLimiter::new(policy.memory_bytes),
            gateway,
            caller,
            stdout,
            stderr,
            policy,
            rate,
            calls: 0,
            cpu_ticks: 0,
            cpu_exhausted: false,
            call_budget_exhausted: false,
            denials: None,
            progress: None,
        })
    }
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps memory growth and remembers that it refused some, so a trap that
/// follows (a Rust guest aborts when allocation fails) is reported as the
/// memory limit it really is.
#[derive(Debug)]
pub(crate) struct RunLimiter {
    pub memory_bytes: usize,
    pub memory_denied: bool,
}

impl RunLimiter {
    fn new(memory_bytes: usize) -> Self {
        Self {
            memory_bytes,
            memory_denied: false,
        }
    }
}

impl ResourceLimiter for RunLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_bytes && maximum.is_none_or(|m| desired <= m);
        self.memory_denied |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS && maximum.is_none_or(|m| desired <= m))
    }

    // A component is a handful of core instances, tables and memories.
    fn instances(&self) -> usize {
        32
    }

    fn tables(&self) -> usize {
        32
    }

    fn memories(&self) -> usize {
        4
    }
}
