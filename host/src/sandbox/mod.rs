//! The sandbox: one wasmtime engine for the host, a fresh store per run.
//!
//! A plugin is compiled once into a [`Plugin`] (a pre-instantiated
//! component). Each run gets a new instance in a new store, with a memory
//! cap, a wall-clock deadline, captured output, and a WASI context that
//! grants nothing ([`state::RunState::new`] lists it). Whatever a run does,
//! it ends that run only.
//!
//! - [`state`]: per-run store data, the WASI view, the memory limiter.
//! - [`imports`]: the host side of `weir:agent/mcp`, where policy is applied.
//! - [`output`]: capped capture of a plugin's stdout and stderr.
//! - [`scratch`]: the per-run `/scratch` directory, when granted.
//! - [`cache`]: compiled components on disk.

mod cache;
mod code_imports;
mod imports;
mod output;
mod preinit;
mod scratch;
mod state;
mod ticker;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap, UpdateDeadline,
};

use self::imports::{Agent, AgentPre};
use self::state::RunState;
use crate::config::RunLimits;
use crate::gate::{Gate, Rules};
use crate::gateway::ToolGateway;
use crate::policy::Policy;

/// How often the engine's epoch advances (while a run is alive). At each
/// tick a running guest yields to tokio, which is what lets a deadline (a
/// tokio timer) stop a guest spinning in a loop that never calls out, and
/// what lets other runs go on beside it: the shorter the tick, the less a
/// spinning guest delays them.
const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Core instances one component may hold (its modules, shims, adapters).
/// A Python agent needs ~17: componentize-py links libc, libpython and
/// each extension module as a module of its own.
const CORE_INSTANCES_PER_COMPONENT: u32 = 32;
/// Linear memory kept mapped (reset in place) between runs of a pool slot:
/// what a small agent touches — its stack, data and a little heap.
const KEEP_RESIDENT_BYTES: usize = 2 << 20;
/// Table bytes kept mapped between runs of a pool slot.
const KEEP_RESIDENT_TABLE_BYTES: usize = 64 << 10;

/// Tables one component may hold.
const TABLES_PER_COMPONENT: u32 = 8;
/// Linear memories one component may hold: one for most, two for a
/// QuickJS agent (the runtime's and the adapter's).
const MEMORIES_PER_COMPONENT: u32 = 2;

/// A compiled, validated, pre-linked plugin with the rules it runs under.
/// Cheap to clone; a run is an instantiation of this, which the pooling
/// allocator makes take microseconds.
#[derive(Clone)]
pub struct Plugin {
    name: Arc<str>,
    pre: AgentPre<RunState>,
    /// Its policy, call-rate bucket and counters, shared by all its runs:
    /// every call a run makes goes through a [`Gate`] of these.
    rules: Arc<Rules>,
    /// The plugin's own share of runs (`max_concurrent_runs` of its policy).
    runs: Arc<tokio::sync::Semaphore>,
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn policy(&self) -> &Policy {
        self.rules.policy()
    }

    /// Its rules, for a gate of its own (what code mode's tools list).
    pub fn rules(&self) -> &Arc<Rules> {
        &self.rules
    }

    /// Waits for one of this plugin's run slots.
    pub async fn run_permit(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.runs.clone().acquire_owned().await.ok()
    }
}

/// A component's imports and exports (interface and function names), and
/// whether it links against weir's world (`Err` says why not).
#[derive(Debug, Clone)]
pub struct Shape {
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub links: Result<(), String>,
}

/// Why a file is not a plugin weir can run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0} is not a WebAssembly file (no `\\0asm` header)")]
    NotWasm(String),
    #[error(
        "{0} is a core WebAssembly module, not a component; build it for the \
         `wasm32-wasip2` target (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule(String),
    #[error("{0} is not a valid component: {1}")]
    Invalid(String, String),
    #[error("{0} does not target weir's world `weir:agent/agent@0.1.0`: {1}")]
    WrongWorld(String, String),
}

/// How a run ended, when it did not end with the plugin's answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    /// The plugin ran and returned `Err`: its own words.
    #[error("the plugin returned an error: {0}")]
    Failed(String),
    #[error("the run passed its deadline of {} and was stopped", humantime::format_duration(*.0))]
    Deadline(Duration),
    #[error("the plugin reached its memory limit of {} MiB and was stopped", .0 >> 20)]
    MemoryLimit(usize),
    #[error("the plugin panicked: {0}")]
    Panic(String),
    #[error("the plugin trapped: {0}")]
    Trap(String),
    #[error("the plugin could not be instantiated: {0}")]
    Instantiate(String),
    #[error("the plugin used its CPU budget of {} and was stopped", humantime::format_duration(*.0))]
    CpuBudget(Duration),
    #[error("the plugin kept calling tools past its budget of {0} calls per run and was stopped")]
    CallBudget(u64),
    #[error("the plugin's answer is {bytes} bytes, more than the {max} allowed")]
    OutputTooLarge { bytes: usize, max: usize },
}

