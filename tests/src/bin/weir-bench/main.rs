//! weir's benchmarks: every figure measured side by side in one run, on
//! this machine, against real servers over real pipes (loopback only).
//!
//! `scripts/bench` builds and runs it; `--quick` shortens every part,
//! `--only PART` runs one (overhead, storm, instantiation, scale, python,
//! serve, guests, code, fleet). It
//! prints a table and writes JSON (`--out FILE`). Each part is bounded by
//! its iteration counts and stops by itself.
//!
//! 1. plugin overhead: `fanout` through weir vs a direct rmcp client, same
//!    server type, alternating rounds (node's JIT warms up over time);
//! 2. the storm: a new server process + initialize per call vs weir;
//! 3. instantiation: empty runs with and without the instance pool; cold
//!    compile vs the compile cache;
//! 4. scale: 100 / 1,000 / 10,000 concurrent runs × 10 calls;
//! 5. the Python stack, when `bench/.venv` has it (scripts/bench installs it);
//! 6. `weir serve`: an MCP client calling an agent through weir vs calling
//!    the server directly, and many concurrent client calls;
//! 7. guests: agents in Rust, Python and JavaScript side by side — build,
//!    compile, cached load, instantiation, a run, a tool call;
//! 8. code mode: `tools/list` bytes vs pass-through, a 20-call task as
//!    client round trips vs one script, an empty execution, and the peers'
//!    executors (a V8 isolate, a Deno process) on the same scripts;
//! 9. the fleet: calls through nginx over 1, 2, 3 replicas on one Redis,
//!    and the cost per call of the shared rate limit (with and without
//!    Redis).

mod code;
mod fakes;
mod fleet;
mod guests;
mod instantiation;
mod overhead;
mod python;
mod scale;
mod serve;
mod storm;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{Peer, RoleClient};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use weir_host::{Config, Host};

struct Bench {
    quick: bool,
    root: PathBuf,
    scratch: PathBuf,
    report: Vec<(String, String, String)>,
    json: serde_json::Map<String, Value>,
}

fn everything_bin(root: &Path) -> Result<PathBuf> {
    let bin = root.join("tests/npm/node_modules/.bin/mcp-server-everything");
    if !bin.exists() {
        bail!(
            "{} is missing: run `npm ci --prefix tests/npm` (scripts/bench does)",
            bin.display()
        );
    }
    Ok(bin)
}

fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("exe dir")?.join(name);
    if !path.exists() {
        bail!(
            "{} is missing: build the weir-tests binaries first",
            path.display()
        );
    }
    Ok(path)
}

fn plugin(name: &str) -> String {
    Path::new(env!("WEIR_TEST_PLUGINS"))
        .join(format!("{name}.wasm"))
        .display()
        .to_string()
}

/// The call every direct-client figure makes: `echo` with `"hi"`, the
/// same call the plugins make through weir.
fn echo_hi() -> CallToolRequestParams {
    let mut arguments = serde_json::Map::new();
    arguments.insert("message".into(), json!("hi"));
    CallToolRequestParams::new("echo").with_arguments(arguments)
}

