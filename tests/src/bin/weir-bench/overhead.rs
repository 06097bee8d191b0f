//! The plugin overhead: `fanout` through weir vs a direct rmcp client (and
//! the sandbox's own share against a gateway that answers at once); the
//! `--profile` sides.

use super::*;

impl Bench {
    /// 1. Per-call latency and concurrent throughput, plugin vs direct.
    pub(super) async fn overhead(
        &mut self,
        server: &str,
        program: &Path,
        args: &[&str],
    ) -> Result<()> {
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

    /// `--profile SIDE`: one side of the overhead comparison alone, for a
    /// profiler to watch (`perf stat`, `perf record`): `plugin`, `gateway`
    /// (the session manager without a plugin) or `direct` (rmcp alone), N
    /// sequential calls to the test server's `echo`; or `xthread-plugin` /
    /// `xthread-gateway`, the same against a gateway another thread answers
    /// after 40 µs of work — the wake-up of a real call, without its pipes.
    /// Against the rmcp test server, or server-everything with
    /// `WEIR_BENCH_SERVER=everything`.
    pub(super) async fn profile(
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
                let (tx, rx) = std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<String>>();
                std::thread::spawn(move || {
                    while let Ok(reply) = rx.recv() {
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_micros(40) {
                            std::hint::spin_loop();
                        }
                        let _ = reply.send(fakes::ECHO_HI.to_owned());
                    }
                });
                let gateway: Arc<dyn weir_host::ToolGateway> = Arc::new(fakes::Remote(tx));
                let (sandbox, fanout) = self.bare_sandbox()?;
                let t = Instant::now();
                if side == "xthread-plugin" {
                    sandbox.run(&fanout, &job, gateway).await?;
                } else {
                    for _ in 0..n {
                        let args = json!({"message": "hi"}).to_string();
                        let args = weir_host::gateway::Arguments::parse(&args)?;
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
    pub(super) fn bare_sandbox(&self) -> Result<(weir_host::sandbox::Sandbox, weir_host::Plugin)> {
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
    pub(super) async fn sandbox_overhead(&mut self) -> Result<()> {
        let n = if self.quick { 20_000 } else { 200_000 };
        let (sandbox, fanout) = self.bare_sandbox()?;
        let job =
            json!({"server": "s", "tool": "echo", "arguments": {"message": "hi"}, "count": n})
                .to_string();
        for (yield_once, label) in [
            (false, "answered at once"),
            (true, "answered after one yield"),
        ] {
            let gateway: Arc<dyn weir_host::ToolGateway> = Arc::new(fakes::AtOnce(yield_once));
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
}