impl RunError {
    /// A short name for the way the run ended: the outcome label of the
    /// run metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Failed(_) => "failed",
            Self::Deadline(_) => "deadline",
            Self::MemoryLimit(_) => "memory",
            Self::Panic(_) => "panic",
            Self::Trap(_) => "trap",
            Self::Instantiate(_) => "instantiate",
            Self::CpuBudget(_) => "cpu",
            Self::CallBudget(_) => "call-budget",
            Self::OutputTooLarge { .. } => "output-too-large",
        }
    }
}

/// The engine, the linker with weir's imports, the compile cache and the
/// epoch ticker.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<RunState>,
    cache: Option<cache::CompileCache>,
    /// Where per-run scratch directories are made.
    scratch_root: std::path::PathBuf,
    /// Components compiled / taken from the cache since start.
    compiled: std::sync::atomic::AtomicU64,
    cache_hits: std::sync::atomic::AtomicU64,
    /// The epoch clock, running while any run is alive.
    ticker: ticker::Ticker,
}

impl Sandbox {
    /// Builds the engine. `limits` sizes the instance pool: one slot per
    /// concurrent run, each memory slot capped at the memory limit.
    pub fn new(
        limits: &RunLimits,
        cache_dir: Option<&std::path::Path>,
        scratch_root: std::path::PathBuf,
    ) -> Result<Self, wasmtime::Error> {
        let pool = limits.instance_pool.then_some(limits);
        let engine = match Engine::new(&engine_config(pool)) {
            Ok(engine) => engine,
            Err(error) => {
                // A host with little address space (ulimit -v) cannot reserve
                // the pool; instantiating on demand is slower but works.
                tracing::warn!(%error, "pooling allocator unavailable; allocating instances on demand");
                Engine::new(&engine_config(None))?
            }
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        imports::mcp::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s)?;
        code_imports::code::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s)?;

