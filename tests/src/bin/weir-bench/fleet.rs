//! The fleet: MCP calls through nginx over 1, 2 and 3 `weir serve`
//! replicas sharing one Redis, and what the fleet-wide rate limit costs a
//! call (with Redis, and the in-process limiter without it).

use std::process::Child;

use rmcp::model::ProtocolVersion;
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use weir_tests::rig::{Nginx, Redis, free_port, healthz, program, within};

use super::*;

/// A `weir serve --http` replica, killed when dropped.
struct Replica(Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Bench {
    /// 9. the fleet (needs Debian's nginx and redis-server; scripts/bench
    ///    installs them).
    pub(super) async fn fleet(&mut self, test_server: &Path) -> Result<()> {
        if program("nginx").is_none() || program("redis-server").is_none() {
            self.row(
                "[fleet] skipped",
                "-".into(),
                "nginx and redis-server are not installed (scripts/bench installs them)".into(),
            );
            return Ok(());
        }
        let (clients, window) = if self.quick {
            (16, Duration::from_secs(2))
        } else {
            (48, Duration::from_secs(6))
        };
        let dir = self.scratch.join("fleet");
        let plugins = dir.join("plugins");
        std::fs::create_dir_all(&plugins)?;
        std::fs::copy(plugin("testbed"), plugins.join("testbed.wasm"))?;
        let redis = Redis::start(&dir);
        let mut throughput = Vec::new();
        for replicas in 1..=3 {
            let ports: Vec<u16> = (0..replicas).map(|_| free_port()).collect();
            let mut running = Vec::new();
            for (i, port) in ports.iter().enumerate() {
                let weir = json!({"redis": redis.url(), "replica": format!("r{i}"), "builtin": false,
                                  "default_policy": {"allow": ["*/*"]}});
                running.push(self.replica(&dir, &plugins, test_server, weir, *port)?);
            }
            let nginx = Nginx::start(&dir.join(format!("nginx-{replicas}")), &ports);
            let rate = load(&format!("http://{}/mcp", nginx.addr()), clients, window).await?;
            drop(nginx);
            drop(running);
            self.row(
                &format!("[fleet] {replicas} replica(s) behind nginx, {clients} clients"),
                format!("{rate:.0} calls/s"),
                format!(
                    "{:.0} calls/s per replica; all on this machine's 2 cores",
                    rate / replicas as f64
                ),
            );
            throughput.push(rate);
        }
        let one = throughput[0];
        self.row(
            "[fleet] on paper, a replica per node: N replicas",
            format!("≈ N × {one:.0} calls/s"),
            "replicas share nothing per call but Redis (one round trip, limited plugins only)"
                .into(),
        );

        // The rate limit's cost: the same sequential calls through a plugin
        // limited far above what it reaches, the bucket in process vs on
        // Redis, and unlimited; alternating rounds.
        let n = if self.quick { 300 } else { 2000 };
        let limited = json!({"testbed": {"calls_per_second": 1_000_000}});
        let sides = [
            ("no limit", json!({"builtin": false})),
            (
                "in-process limit",
                json!({"builtin": false, "plugins": limited}),
            ),
            (
                "fleet-wide limit on Redis",
                json!({"builtin": false, "plugins": limited, "redis": redis.url()}),
            ),
        ];
        let mut sessions = Vec::new();
        let mut running = Vec::new();
        for (i, (_, weir)) in sides.iter().enumerate() {
            let mut weir = weir.clone();
            weir["default_policy"] = json!({"allow": ["*/*"]});
            weir["replica"] = json!(format!("cost{i}"));
            let port = free_port();
            running.push(self.replica(&dir, &plugins, test_server, weir, port)?);
            sessions.push(connect(&format!("http://127.0.0.1:{port}/mcp")).await?);
        }
        for session in &sessions {
            for _ in 0..n / 10 {
                echo_through(session.peer()).await?;
            }
        }
        let mut per_call = vec![Vec::new(); sides.len()];
        for round in 0..4 {
            for k in 0..sides.len() {
                let side = (k + round) % sides.len();
                let t = Instant::now();
                for _ in 0..n / 4 {
                    echo_through(sessions[side].peer()).await?;
                }
                per_call[side].push(t.elapsed().as_secs_f64() * 1e6 / (n / 4) as f64);
            }
        }
        let us: Vec<f64> = per_call.into_iter().map(median).collect();
        for (i, (name, _)) in sides.iter().enumerate() {
            self.row(
                &format!("[fleet] a call through a plugin, {name}"),
                format!("{:.1} µs/call", us[i]),
                if i == 0 {
                    "HTTP, one client, sequential".into()
                } else {
                    format!("{:+.1} µs over no limit", us[i] - us[0])
                },
            );
        }
        for session in sessions {
            session.cancel().await?;
        }
        drop(running);
        self.json.insert(
            "fleet".into(),
            json!({"clients": clients, "calls_per_s_by_replicas": throughput,
                   "us_per_call_no_limit": us[0], "us_per_call_local_limit": us[1],
                   "us_per_call_redis_limit": us[2]}),
        );
        Ok(())
    }

    /// `weir serve --http 127.0.0.1:PORT` with these `weir` settings, the
    /// test server as `test`; returns once it answers `/healthz`.
    fn replica(
        &self,
        dir: &Path,
        plugins: &Path,
        test_server: &Path,
        weir: Value,
        port: u16,
    ) -> Result<Replica> {
        let config = dir.join(format!("replica-{port}.json"));
        std::fs::write(
            &config,
            json!({"mcpServers": {"test": {"command": test_server}}, "weir": weir}).to_string(),
        )?;
        let child = std::process::Command::new(sibling("weir")?)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--plugins")
            .arg(plugins)
            .args(["--http", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let replica = Replica(child);
        let addr = format!("127.0.0.1:{port}");
        if !within(Duration::from_secs(60), || healthz(&addr)) {
            bail!("weir serve on {addr} did not come up");
        }
        Ok(replica)
    }
}

/// A 2026-07-28 (stateless) rmcp client session on `url`.
async fn connect(url: &str) -> Result<RunningService<RoleClient, ()>> {
    // rmcp's HTTP client is built on rustls without a provider of its own;
    // a second install is refused harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let transport = StreamableHttpClientTransport::from_uri(url.to_owned());
    let mode = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    Ok(().serve_with_lifecycle(transport, mode).await?)
}

/// One call of the `testbed` plugin, which calls the test server's `echo`.
async fn echo_through(peer: &Peer<RoleClient>) -> Result<()> {
    let input = r#"call:test:echo:{"message":"hi"}"#;
    let result = peer
        .call_tool(call("testbed", json!({"input": input})))
        .await?;
    let text = result.content.first().and_then(|c| c.as_text());
    if text.map(|t| t.text.as_str()) != Some("ok:hi") {
        bail!("a call through the fleet answered {text:?}");
    }
    Ok(())
}

/// `clients` sessions calling as fast as they are answered, for `window`
/// after a warm-up: calls a second.
async fn load(url: &str, clients: usize, window: Duration) -> Result<f64> {
    let mut sessions = Vec::new();
    for _ in 0..clients {
        sessions.push(connect(url).await?);
    }
    let calls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for session in &sessions {
        let peer = session.peer().clone();
        let (calls, counting, stop) = (calls.clone(), counting.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                echo_through(&peer).await?;
                if counting.load(std::sync::atomic::Ordering::Relaxed) {
                    calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    tokio::time::sleep(window / 3).await;
    counting.store(true, std::sync::atomic::Ordering::Relaxed);
    let t = Instant::now();
    tokio::time::sleep(window).await;
    let done = calls.load(std::sync::atomic::Ordering::Relaxed);
    let elapsed = t.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    for session in sessions {
        session.cancel().await?;
    }
    Ok(done as f64 / elapsed)
}