/// `n` times the `echo_hi` call on server `s`, made by the host's session
/// manager itself, without a plugin: weir's own share of a call.
async fn echo_from_host(host: &Host, n: usize) -> Result<()> {
    let caller = weir_host::gateway::Caller::new("bench");
    for _ in 0..n {
        let args = weir_host::gateway::Arguments::parse(r#"{"message":"hi"}"#)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        weir_host::ToolGateway::call_tool(host.sessions(), &caller, "s", "echo", args)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

/// `tools/call` of `name` with `arguments` (a JSON object).
fn call(name: &str, arguments: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_owned())
        .with_arguments(arguments.as_object().cloned().unwrap_or_default())
}

/// `weir serve --config CONFIG ARGS` over stdio, as a desktop client
/// starts it, with an rmcp client session on it.
async fn serve_stdio(
    config: &Path,
    args: &[&std::ffi::OsStr],
) -> Result<rmcp::service::RunningService<RoleClient, ()>> {
    let mut cmd = tokio::process::Command::new(sibling("weir")?);
    cmd.arg("serve").arg("--config").arg(config).args(args);
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()?;
    Ok(().serve(transport).await?)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

impl Bench {
    fn row(&mut self, what: &str, figure: String, note: String) {
        println!("{what:<58} {figure:>22}   {note}");
        self.report.push((what.to_owned(), figure, note));
    }

    /// A row of `each`'s p50 (and p99 in the note); the two as JSON.
    fn latency_row(&mut self, what: &str, mut each: Vec<Duration>) -> Value {
        each.sort();
        let (p50, p99) = (percentile(&each, 0.5), percentile(&each, 0.99));
        let (p50, p99) = (p50.as_secs_f64() * 1e6, p99.as_secs_f64() * 1e6);
        self.row(
            what,
            format!("{p50:.1} µs"),
            format!("p50 of {}; p99 {p99:.1} µs", each.len()),
        );
        json!({"p50_us": p50, "p99_us": p99})
    }

    fn host(&self, name: &str, weir: Value, servers: Value) -> Result<Host> {
        let path = self.scratch.join(format!("{name}.json"));
        std::fs::write(
            &path,
            json!({"mcpServers": servers, "weir": weir}).to_string(),
        )?;
        Ok(Host::new(Config::load(&path)?, Some(sibling("weir")?))?)
    }

    async fn direct_session(
        &self,
        program: &Path,
        args: &[&str],
    ) -> Result<rmcp::service::RunningService<RoleClient, ()>> {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args);
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(Stdio::null())
            .spawn()?;
        Ok(().serve(transport).await?)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // On a worker thread, like every run in weir (and any real client):
    // the main thread of a multi-thread runtime is not one, and timers or
    // wake-ups from it cost extra cross-thread hops.
    tokio::spawn(bench_main()).await?
}

/// weir's benchmarks: every figure measured side by side in one run.
#[derive(Debug, clap::Parser)]
struct Args {
    /// Shorten every part (fewer rounds and calls).
    #[arg(long)]
    quick: bool,
    /// Also write the figures as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Run this part only.
    #[arg(long, value_enum, value_name = "PART")]
    only: Option<Part>,
    /// Time one side of the overhead benchmark alone (20,000 calls), for a
    /// profiler: plugin, gateway, direct, instantiate, xthread-plugin,
    /// xthread-gateway. WEIR_BENCH_SERVER=everything runs it against
    /// server-everything.
    #[arg(long, value_name = "SIDE")]
    profile: Option<String>,
}

/// The parts of the benchmark, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Overhead,
    Storm,
    Instantiation,
    Scale,
    Python,
    Serve,
    Guests,
    Code,
    Fleet,
}

async fn bench_main() -> Result<()> {
    let args = <Args as clap::Parser>::parse();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let scratch = std::env::temp_dir().join(format!("weir-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let mut bench = Bench {
        quick: args.quick,
        root: root.clone(),
        scratch: scratch.clone(),
        report: Vec::new(),
        json: Default::default(),
    };
    let wanted = |part: Part| args.only.is_none_or(|o| o == part);
    let everything = everything_bin(&root)?;
    let test_server = sibling("weir-test-server")?;
    println!("{:<58} {:>22}   note", "benchmark", "figure");
    if let Some(side) = &args.profile {
        // WEIR_BENCH_SERVER=everything: against server-everything instead.
        let server: (&Path, &[&str]) = match std::env::var("WEIR_BENCH_SERVER").as_deref() {
            Ok("everything") => (&everything, &["stdio"]),
            _ => (&test_server, &[]),
        };
        return bench.profile(side, server, 20_000).await;
    }
    if wanted(Part::Overhead) {
        bench.sandbox_overhead().await?;
        bench
            .overhead("everything", &everything, &["stdio"])
            .await?;
        bench.overhead("test-server", &test_server, &[]).await?;
    }
    if wanted(Part::Storm) {
        bench.storm(&everything).await?;
    }
    if wanted(Part::Instantiation) {
        bench.instantiation().await?;
    }
    if wanted(Part::Scale) {
        bench.scale().await?;
    }
    if wanted(Part::Python) {
        bench.python(&everything).await?;
    }
    if wanted(Part::Serve) {
        bench.serve(&test_server).await?;
    }
    if wanted(Part::Guests) {
        bench.guests(&test_server).await?;
    }
    if wanted(Part::Code) {
        bench.code_mode(&everything, &test_server).await?;
    }
    if wanted(Part::Fleet) {
        bench.fleet(&test_server).await?;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if let Some(out) = &args.out {
        bench.json.insert("table".into(), json!(bench.report));
        std::fs::write(out, serde_json::to_vec_pretty(&Value::Object(bench.json))?)?;
        println!("\nJSON written to {}", out.display());
    }
    Ok(())
}