        let ticker = ticker::Ticker::start(engine.clone(), EPOCH_TICK)?;
        let cache = cache_dir.and_then(|dir| cache::CompileCache::open(dir, &engine));
        Ok(Self {
            engine,
            linker,
            cache,
            scratch_root,
            compiled: Default::default(),
            cache_hits: Default::default(),
            ticker,
        })
    }

    /// Compiles and validates a component. `what` names it in errors (a
    /// path, say). Checks, in order: Wasm at all, a component rather than a
    /// core module, valid, and importing/exporting what weir's world says.
    pub fn load(
        &self,
        name: &str,
        what: &str,
        bytes: &[u8],
        sha256: &str,
        rules: Arc<Rules>,
    ) -> Result<Plugin, LoadError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(LoadError::NotWasm(what.to_owned()));
        }
        if wasmparser::Parser::is_core_wasm(bytes) {
            return Err(LoadError::CoreModule(what.to_owned()));
        }
        let component = self.compile(what, bytes, sha256)?;
        self.plugin(name, what, &component, rules)
    }

    /// [`load`](Sandbox::load) for a component with a `wizer-initialize`
    /// export (the code-mode runtime): the setup runs once, here, and the
    /// snapshot is what gets compiled — and cached, under `sha256` of the
    /// original, so a later start skips both. `gateway` backs the setup's
    /// store (setup makes no calls; the gate would refuse them anyway).
    pub async fn load_preinitialized(
        &self,
        name: &str,
        what: &str,
        bytes: &[u8],
        sha256: &str,
        rules: Arc<Rules>,
        gateway: Arc<dyn ToolGateway>,
    ) -> Result<Plugin, LoadError> {
        let key = format!("{sha256}-preinitialized");
        let cached = self.cache.as_ref().and_then(|c| c.get(&self.engine, &key));
        let component = match cached {
            Some(component) => {
                self.cache_hits.fetch_add(1, Ordering::Relaxed);
                component
            }
            None => {
                // An empty grant: the setup may call nothing.
                let deny = Rules::new(name, Policy::default(), &crate::metrics::Metrics::new());
                let state = RunState::new(Gate::new(deny, gateway), None)
                    .map_err(|e| LoadError::Invalid(what.to_owned(), format!("{e:#}")))?;
                let _clock = self.ticker.awake();
                let snapshot = preinit::preinitialize(&self.engine, &self.linker, state, bytes)
                    .await
                    .map_err(|e| {
                        LoadError::Invalid(what.to_owned(), format!("its setup failed: {e:#}"))
                    })?;
                let component = Component::new(&self.engine, &snapshot)
                    .map_err(|e| LoadError::Invalid(what.to_owned(), format!("{e:#}")))?;
                self.compiled.fetch_add(1, Ordering::Relaxed);
                if let Some(cache) = &self.cache {
                    cache.put(&key, &component);
                }
                component
            }
        };
        self.plugin(name, what, &component, rules)
    }

    /// A compiled component, linked against weir's world, as a plugin.
    fn plugin(
        &self,
        name: &str,
        what: &str,
        component: &Component,
        rules: Arc<Rules>,
    ) -> Result<Plugin, LoadError> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::WrongWorld(what.to_owned(), format!("{e:#}")))?;
        let pre = AgentPre::new(pre)
            .map_err(|e| LoadError::WrongWorld(what.to_owned(), format!("{e:#}")))?;
        Ok(Plugin {
            name: Arc::from(name),
            pre,
            runs: Arc::new(tokio::sync::Semaphore::new(
                rules.policy().max_concurrent_runs,
            )),
            rules,
        })
    }

    /// What a component imports and exports, and whether weir can link it:
    /// what an operator reads before trusting a plugin. Fails as
    /// [`Sandbox::load`] does for what is not a component at all.
    pub fn shape(&self, what: &str, bytes: &[u8], sha256: &str) -> Result<Shape, LoadError> {
        if !bytes.starts_with(b"\0asm") {
            return Err(LoadError::NotWasm(what.to_owned()));
        }
        if wasmparser::Parser::is_core_wasm(bytes) {
            return Err(LoadError::CoreModule(what.to_owned()));
        }
        let component = self.compile(what, bytes, sha256)?;
        let ty = component.component_type();
        let imports = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        let exports = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        let links = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| format!("{e:#}"))
            .and_then(|pre| AgentPre::new(pre).map(drop).map_err(|e| format!("{e:#}")));
        Ok(Shape {
            imports,
            exports,
            links,
        })
    }

    /// Compiled components `(compiled, from_cache)` since start.
    pub fn compile_counts(&self) -> (u64, u64) {
        (
            self.compiled.load(Ordering::Relaxed),
            self.cache_hits.load(Ordering::Relaxed),
        )
    }

    /// The compiled component, from the cache when it holds this file
    /// (`sha256` is the file's digest, the cache key).
    fn compile(&self, what: &str, bytes: &[u8], sha256: &str) -> Result<Component, LoadError> {
        if let Some(cache) = &self.cache
            && let Some(component) = cache.get(&self.engine, sha256)
        {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(component);
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| LoadError::Invalid(what.to_owned(), format!("{e:#}")))?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        if let Some(cache) = &self.cache {
            cache.put(sha256, &component);
        }
        Ok(component)
    }

    /// A fresh store for one run of `plugin`: its state, memory limiter,
    /// epoch deadline and CPU budget.
    fn store(
        &self,
        plugin: &Plugin,
        gateway: Arc<dyn ToolGateway>,
        scratch: Option<&std::path::Path>,
        progress: Option<Arc<std::sync::atomic::AtomicU64>>,
    ) -> Result<Store<RunState>, RunError> {
        let policy = plugin.policy();
        let state =
            RunState::new(Gate::new(plugin.rules.clone(), gateway), scratch).map_err(|e| {
                RunError::Instantiate(format!("cannot open the scratch directory: {e}"))
            })?;
        let state = RunState {
            progress,
            _clock: Some(self.ticker.awake()),
            ..state
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        // Every tick the guest runs, it yields (so the deadline's timer can
        // fire) and spends one tick of its CPU budget. Time waiting in a
        // host call costs at most the one tick noticed on return.
        let budget_ticks = policy
            .cpu_time
            .map(|t| (t.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64);
        store.epoch_deadline_callback(move |mut ctx| {
            let state = ctx.data_mut();
            state.cpu_ticks += 1;
            if budget_ticks.is_some_and(|b| state.cpu_ticks > b) {
                state.cpu_exhausted = true;
                return Err(wasmtime::Error::msg("CPU budget exhausted"));
            }
            // tokio's own yield: the guest goes back in line *after* the
            // worker has polled I/O, so a guest spinning in a loop cannot
            // hold back the sockets and pipes other runs wait on (a plain
            // wake puts it first in line again, and I/O is then polled
            // only every 61 turns).
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        Ok(store)
    }

    /// Instantiates `plugin` in a fresh store and drops it without calling
    /// `run`: proves the plugin can be instantiated under its limits (a
    /// memory limit below what it declares fails here), and times
    /// instantiation alone.
    pub async fn instantiate_only(
        &self,
        plugin: &Plugin,
        gateway: Arc<dyn ToolGateway>,
    ) -> Result<(), RunError> {
        let mut store = self.store(plugin, gateway, None, None)?;
        plugin
            .pre
            .instantiate_async(&mut store)
            .await
            .map(drop)
            .map_err(|e| {
                if store.data().limiter.memory_denied {
                    RunError::MemoryLimit(store.data().limiter.memory_bytes)
                } else {
                    RunError::Instantiate(format!("{e:#}"))
                }
            })
    }

    /// Runs a plugin once on `input`, in a fresh store. Every failure ends
    /// this run only and says which limit or fault ended it.
    pub async fn run(
        &self,
        plugin: &Plugin,
        input: &str,
        gateway: Arc<dyn ToolGateway>,
    ) -> Result<String, RunError> {
        self.run_observed(plugin, input, gateway, None).await
    }

    /// [`run`](Sandbox::run), with the run's count of `call-tool` requests
    /// kept in `progress` as it goes, for whoever reports on the run.
    pub async fn run_observed(
        &self,
        plugin: &Plugin,
        input: &str,
        gateway: Arc<dyn ToolGateway>,
        progress: Option<Arc<std::sync::atomic::AtomicU64>>,
    ) -> Result<String, RunError> {
        let (result, state) = self.run_store(plugin, input, gateway, progress).await;
        if let Some(state) = state {
            let plugin = &plugin.name;
            log_output(plugin, "stdout", &state.stdout);
            log_output(plugin, "stderr", &state.stderr);
            tracing::debug!(plugin = %plugin, calls = state.calls, "run finished");
        }
        result
    }

    /// [`run`](Sandbox::run), returning what the run wrote to stdout (kept
    /// up to the policy's output cap) beside its outcome — also when the
    /// run was stopped — instead of logging it: a script's console, which
    /// its caller reads.
    pub async fn run_capturing(
        &self,
        plugin: &Plugin,
        input: &str,
        gateway: Arc<dyn ToolGateway>,
    ) -> (Result<String, RunError>, Captured) {
        let (result, state) = self.run_store(plugin, input, gateway, None).await;
        let captured = state
            .map(|state| {
                let (stdout, dropped) = state.stdout.contents();
                Captured {
                    stdout,
                    dropped,
                    calls: state.calls,
                }
            })
            .unwrap_or_default();
        (result, captured)
    }

    /// One run in a fresh store; the store's state comes back with the
    /// outcome (none when the store could not be made).
    async fn run_store(
        &self,
        plugin: &Plugin,
        input: &str,
        gateway: Arc<dyn ToolGateway>,
        progress: Option<Arc<std::sync::atomic::AtomicU64>>,
    ) -> (Result<String, RunError>, Option<RunState>) {
        match self.run_in_store(plugin, input, gateway, progress).await {
            Ok((result, state)) => (result, Some(state)),
            Err(error) => (Err(error), None),
        }
    }

    async fn run_in_store(
        &self,
        plugin: &Plugin,
        input: &str,
        gateway: Arc<dyn ToolGateway>,
        progress: Option<Arc<std::sync::atomic::AtomicU64>>,
    ) -> Result<(Result<String, RunError>, RunState), RunError> {
        let policy = plugin.policy();
        // Lives until the run's end, then is deleted with its contents.
        let scratch = if policy.scratch_dir {
            Some(
                scratch::ScratchDir::create(&self.scratch_root, &plugin.name).map_err(|e| {
                    RunError::Instantiate(format!("cannot create a scratch directory: {e}"))
                })?,
            )
        } else {
            None
        };
        let mut store = self.store(
            plugin,
            gateway,
            scratch.as_ref().map(|s| s.path()),
            progress,
        )?;

        let outcome = tokio::time::timeout(policy.deadline, async {
            let agent: Agent = plugin
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| RunError::Instantiate(format!("{e:#}")))?;
            agent
                .call_run(&mut store, input)
                .await
                .map_err(|trap| classify_trap(&trap, store.data()))
        })
        .await;

        let state = store.into_data();
        let result = match outcome {
            Err(_elapsed) => Err(RunError::Deadline(policy.deadline)),
            Ok(Err(error)) => Err(error),
            // Python and JS runtimes turn a refused memory growth into an
            // exception (MemoryError, "out of memory") the agent may report
            // as its error: the limit is still what ended the run.
            Ok(Ok(Err(_))) if state.limiter.memory_denied => {
                Err(RunError::MemoryLimit(state.limiter.memory_bytes))
            }
            Ok(Ok(Err(message))) => Err(RunError::Failed(message)),
            Ok(Ok(Ok(output))) if output.len() > policy.max_result_bytes => {
                Err(RunError::OutputTooLarge {
                    bytes: output.len(),
                    max: policy.max_result_bytes,
                })
            }
            Ok(Ok(Ok(output))) => Ok(output),
        };
        Ok((result, state))
    }
}

/// What a run left on stdout, and how many calls it made.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    /// The text kept, up to the policy's output cap.
    pub stdout: String,
    /// Bytes written past the cap.
    pub dropped: u64,
    /// Tool calls the run asked for.
    pub calls: u64,
}

fn engine_config(pool: Option<&RunLimits>) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    if let Some(limits) = pool {
        let slots = u32::try_from(limits.max_concurrent_runs).unwrap_or(u32::MAX);
        let mut pooling = PoolingAllocationConfig::default();
        pooling
            .total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
            .max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT)
            .total_tables(slots.saturating_mul(TABLES_PER_COMPONENT))
            .max_tables_per_component(TABLES_PER_COMPONENT)
            .total_memories(slots.saturating_mul(MEMORIES_PER_COMPONENT))
            .max_memories_per_component(MEMORIES_PER_COMPONENT)
            .total_stacks(slots)
            .max_memory_size(limits.memory_bytes)
            // A finished run's memory is reset for the next one. By default
            // that is `madvise`, then a page fault per page the next run
            // touches, and TLB-shootdown interrupts on every core: tens of
            // µs per run. Zeroing the first pages in place (or, on Linux
            // 6.7+, only the pages that were written) keeps them mapped.
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(KEEP_RESIDENT_TABLE_BYTES)
            .pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    }
    config
}

