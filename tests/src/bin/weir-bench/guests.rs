//! Guests: agents in Rust, Python and JavaScript side by side — build,
//! compile, cached load, instantiation, a run, a tool call.

use super::*;

impl Bench {
    /// Part 7, agents in Rust, Python and JavaScript side by side: what
    /// their components cost to build, compile, load and instantiate, and
    /// what a tool call costs from each, against a direct rmcp client's call
    /// on the same kind of session.
    pub(super) async fn guests(&mut self, test_server: &Path) -> Result<()> {
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
    pub(super) fn build_guest(
        &self,
        source: &str,
        out: &Path,
        js_engine: Option<&str>,
    ) -> Result<PathBuf> {
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
}
