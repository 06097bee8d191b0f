//! What one plugin run owns: its WASI context (which grants nothing), its
//! resource table, its limits, and its one handle to the outside — the
//! [`ToolGateway`].

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::output::CappedOutput;
use crate::gate::Gate;

/// Table elements a plugin may grow a table to. Tables hold function
/// references; real guests need a few thousand.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Store data of one run. Built fresh per run and dropped with it, so
/// nothing a plugin does outlives its run.
pub(crate) struct RunState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: RunLimiter,
    /// The run's one way out: every call passes the plugin's rules there.
    pub gate: Gate,
    pub stdout: CappedOutput,
    pub stderr: CappedOutput,
    /// `call-tool` requests made so far in this run.
    pub calls: u64,
    /// Epoch ticks the guest has run for: its CPU time.
    pub cpu_ticks: u64,
    /// Set when the CPU budget ran out, to name the trap that follows.
    pub cpu_exhausted: bool,
    /// Set when the plugin kept calling past its call budget.
    pub call_budget_exhausted: bool,
    /// Mirrors `calls` for someone watching the run from outside (progress
    /// reports); only there when asked for.
    pub progress: Option<Arc<AtomicU64>>,
    /// Keeps the epoch clock running for as long as the run lives (held,
    /// never read: dropping it is the point).
    pub _clock: Option<super::ticker::Awake>,
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
    pub fn new(gate: Gate, scratch: Option<&std::path::Path>) -> wasmtime::Result<Self> {
        let policy = gate.rules().policy().clone();
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
            gate,
            stdout,
            stderr,
            calls: 0,
            cpu_ticks: 0,
            cpu_exhausted: false,
            call_budget_exhausted: false,
            progress: None,
            _clock: None,
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
/// memory limit it really is. The cap is on all of a run's linear memories
/// together (a QuickJS agent has two), so a second memory is no way around
/// it.
#[derive(Debug)]
pub(crate) struct RunLimiter {
    pub memory_bytes: usize,
    pub memory_denied: bool,
    /// Bytes of linear memory the run's memories hold between them.
    in_use: usize,
}

impl RunLimiter {
    fn new(memory_bytes: usize) -> Self {
        Self {
            memory_bytes,
            memory_denied: false,
            in_use: 0,
        }
    }
}

impl ResourceLimiter for RunLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.in_use.saturating_sub(current).saturating_add(desired);
        let allowed = total <= self.memory_bytes && maximum.is_none_or(|m| desired <= m);
        if allowed {
            self.in_use = total;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The memory limit holds for a run's memories together: a second
    /// memory (a QuickJS agent has two) is no way around it.
    #[test]
    fn memory_limit_covers_all_memories_together() {
        let mut limiter = RunLimiter::new(10 << 20);
        let grow = |l: &mut RunLimiter, current, desired| {
            l.memory_growing(current, desired, None).expect("limiter")
        };
        assert!(grow(&mut limiter, 0, 4 << 20), "first memory created");
        assert!(grow(&mut limiter, 0, 4 << 20), "second memory created");
        assert!(
            !grow(&mut limiter, 4 << 20, 8 << 20),
            "8 + 4 MiB is past 10"
        );
        assert!(limiter.memory_denied);
        assert!(grow(&mut limiter, 4 << 20, 6 << 20), "6 + 4 MiB fits");
        assert!(!grow(&mut limiter, 4 << 20, 5 << 20), "6 + 5 MiB does not");
    }
}