/// Turns a trap into what ended the run, using what the run left behind:
/// a refused memory growth, a Rust panic message on stderr.
fn classify_trap(error: &wasmtime::Error, state: &RunState) -> RunError {
    if state.call_budget_exhausted {
        return RunError::CallBudget(state.gate.rules().policy().max_calls_per_run);
    }
    if state.cpu_exhausted {
        return RunError::CpuBudget(state.gate.rules().policy().cpu_time.unwrap_or_default());
    }
    if state.limiter.memory_denied {
        return RunError::MemoryLimit(state.limiter.memory_bytes);
    }
    let (stderr, _) = state.stderr.contents();
    if let Some(message) = panic_message(&stderr) {
        return RunError::Panic(message);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => RunError::Trap("stack overflow".into()),
        // Rust and C keep their stack in linear memory: overflowing it is
        // an out-of-bounds access, not a wasm stack overflow.
        Some(Trap::MemoryOutOfBounds) => RunError::Trap(
            "out of bounds memory access (a stack overflow, or a bug in the plugin)".into(),
        ),
        Some(trap) => RunError::Trap(trap.to_string()),
        // The host refused something the plugin passed (say, a string that
        // is not UTF-8): the root cause says what, without the backtrace.
        None => RunError::Trap(error.root_cause().to_string()),
    }
}

