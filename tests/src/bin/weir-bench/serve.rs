//! `weir serve`: an MCP client calling an agent through weir vs calling the
//! server directly, and many concurrent client calls.

use super::*;

impl Bench {
    /// 6. `weir serve`: an MCP client calling an agent through weir (each
    ///    tool call is one plugin run and one upstream call) vs the same
    ///    client calling the server directly; then many clients at once.
    pub(super) async fn serve(&mut self, test_server: &Path) -> Result<()> {
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
        let served = serve_stdio(&config, &["--plugins".as_ref(), dir.as_os_str()]).await?;
        let weir = served.peer().clone();
        let direct = self.direct_session(test_server, &[]).await?;
        let server = direct.peer().clone();

        let through_weir = |peer: Peer<RoleClient>| async move {
            let job =
                json!({"server": "s", "tool": "echo", "arguments": {"message": "hi"}, "count": 1});
            let result = peer.call_tool(call("fanout", job)).await?;
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
                weir.call_tool(call("testbed", json!({"input": "env"})))
                    .await?;
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
}
