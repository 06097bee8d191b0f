//! weir's benchmarks: every figure measured side by side in one run, on
//! this machine, against real servers over real pipes (loopback only).
//!
//! `scripts/bench` builds and runs it; `--quick` shortens every part,
//! `--only PART` runs one (overhead, storm, instantiation, scale, python,
//! serve, guests). It
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
//!    compile, cached load, instantiation, a run, a tool call.

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

    /// 1. Per-call latency and concurrent throughput, plugin vs direct.
    async fn overhead(&mut self, server: &str, program: &Path, args: &[&str]) -> Result<()> {
        let (n, rounds, tasks, per_task) = if self.quick {
            (500, 3, 20, 50)
        } else {
            (2000, 5, 100, 100)
        };
        let weir = json!({"builtin": false, "max_concurrent_runs": 256,
            "default_policy": {"allow": ["*/*"], "max_calls_per_run": 1_000_000, "max_concurrent_runs": 256}});
        let host = Arc::new(self.host(
            "overhead",
            weir,
            json!({"s": {"command": program, "args": args}}),
        )?);
        let fanout = host.load(&plugin("fanout"))?;
        let direct = self.direct_session(program, args).await?;
        let peer = direct.peer().clone();
        let job = |count: usize| {
            json!({"server": "s", "tool": "echo", "arguments": {"message": "hi"}, "count": count})
                .to_string()
        };
        let call_direct = |peer: Peer<RoleClient>| async move { peer.call_tool(echo_hi()).await };
        // Warm-up on both sides (node's JIT, caches).
        host.run(&fanout, &job(n)).await?;
        for _ in 0..n {
            call_direct(peer.clone()).await?;
        }
        let (mut plugin_us, mut direct_us) = (Vec::new(), Vec::new());
        // Alternate which goes first, so neither gains from going second.
        for round in 0..rounds {
            for plugin_turn in [round % 2 == 0, round % 2 == 1] {
                let t = Instant::now();
                if plugin_turn {
                    let out: Value = serde_json::from_str(&host.run(&fanout, &job(n)).await?)?;
                    if out["ok"] != n {
                        bail!("fanout: {out}");
                    }
                    plugin_us.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
                } else {
                    for _ in 0..n {
                        call_direct(peer.clone()).await?;
                    }
                    direct_us.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
                }
            }
        }
        // The session manager alone (no plugin), to split the overhead.
        let mut gateway_us = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            echo_from_host(&host, n).await?;
            gateway_us.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
        }
        let g = median(gateway_us);
        self.row(
            &format!("[{server}] sequential call, weir's session manager only"),
            format!("{g:.1} µs/call"),
            String::new(),
        );
        let (p, d) = (median(plugin_us), median(direct_us));
        self.row(
            &format!("[{server}] sequential call, direct rmcp"),
            format!("{d:.1} µs/call"),
            format!("median of {rounds} rounds × {n}"),
        );
        self.row(
            &format!("[{server}] sequential call, through a plugin"),
            format!("{p:.1} µs/call"),
            format!("ratio {:.2}× direct", p / d),
        );

        // Throughput: `tasks` concurrent callers.
        let t = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let peer = peer.clone();
            handles.push(tokio::spawn(async move {
                for _ in 0..per_task {
                    call_direct(peer.clone()).await?;
                }
                Ok::<_, rmcp::service::ServiceError>(())
            }));
        }
        for h in handles {
            h.await??;
        }
        let direct_rate = (tasks * per_task) as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (host, fanout, input) = (host.clone(), fanout.clone(), job(per_task));
            handles.push(tokio::spawn(async move { host.run(&fanout, &input).await }));
        }
        for h in handles {
            h.await??;
        }
        let plugin_rate = (tasks * per_task) as f64 / t.elapsed().as_secs_f64();
        self.row(
            &format!("[{server}] {tasks} concurrent callers, direct rmcp"),
            format!("{direct_rate:.0} calls/s"),
            String::new(),
        );
        self.row(
            &format!("[{server}] {tasks} concurrent plugin runs"),
            format!("{plugin_rate:.0} calls/s"),
            format!(
                "{:.0}% of direct; sessions opened: {}",
                100.0 * plugin_rate / direct_rate,
                host.sessions().stats()[0].sessions_opened
            ),
        );
        self.json.insert(
            format!("overhead_{server}"),
            json!({"direct_us_per_call": d, "plugin_us_per_call": p, "ratio": p / d,
                   "direct_calls_per_s": direct_rate, "plugin_calls_per_s": plugin_rate,
                   "throughput_ratio": plugin_rate / direct_rate}),
        );
        direct.cancel().await?;
        host.shutdown().await;
        Ok(())
    }

    /// 6. `weir serve`: an MCP client calling an agent through weir (each
    ///    tool call is one plugin run and one upstream call) vs the same
    ///    client calling the server directly; then many clients at once.
    async fn serve(&mut self, test_server: &Path) -> Result<()> {
        let (n, tasks, per_task) = if self.quick {
            (300, 16, 20)
        } else {
            (2000, 64, 50)
        };
        let dir = self.scratch.join("serve-plugins");
        std::fs::create_dir_all(&dir)?;
        for file in ["fanout.wasm", "fanout.toml", "testbed.wasm"] {
            std::fs::copy(
                Path::new(env!("WEIR_TEST_PLUGINS")).join(file),
                dir.join(file),
            )?;
        }
        let sessions_log = self.scratch.join("serve-sessions.log");
        let config = self.scratch.join("serve.json");
        std::fs::write(
            &config,
            json!({
                "mcpServers": {"s": {"command": test_server,
                                     "env": {"WEIR_TEST_SESSION_LOG": sessions_log}}},
                "weir": {"builtin": false, "max_concurrent_runs": 256,
                         "default_policy": {"allow": ["*/*"], "max_concurrent_runs": 256}},
            })
            .to_string(),
        )?;
        let mut cmd = tokio::process::Command::new(sibling("weir")?);
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--plugins")
            .arg(&dir);
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(Stdio::null())
            .spawn()?;
        let served = ().serve(transport).await?;
        let weir = served.peer().clone();
        let direct = self.direct_session(test_server, &[]).await?;
        let server = direct.peer().clone();

        let through_weir = |peer: Peer<RoleClient>| async move {
            let job =
                json!({"server": "s", "tool": "echo", "arguments": {"message": "hi"}, "count": 1});
            let params = CallToolRequestParams::new("fanout")
                .with_arguments(job.as_object().cloned().unwrap_or_default());
            let result = peer.call_tool(params).await?;
            let text = result
                .content
                .first()
                .and_then(|c| c.as_text())
                .map(|t| t.text.clone());
            if text.as_deref() != Some(r#"{"calls":1,"errors":0,"ok":1}"#) {
                bail!("fanout through weir serve: {text:?}");
            }
            Ok(())
        };
        let straight = |peer: Peer<RoleClient>| async move {
            peer.call_tool(echo_hi()).await?;
            Ok::<_, anyhow::Error>(())
        };
        for _ in 0..n / 4 {
            through_weir(weir.clone()).await?;
            straight(server.clone()).await?;
        }
        let (mut weir_us, mut direct_us) = (Vec::new(), Vec::new());
        for round in 0..4 {
            for weir_turn in [round % 2 == 0, round % 2 == 1] {
                let t = Instant::now();
                for _ in 0..n / 4 {
                    if weir_turn {
                        through_weir(weir.clone()).await?;
                    } else {
                        straight(server.clone()).await?;
                    }
                }
                let us = t.elapsed().as_secs_f64() * 1e6 / (n / 4) as f64;
                if weir_turn {
                    weir_us.push(us)
                } else {
                    direct_us.push(us)
                }
            }
        }
        // The same hop with an agent that makes no upstream call: the cost
        // of the MCP hop into weir plus one run.
        let mut bare_us = Vec::new();
        for _ in 0..4 {
            let t = Instant::now();
            for _ in 0..n / 4 {
                let params = CallToolRequestParams::new("testbed").with_arguments(
                    json!({"input": "env"})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                );
                weir.call_tool(params).await?;
            }
            bare_us.push(t.elapsed().as_secs_f64() * 1e6 / (n / 4) as f64);
        }
        let bare = median(bare_us);
        self.row(
            "[serve] client → weir serve → agent (no upstream call)",
            format!("{bare:.1} µs/call"),
            String::new(),
        );
        let (w, d) = (median(weir_us), median(direct_us));
        self.row(
            "[serve] client → server directly (rmcp, stdio)",
            format!("{d:.1} µs/call"),
            String::new(),
        );
        self.row(
            "[serve] client → weir serve → agent → server",
            format!("{w:.1} µs/call"),
            format!(
                "{:.2}× direct: one agent run + one upstream call each",
                w / d
            ),
        );
        let t = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let weir = weir.clone();
            handles.push(tokio::spawn(async move {
                for _ in 0..per_task {
                    through_weir(weir.clone()).await?;
                }
                Ok::<_, anyhow::Error>(())
            }));
        }
        for h in handles {
            h.await??;
        }
        let rate = (tasks * per_task) as f64 / t.elapsed().as_secs_f64();
        let sessions = std::fs::read_to_string(&sessions_log)?.lines().count();
        self.row(
            &format!("[serve] {tasks} concurrent client calls"),
            format!("{rate:.0} calls/s"),
            format!("upstream sessions opened: {sessions}"),
        );
        self.json.insert(
            "serve".into(),
            json!({"direct_us_per_call": d, "serve_us_per_call": w, "ratio": w / d,
                   "concurrent_calls_per_s": rate, "concurrent_clients": tasks,
                   "upstream_sessions": sessions}),
        );
        served.cancel().await?;
        direct.cancel().await?;
        Ok(())
    }

    /// `--profile SIDE`: one side of the overhead comparison alone, for a
    /// profiler to watch (`perf stat`, `perf record`): `plugin`, `gateway`
    /// (the session manager without a plugin) or `direct` (rmcp alone), N
    /// sequential calls to the test server's `echo`; or `xthread-plugin` /
    /// `xthread-gateway`, the same against a gateway another thread answers
    /// after 40 µs of work — the wake-up of a real call, without its pipes.
    /// Against the rmcp test server, or server-everything with
    /// `WEIR_BENCH_SERVER=everything`.
    async fn profile(
        &mut self,
        side: &str,
        (program, args): (&Path, &[&str]),
        n: usize,
    ) -> Result<()> {
        let weir = json!({"builtin": false,
            "default_policy": {"allow": ["*/*"], "max_calls_per_run": 10_000_000}});
        let host = self.host(
            "profile",
            weir,
            json!({"s": {"command": program, "args": args}}),
        )?;
        let fanout = host.load(&plugin("fanout"))?;
        let direct = self.direct_session(program, args).await?;
        let job =
            json!({"server": "s", "tool": "echo", "arguments": {"message": "hi"}, "count": n})
                .to_string();
        // Both sessions open before the clock starts.
        host.run(
            &fanout,
            &job.replace(&format!("\"count\":{n}"), "\"count\":10"),
        )
        .await?;
        let caller = weir_host::gateway::Caller::new("bench");
        let t = Instant::now();
        match side {
            "plugin" => {
                host.run(&fanout, &job).await?;
            }
            "gateway" => echo_from_host(&host, n).await?,
            "direct" => {
                for _ in 0..n {
                    direct.peer().call_tool(echo_hi()).await?;
                }
            }
            "instantiate" => {
                // WEIR_BENCH_PLUGIN: another component to instantiate (a
                // Python or JS agent, say).
                let target = match std::env::var("WEIR_BENCH_PLUGIN") {
                    Ok(path) => host.load(&path)?,
                    Err(_) => fanout.clone(),
                };
                for _ in 0..n * 10 {
                    host.instantiate_only(&target).await?;
                }
                let us = t.elapsed().as_secs_f64() * 1e6 / (n * 10) as f64;
                self.row(
                    "[profile] instantiate",
                    format!("{us:.1} µs"),
                    format!("{} instances", n * 10),
                );
                direct.cancel().await?;
                host.shutdown().await;
                return Ok(());
            }
            "xthread-plugin" | "xthread-gateway" => {
                // A gateway answered by another thread after ~`work` of
                // busy work: a server without pipes or a second process.
                struct Remote(std::sync::mpsc::Sender<tokio::sync::oneshot::Sender<String>>);
                impl weir_host::ToolGateway for Remote {
                    fn call_tool<'a>(
                        &'a self,
                        _caller: &'a weir_host::gateway::Caller,
                        _server: &'a str,
                        _tool: &'a str,
                        _arguments: Option<weir_host::gateway::Arguments>,
                    ) -> futures::future::BoxFuture<'a, Result<String, weir_host::CallError>>
                    {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        let _ = self.0.send(tx);
                        Box::pin(async move { rx.await.map_err(|_| weir_host::CallError::Timeout) })
                    }
                    fn list_tools<'a>(
                        &'a self,
                        _caller: &'a weir_host::gateway::Caller,
                    ) -> futures::future::BoxFuture<'a, Vec<weir_host::ToolInfo>>
                    {
                        Box::pin(async { Vec::new() })
                    }
                }
                let (tx, rx) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<String>>();
                std::thread::spawn(move || {
                    while let Ok(reply) = rx.recv() {
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_micros(40) {
                            std::hint::spin_loop();
                        }
                        let _ = reply
                            .send(r#"{"content":[{"type":"text","text":"Echo: hi"}]}"#.to_owned());
                    }
                });
                let gateway: Arc<dyn weir_host::ToolGateway> = Arc::new(Remote(tx));
                let (sandbox, fanout) = self.bare_sandbox()?;
                let t = Instant::now();
                if side == "xthread-plugin" {
                    sandbox.run(&fanout, &job, gateway).await?;
                } else {
                    for _ in 0..n {
                        let args = json!({"message": "hi"}).to_string();
                        let args = weir_host::gateway::parse_arguments(&args)?;
                        gateway.call_tool(&caller, "s", "echo", args).await?;
                    }
                }
                let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
                self.row(
                    &format!("[profile] {side}"),
                    format!("{us:.1} µs/call"),
                    format!("{n} calls"),
                );
                return Ok(());
            }
            other => bail!(
                "--profile {other}: use plugin, gateway, direct, instantiate, xthread-plugin or xthread-gateway"
            ),
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        self.row(
            &format!("[profile] {side}"),
            format!("{us:.1} µs/call"),
            format!("{n} calls"),
        );
        direct.cancel().await?;
        host.shutdown().await;
        Ok(())
    }

    /// A sandbox of its own (no host, no sessions) with `fanout` loaded
    /// under a policy that lets it call anything, as often as it likes.
    fn bare_sandbox(&self) -> Result<(weir_host::sandbox::Sandbox, weir_host::Plugin)> {
        let sandbox = weir_host::sandbox::Sandbox::new(
            &weir_host::config::RunLimits::default(),
            None,
            self.scratch.clone(),
        )
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let policy = weir_host::policy::Policy {
            allow: vec![weir_host::policy::ToolPattern::parse("*/*").map_err(anyhow::Error::msg)?],
            max_calls_per_run: u64::MAX / 2,
            ..weir_host::policy::Policy::default()
        };
        let bytes = std::fs::read(plugin("fanout"))?;
        let digest = weir_host::plugins::sha256_hex(&bytes);
        let fanout = sandbox.load(
            "fanout",
            "fanout",
            &bytes,
            &digest,
            weir_host::gate::Rules::new("fanout", policy, &weir_host::metrics::Metrics::new()),
        )?;
        Ok((sandbox, fanout))
    }

    /// 1b. The sandbox's own share of a call: `fanout` against a gateway
    /// that answers at once, no server — guest, wasmtime and host glue.
    async fn sandbox_overhead(&mut self) -> Result<()> {
        /// Answers at once, or after giving the scheduler one turn (as a
        /// real call does while the server works).
        struct Instant_(bool);
        impl weir_host::ToolGateway for Instant_ {
            fn call_tool<'a>(
                &'a self,
                _caller: &'a weir_host::gateway::Caller,
                _server: &'a str,
                _tool: &'a str,
                _arguments: Option<weir_host::gateway::Arguments>,
            ) -> futures::future::BoxFuture<'a, Result<String, weir_host::CallError>> {
                let yield_once = self.0;
                Box::pin(async move {
                    if yield_once {
                        tokio::task::yield_now().await;
                    }
                    Ok(r#"{"content":[{"type":"text","text":"Echo: hi"}]}"#.to_owned())
                })
            }
            fn list_tools<'a>(
                &'a self,
                _caller: &'a weir_host::gateway::Caller,
            ) -> futures::future::BoxFuture<'a, Vec<weir_host::ToolInfo>> {
                Box::pin(async { Vec::new() })
            }
        }
        let n = if self.quick { 20_000 } else { 200_000 };
        let (sandbox, fanout) = self.bare_sandbox()?;
        let job =
            json!({"server": "s", "tool": "echo", "arguments": {"message": "hi"}, "count": n})
                .to_string();
        for (yield_once, label) in [
            (false, "answered at once"),
            (true, "answered after one yield"),
        ] {
            let gateway: Arc<dyn weir_host::ToolGateway> = Arc::new(Instant_(yield_once));
            sandbox.run(&fanout, &job, gateway.clone()).await?;
            let t = Instant::now();
            sandbox.run(&fanout, &job, gateway).await?;
            let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            self.row(
                &format!("call-tool through the sandbox, no server, {label}"),
                format!("{us:.2} µs/call"),
                format!("{n} calls"),
            );
            self.json.insert(
                format!(
                    "sandbox_us_per_call_{}",
                    if yield_once { "yield" } else { "ready" }
                ),
                json!(us),
            );
        }
        Ok(())
    }

    /// 2. A session per call (the anti-pattern) vs weir's one session.
    async fn storm(&mut self, program: &Path) -> Result<()> {
        let k = if self.quick { 5 } else { 20 };
        let t = Instant::now();
        for _ in 0..k {
            let session = self.direct_session(program, &["stdio"]).await?;
            session.peer().call_tool(echo_hi()).await?;
            session.cancel().await?;
        }
        let storm_ms = t.elapsed().as_secs_f64() * 1e3 / k as f64;
        let weir = json!({"builtin": false, "default_policy": {"allow": ["*/*"], "max_calls_per_run": 1_000_000}});
        let host = self.host(
            "storm",
            weir,
            json!({"s": {"command": program, "args": ["stdio"]}}),
        )?;
        let fanout = host.load(&plugin("fanout"))?;
        let t = Instant::now();
        let n = 1000;
        host.run(
            &fanout,
            &json!({"server": "s", "tool": "echo", "arguments": {"message": "hi"}, "count": n})
                .to_string(),
        )
        .await?;
        let weir_ms = t.elapsed().as_secs_f64() * 1e3 / n as f64;
        let sessions = host.sessions().stats()[0].sessions_opened;
        self.row(
            "[everything] session per call (process + initialize)",
            format!("{storm_ms:.1} ms/call"),
            format!("{k} calls, {k} sessions"),
        );
        self.row(
            "[everything] weir, one persistent session",
            format!("{:.3} ms/call", weir_ms),
            format!(
                "{:.0}× faster; {n} calls (first includes the start), {sessions} session",
                storm_ms / weir_ms
            ),
        );
        self.json.insert(
            "storm".into(),
            json!({"session_per_call_ms": storm_ms, "weir_ms": weir_ms,
            "ratio": storm_ms / weir_ms, "storm_sessions": k, "weir_sessions": sessions}),
        );
        host.shutdown().await;
        Ok(())
    }

    /// 3. Instantiation per run, pooling vs on demand; compile vs cache.
    async fn instantiation(&mut self) -> Result<()> {
        let n = if self.quick { 500 } else { 5000 };
        let mut figures = serde_json::Map::new();
        for pooling in [true, false] {
            let weir = json!({"builtin": false, "instance_pool": pooling, "cache_dir": false});
            let host = self.host("inst", weir, json!({}))?;
            let testbed = host.load(&plugin("testbed"))?;
            for _ in 0..50 {
                host.run(&testbed, "env").await?;
            }
            let mut each = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                host.run(&testbed, "env").await?;
                each.push(t.elapsed());
            }
            each.sort();
            let (p50, p99) = (percentile(&each, 0.5), percentile(&each, 0.99));
            let label = if pooling {
                "pooling allocator"
            } else {
                "on-demand allocator"
            };
            self.row(
                &format!("run of an empty plugin (fresh store + instance), {label}"),
                format!("{:.1} µs", p50.as_secs_f64() * 1e6),
                format!("p50 of {n}; p99 {:.1} µs", p99.as_secs_f64() * 1e6),
            );
            figures.insert(
                label.into(),
                json!({"p50_us": p50.as_secs_f64() * 1e6, "p99_us": p99.as_secs_f64() * 1e6}),
            );
            // Instantiation alone: fresh store and instance from the
            // `InstancePre`, dropped without running; for a typical agent
            // (fanout, 0.25 MB) and a big one (testbed, 3.3 MB).
            for name in ["fanout", "testbed"] {
                let plugin = host.load(&plugin(name))?;
                let mut each = Vec::with_capacity(n);
                for _ in 0..n {
                    let t = Instant::now();
                    host.instantiate_only(&plugin).await?;
                    each.push(t.elapsed());
                }
                each.sort();
                let (p50, p99) = (percentile(&each, 0.5), percentile(&each, 0.99));
                self.row(
                    &format!("instantiation alone ({name}), {label}"),
                    format!("{:.1} µs", p50.as_secs_f64() * 1e6),
                    format!("p50 of {n}; p99 {:.1} µs", p99.as_secs_f64() * 1e6),
                );
                figures.insert(
                    format!("instantiation only, {name}, {label}"),
                    json!({"p50_us": p50.as_secs_f64() * 1e6, "p99_us": p99.as_secs_f64() * 1e6}),
                );
            }
            host.shutdown().await;
        }
        let cache = self.scratch.join("cache");
        let _ = std::fs::remove_dir_all(&cache);
        for (label, weir) in [
            (
                "cold load (compile)",
                json!({"builtin": false, "cache_dir": false}),
            ),
            (
                "load from the compile cache",
                json!({"builtin": false, "cache_dir": cache}),
            ),
        ] {
            let host = self.host("load", weir, json!({}))?;
            host.load(&plugin("testbed"))?; // fills the cache in the second case
            let mut each = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                host.load(&plugin("testbed"))?;
                each.push(t.elapsed());
            }
            each.sort();
            let ms = percentile(&each, 0.5).as_secs_f64() * 1e3;
            self.row(
                &format!("plugin {label} (testbed, 3.3 MB)"),
                format!("{ms:.1} ms"),
                "median of 5".into(),
            );
            figures.insert(label.into(), json!({"ms": ms}));
            host.shutdown().await;
        }
        self.json
            .insert("instantiation".into(), Value::Object(figures));
        Ok(())
    }

    /// Part 7, agents in Rust, Python and JavaScript side by side: what
    /// their components cost to build, compile, load and instantiate, and
    /// what a tool call costs from each, against a direct rmcp client's call
    /// on the same kind of session.
    async fn guests(&mut self, test_server: &Path) -> Result<()> {
        let (instances, runs, calls) = if self.quick {
            (100, 50, 300)
        } else {
            (500, 200, 2000)
        };
        let dir = self.scratch.join("guests");
        std::fs::create_dir_all(&dir)?;
        // (language, hello component, component making N echo calls)
        let mut guests = vec![(
            "Rust",
            PathBuf::from(plugin("hello")),
            PathBuf::from(plugin("fanout")),
            None::<f64>,
        )];
        for (language, hello, testbed, engine) in [
            (
                "Python",
                "plugins/hello-py",
                "tests/plugins/testbed-py",
                None,
            ),
            (
                "JS, SpiderMonkey",
                "plugins/hello-ts",
                "tests/plugins/testbed-ts",
                Some("starlingmonkey"),
            ),
            (
                "JS, QuickJS",
                "plugins/hello-ts",
                "tests/plugins/testbed-ts",
                Some("quickjs"),
            ),
        ] {
            let out = dir.join(engine.unwrap_or("python"));
            let t = Instant::now();
            let hello = self.build_guest(hello, &out, engine)?;
            let build_s = t.elapsed().as_secs_f64();
            let testbed = self.build_guest(testbed, &out, engine)?;
            guests.push((language, hello, testbed, Some(build_s)));
        }
        let servers = json!({"s": {"command": test_server}});
        let policy = json!({"allow": ["*/*"], "max_calls_per_run": 1_000_000});
        let direct = self.direct_session(test_server, &[]).await?;
        let peer = direct.peer().clone();
        for _ in 0..calls {
            peer.call_tool(echo_hi()).await?;
        }
        let t = Instant::now();
        for _ in 0..calls {
            peer.call_tool(echo_hi()).await?;
        }
        let direct_us = t.elapsed().as_secs_f64() * 1e6 / calls as f64;
        self.row(
            "[guests] direct rmcp call, test server",
            format!("{direct_us:.1} µs/call"),
            format!("{calls} calls, for the per-call rows below"),
        );
        let mut figures = serde_json::Map::new();
        figures.insert("direct_us_per_call".into(), json!(direct_us));
        for (language, hello, caller, build_s) in guests {
            let size_mb = std::fs::metadata(&hello)?.len() as f64 / 1e6;
            let hello_s = hello.display().to_string();
            // Compile cold (no cache) — once for the big ones, it takes seconds.
            let cold = self.host(
                "guest-cold",
                json!({"builtin": false, "cache_dir": false}),
                json!({}),
            )?;
            let samples = if build_s.is_some() { 1 } else { 3 };
            let mut compile = Vec::new();
            for _ in 0..samples {
                let t = Instant::now();
                cold.load(&hello_s)?;
                compile.push(t.elapsed());
            }
            cold.shutdown().await;
            compile.sort();
            let compile_ms = percentile(&compile, 0.5).as_secs_f64() * 1e3;

            let cache = self.scratch.join(format!("cache-{}", figures.len()));
            let _ = std::fs::remove_dir_all(&cache);
            let weir = json!({"builtin": false, "cache_dir": cache, "default_policy": policy});
            let host = self.host("guest", weir, servers.clone())?;
            host.load(&hello_s)?; // fills the cache
            let mut loads = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                host.load(&hello_s)?;
                loads.push(t.elapsed());
            }
            loads.sort();
            let cached_ms = percentile(&loads, 0.5).as_secs_f64() * 1e3;

            let plugin = host.load(&hello_s)?;
            let mut each = Vec::with_capacity(instances);
            for _ in 0..instances {
                let t = Instant::now();
                host.instantiate_only(&plugin).await?;
                each.push(t.elapsed());
            }
            each.sort();
            let instantiate_us = percentile(&each, 0.5).as_secs_f64() * 1e6;

            let mut each = Vec::with_capacity(runs);
            for i in 0..runs + 10 {
                let t = Instant::now();
                let out = host.run(&plugin, "bench").await?;
                if out != "Hello, bench!" {
                    bail!("{language} hello: {out}");
                }
                if i >= 10 {
                    each.push(t.elapsed());
                }
            }
            each.sort();
            let run_us = percentile(&each, 0.5).as_secs_f64() * 1e6;

            let caller = host.load(&caller.display().to_string())?;
            let input = if build_s.is_some() {
                format!("calls:{calls}:s")
            } else {
                json!({"server": "s", "tool": "echo", "arguments": {"message": "hi"}, "count": calls})
                    .to_string()
            };
            host.run(&caller, &input).await?; // warm-up
            let t = Instant::now();
            let out: Value = serde_json::from_str(&host.run(&caller, &input).await?)?;
            let call_us = t.elapsed().as_secs_f64() * 1e6 / calls as f64;
            if out["ok"] != calls {
                bail!("{language} calls: {out}");
            }
            // The same call from the host, without a guest: what is left
            // of a guest's call is the guest's own share.
            let t = Instant::now();
            echo_from_host(&host, calls).await?;
            let host_us = t.elapsed().as_secs_f64() * 1e6 / calls as f64;
            host.shutdown().await;

            let build = build_s.map_or("cargo".to_owned(), |s| format!("{s:.1} s"));
            self.row(
                &format!("[{language}] component size / weir build"),
                format!("{size_mb:.1} MB"),
                format!("build: {build}"),
            );
            self.row(
                &format!("[{language}] load: compile cold / from the cache"),
                format!("{compile_ms:.0} ms"),
                format!("cached: {cached_ms:.1} ms"),
            );
            self.row(
                &format!("[{language}] instantiation alone (pooling)"),
                format!("{instantiate_us:.1} µs"),
                format!("p50 of {instances}"),
            );
            self.row(
                &format!("[{language}] run of hello (instantiate + 1 call)"),
                format!("{run_us:.0} µs"),
                format!("p50 of {runs}"),
            );
            self.row(
                &format!("[{language}] tool call from the agent"),
                format!("{call_us:.1} µs/call"),
                format!(
                    "{:.2}× direct; guest's share {:.1} µs (weir's call alone: {host_us:.1} µs)",
                    call_us / direct_us,
                    call_us - host_us
                ),
            );
            figures.insert(
                language.into(),
                json!({"size_mb": size_mb, "build_s": build_s, "compile_ms": compile_ms,
                    "cached_load_ms": cached_ms, "instantiate_us": instantiate_us,
                    "hello_run_us": run_us, "call_us": call_us, "host_call_us": host_us,
                    "call_vs_direct": call_us / direct_us}),
            );
        }
        direct.cancel().await?;
        self.json.insert("guests".into(), Value::Object(figures));
        Ok(())
    }

    /// Builds a Python or JS agent with `weir build` (componentize-py from
    /// bench/.venv, the JS SDK's tools from guest-sdk/js).
    fn build_guest(&self, source: &str, out: &Path, js_engine: Option<&str>) -> Result<PathBuf> {
        let built = std::process::Command::new(sibling("weir")?)
            .arg("build")
            .arg(self.root.join(source))
            .arg("--out")
            .arg(out)
            .args(js_engine.map(|e| ["--js-engine", e]).into_iter().flatten())
            .env(
                "WEIR_COMPONENTIZE_PY",
                self.root.join("bench/.venv/bin/componentize-py"),
            )
            .stdin(Stdio::null())
            .output()?;
        if !built.status.success() {
            bail!(
                "weir build {source}: {}",
                String::from_utf8_lossy(&built.stderr)
            );
        }
        let name = Path::new(source)
            .file_name()
            .context("plugin dir")?
            .to_string_lossy()
            .into_owned();
        Ok(out.join(format!("{name}.wasm")))
    }

    /// 4. Many concurrent runs × 10 calls on one session.
    async fn scale(&mut self) -> Result<()> {
        let sizes: &[usize] = if self.quick {
            &[100, 1000]
        } else {
            &[100, 1000, 10_000]
        };
        let server = sibling("weir-test-server")?;
        let mut figures = Vec::new();
        for &runs in sizes {
            let weir = json!({"builtin": false, "max_concurrent_runs": 1000,
                "default_policy": {"allow": ["*/*"], "max_concurrent_runs": 1000}});
            let host = Arc::new(self.host("scale", weir, json!({"test": {"command": server}}))?);
            let testbed = host.load(&plugin("testbed"))?;
            host.run(&testbed, "echo:warm:10").await?;
            reset_peak_rss();
            let t = Instant::now();
            let handles: Vec<_> = (0..runs)
                .map(|i| {
                    let (host, testbed) = (host.clone(), testbed.clone());
                    tokio::spawn(async move {
                        let started = Instant::now();
                        let out = host.run(&testbed, &format!("echo:r{i}:10")).await;
                        (started.elapsed(), out)
                    })
                })
                .collect();
            let mut latencies = Vec::with_capacity(runs);
            for h in handles {
                let (latency, out) = h.await?;
                if out? != "10 ok" {
                    bail!("a scale run returned a wrong answer");
                }
                latencies.push(latency);
            }
            let wall = t.elapsed();
            latencies.sort();
            let rate = (runs * 10) as f64 / wall.as_secs_f64();
            let sessions = host.sessions().stats()[0].sessions_opened;
            let rss = peak_rss_mib();
            self.row(
                &format!("{runs} concurrent runs × 10 calls (test server)"),
                format!("{rate:.0} calls/s"),
                format!(
                    "run p50 {:.1} ms, p99 {:.1} ms; {sessions} session; peak RSS {rss:.0} MiB",
                    percentile(&latencies, 0.5).as_secs_f64() * 1e3,
                    percentile(&latencies, 0.99).as_secs_f64() * 1e3
                ),
            );
            figures.push(
                json!({"runs": runs, "calls_per_s": rate, "sessions": sessions, "peak_rss_mib": rss,
                "p50_ms": percentile(&latencies, 0.5).as_secs_f64() * 1e3,
                "p99_ms": percentile(&latencies, 0.99).as_secs_f64() * 1e3}),
            );
            host.shutdown().await;
        }
        self.json.insert("scale".into(), Value::Array(figures));
        Ok(())
    }

    /// 5. The Python stack against the same server, if installed.
    async fn python(&mut self, program: &Path) -> Result<()> {
        let python = self.root.join("bench/.venv/bin/python");
        if !python.exists() {
            self.row(
                "Python stack",
                "skipped".into(),
                "bench/.venv missing: run scripts/bench".into(),
            );
            return Ok(());
        }
        let out = tokio::process::Command::new(python)
            .arg(self.root.join("bench/python_bench.py"))
            .arg(program)
            .arg(if self.quick { "quick" } else { "full" })
            .stderr(Stdio::inherit())
            .output()
            .await?;
        if !out.status.success() {
            bail!("python_bench.py failed: {}", out.status);
        }
        let results: Value = serde_json::from_slice(&out.stdout)?;
        for (key, label) in [
            ("mcp_sdk", "Python mcp SDK, one ClientSession"),
            (
                "langchain_session",
                "langchain-mcp-adapters, persistent session",
            ),
            (
                "langchain_get_tools",
                "langchain-mcp-adapters, get_tools() per call",
            ),
        ] {
            if let Some(r) = results.get(key) {
                self.row(
                    &format!("[everything] {label}"),
                    format!("{:.0} calls/s", r["calls_per_s"].as_f64().unwrap_or(0.0)),
                    format!(
                        "{:.3} ms/call, {} calls",
                        r["ms_per_call"].as_f64().unwrap_or(0.0),
                        r["calls"]
                    ),
                );
            }
        }
        if let (Some(weir), Some(sdk), Some(lc)) = (
            self.json
                .get("overhead_everything")
                .and_then(|o| o["plugin_us_per_call"].as_f64()),
            results
                .pointer("/mcp_sdk/ms_per_call")
                .and_then(Value::as_f64),
            results
                .pointer("/langchain_session/ms_per_call")
                .and_then(Value::as_f64),
        ) {
            let weir_ms = weir / 1e3;
            self.row(
                "weir vs Python mcp SDK (sequential)",
                format!("{:.1}×", sdk / weir_ms),
                String::new(),
            );
            self.row(
                "weir vs langchain persistent session (sequential)",
                format!("{:.1}×", lc / weir_ms),
                String::new(),
            );
        }
        self.json.insert("python".into(), results);
        Ok(())
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
    let _ = std::fs::remove_dir_all(&scratch);
    if let Some(out) = &args.out {
        bench.json.insert("table".into(), json!(bench.report));
        std::fs::write(&out, serde_json::to_vec_pretty(&Value::Object(bench.json))?)?;
        println!("\nJSON written to {}", out.display());
    }
    Ok(())
}