/// The message of a Rust panic as std prints it to stderr:
/// `thread '…' panicked at src/lib.rs:3:5:\nmessage\nnote: …`.
fn panic_message(stderr: &str) -> Option<String> {
    let at = stderr.find("panicked at ")?;
    let after = &stderr[at + "panicked at ".len()..];
    let (location, rest) = after.split_once('\n').unwrap_or((after, ""));
    let message: Vec<&str> = rest
        .lines()
        .take_while(|l| !l.starts_with("note: "))
        .collect();
    let location = location.trim_end_matches(':');
    Some(format!("{} (at {location})", message.join("\n").trim()))
}

fn log_output(plugin: &str, stream: &'static str, output: &output::CappedOutput) {
    let (text, dropped) = output.contents();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        tracing::info!(target: "weir::plugin", plugin, stream, "{line}");
    }
    if dropped > 0 {
        tracing::warn!(target: "weir::plugin", plugin, stream, dropped, "output past the cap was dropped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The panic message and location are pulled out of std's report.
    #[test]
    fn extracts_panic_message() {
        let stderr = "hello\nthread '<unnamed>' panicked at src/lib.rs:7:9:\nboom: 42\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("boom: 42 (at src/lib.rs:7:9)")
        );
        assert_eq!(panic_message("all fine\n"), None);
    }
}
