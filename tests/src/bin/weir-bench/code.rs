//! Code mode: what a model must read (`tools/list` bytes, pass-through vs
//! code mode), one task of 20 tool calls (20 client round trips vs one
//! script, sequential and with `Promise.all`), an empty execution's cost
//! (through `weir serve`, in-process, instantiation alone) — and the
//! peers' mechanisms on the same scripts against the same server: a fresh
//! V8 isolate (npm isolated-vm) and a fresh Deno process (npm deno) per
//! execution, run by `bench/peers/harness.mjs` in the same run.

use super::*;

use rmcp::service::RunningService;
use weir_host::code::CodeMode;

/// Calls in the task.
const TASK_CALLS: usize = 20;

/// The task as the model would write it, one call after another: `CALLS`
/// is the list of `[server, tool, args]`; it returns each result's text.
const TASK_SEQUENTIAL: &str = "const out = [];\n\
     for (const [server, tool, args] of CALLS) out.push(await tools[server][tool](args));\n\
     return out.map((r) => (typeof r === 'string' ? r : r.content));";
/// The same task with the calls awaited together.
const TASK_ALL: &str = "const out = await Promise.all(CALLS.map(([server, tool, args]) => tools[server][tool](args)));\n\
     return out.map((r) => (typeof r === 'string' ? r : r.content));";

/// One task of [`TASK_CALLS`] calls on one server, and what each answers.
struct Task {
    label: &'static str,
    server: &'static str,
    entry: Value,
    tool: &'static str,
    args: Vec<Value>,
    answers: Vec<String>,
}

impl Task {
    /// The script's `CALLS`, then `body`.
    fn script(&self, body: &str) -> String {
        let calls: Vec<Value> = self
            .args
            .iter()
            .map(|a| json!([self.server, self.tool, a]))
            .collect();
        format!("const CALLS = {};\n{body}", Value::Array(calls))
    }
}

/// Bytes of the `tools/list` answer (every page) a client gets.
async fn listing_bytes(peer: &Peer<RoleClient>) -> Result<(usize, usize)> {
    let tools = peer.list_all_tools().await?;
    let bytes = serde_json::to_vec(&json!({ "tools": tools }))?.len();
    Ok((tools.len(), bytes))
}

/// The text of a tool result, failing on an error result.
fn result_text(result: &rmcp::model::CallToolResult, what: &str) -> Result<String> {
    let text: String = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.as_str()))
        .collect::<Vec<_>>()
        .join("\n");
    if result.is_error == Some(true) {
        bail!("{what} failed: {text}");
    }
    Ok(text)
}

/// `execute_code` of `code`; its value, checked to be JSON.
async fn execute(peer: &Peer<RoleClient>, code: &str) -> Result<Value> {
    let result = peer
        .call_tool(call("execute_code", json!({ "code": code })))
        .await?;
    let text = result_text(&result, "execute_code")?;
    let value = text.split("\nconsole:").next().unwrap_or("");
    serde_json::from_str(value).with_context(|| format!("execute_code answered {text:?}"))
}

impl Bench {
    /// 8. Code mode, beside pass-through and beside the peers.
    pub(super) async fn code_mode(&mut self, everything: &Path, test_server: &Path) -> Result<()> {
        let mut figures = serde_json::Map::new();
        self.code_listing(everything, test_server, &mut figures)
            .await?;
        let tasks = self.tasks(test_server)?;
        for task in &tasks {
            self.code_task(task, &mut figures).await?;
        }
        self.code_empty_served(test_server, &mut figures).await?;
        self.code_empty(&mut figures).await?;
        self.code_peers(&tasks[0], &mut figures).await?;
        self.json.insert("code_mode".into(), Value::Object(figures));
        Ok(())
    }

    fn filesystem_server(&self, docs: &Path) -> Value {
        let server = self
            .root
            .join("tests/npm/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
        json!({"command": "node", "args": [server, docs]})
    }

    /// The tasks: 20 reads of files (server-filesystem), and 20 calls of
    /// a tool that takes 10 ms, like a remote API (the test server's `nap`).
    fn tasks(&self, test_server: &Path) -> Result<Vec<Task>> {
        let docs = self.scratch.join("code-docs");
        std::fs::create_dir_all(&docs)?;
        let (mut args, mut answers) = (Vec::new(), Vec::new());
        for i in 0..TASK_CALLS {
            let text = format!("note {i}\n{}", "a line of notes\n".repeat(20 + 3 * i));
            let path = docs.join(format!("note-{i:02}.txt"));
            std::fs::write(&path, &text)?;
            args.push(json!({ "path": path }));
            answers.push(text);
        }
        Ok(vec![
            Task {
                label: "20 reads (server-filesystem)",
                server: "fs",
                entry: self.filesystem_server(&docs),
                tool: "read_text_file",
                args,
                answers,
            },
            Task {
                label: "20 calls of a 10 ms tool (test server's nap)",
                server: "test",
                entry: json!({ "command": test_server }),
                tool: "nap",
                args: vec![json!({"ms": 10}); TASK_CALLS],
                answers: vec!["napped 10".into(); TASK_CALLS],
            },
        ])
    }

    /// `tools/list` bytes the model reads: pass-through vs code mode, for
    /// the test servers together and for one synthetic 200-tool server.
    async fn code_listing(
        &mut self,
        everything: &Path,
        test_server: &Path,
        figures: &mut serde_json::Map<String, Value>,
    ) -> Result<()> {
        let time = self.root.join("tests/py/.venv/bin/mcp-server-time");
        if !time.exists() {
            bail!(
                "{} is missing: scripts/bench installs tests/py/requirements.txt",
                time.display()
            );
        }
        let docs = self.scratch.join("code-listing-docs");
        std::fs::create_dir_all(&docs)?;
        let setups = [
            (
                "builtin + everything + filesystem + time",
                json!({
                    "everything": {"command": everything, "args": ["stdio"]},
                    "fs": self.filesystem_server(&docs),
                    "time": {"command": time, "args": ["--local-timezone", "UTC"]},
                }),
                true,
            ),
            (
                "a server with 200 more tools (the test server's synthetic ones)",
                json!({"big": {"command": test_server, "env": {"WEIR_TEST_SYNTHETIC_TOOLS": "200"}}}),
                false,
            ),
        ];
        for (label, servers, builtin) in setups {
            let passing = self
                .serve_servers("code-listing", servers.clone(), false, builtin)
                .await?;
            let (upstream_tools, upstream) = listing_bytes(passing.peer()).await?;
            passing.cancel().await?;
            let coding = self
                .serve_servers("code-listing", servers, true, builtin)
                .await?;
            let (_, code) = listing_bytes(coding.peer()).await?;
            coding.cancel().await?;
            let smaller = 100.0 * (1.0 - code as f64 / upstream as f64);
            self.row(
                &format!("[code] tools/list bytes, {label}"),
                format!("{upstream} → {code} B"),
                format!(
                    "{upstream_tools} tools passed through vs code mode's 3: {smaller:.1}% smaller"
                ),
            );
            figures.insert(
                format!("tools/list bytes, {label}"),
                json!({"pass_through_tools": upstream_tools, "pass_through_bytes": upstream,
                       "code_mode_bytes": code, "percent_smaller": smaller}),
            );
        }
        Ok(())
    }

    /// A `weir serve` of `servers` (and the built-in one if `builtin`) over
    /// stdio: passing their tools through, or in code mode (granted every
    /// tool either way).
    async fn serve_servers(
        &self,
        name: &str,
        servers: Value,
        code_mode: bool,
        builtin: bool,
    ) -> Result<RunningService<RoleClient, ()>> {
        let config = self.scratch.join(format!("{name}.json"));
        let weir = if code_mode {
            // All 20 of a task's calls in flight at once, as the peers
            // have them (the default lets 16 of a batch out together).
            json!({"builtin": builtin,
                   "code_mode": {"enabled": true, "allow": ["*/*"], "max_parallel_calls": 32}})
        } else {
            json!({"builtin": builtin, "expose_upstream_tools": true,
                   "default_policy": {"allow": ["*/*"]}})
        };
        std::fs::write(
            &config,
            json!({"mcpServers": servers, "weir": weir}).to_string(),
        )?;
        if code_mode {
            return serve_stdio(&config, &[]).await;
        }
        let plugins = self.scratch.join("code-no-plugins");
        std::fs::create_dir_all(&plugins)?;
        serve_stdio(&config, &["--plugins".as_ref(), plugins.as_os_str()]).await
    }

    /// One task: its calls as client `tools/call`s through pass-through vs
    /// one `execute_code` making them (in turn, and with `Promise.all`).
    async fn code_task(
        &mut self,
        task: &Task,
        figures: &mut serde_json::Map<String, Value>,
    ) -> Result<()> {
        let rounds = if self.quick { 5 } else { 30 };
        let servers = json!({ task.server: task.entry });
        let passing = self
            .serve_servers("code-task-pass", servers.clone(), false, false)
            .await?;
        let coding = self
            .serve_servers("code-task-code", servers, true, false)
            .await?;
        let (pass_peer, code_peer) = (passing.peer().clone(), coding.peer().clone());
        let expected = json!(task.answers);
        let sequential = task.script(TASK_SEQUENTIAL);
        let together = task.script(TASK_ALL);
        let name = format!("{}.{}", task.server, task.tool);

        let round_trips = || async {
            let mut got = Vec::new();
            for args in &task.args {
                let result = pass_peer.call_tool(call(&name, args.clone())).await?;
                got.push(result_text(&result, &name)?);
            }
            if json!(got) != expected {
                bail!("pass-through answered {got:?}, not {expected}");
            }
            Ok::<_, anyhow::Error>(())
        };
        let script = |code: String| {
            let peer = code_peer.clone();
            let expected = expected.clone();
            async move {
                let value = execute(&peer, &code).await?;
                if value != expected {
                    bail!("the script returned {value}, not {expected}");
                }
                Ok::<_, anyhow::Error>(())
            }
        };
        // Warm-up: node's JIT on the server side, the caches here.
        for _ in 0..3 {
            round_trips().await?;
            script(sequential.clone()).await?;
            script(together.clone()).await?;
        }
        let (mut trips_ms, mut seq_ms, mut all_ms) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t = Instant::now();
            round_trips().await?;
            trips_ms.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            script(sequential.clone()).await?;
            seq_ms.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            script(together.clone()).await?;
            all_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        passing.cancel().await?;
        coding.cancel().await?;
        let (trips, seq, all) = (median(trips_ms), median(seq_ms), median(all_ms));
        self.row(
            &format!("[code] {}: 20 client tools/call", task.label),
            format!("{trips:.2} ms"),
            format!("median of {rounds}; pass-through, one round trip each"),
        );
        self.row(
            "[code]   the same as one execute_code, calls in turn",
            format!("{seq:.2} ms"),
            format!("{:.1}× faster than 20 round trips", trips / seq),
        );
        self.row(
            "[code]   the same as one execute_code, Promise.all",
            format!("{all:.2} ms"),
            format!("{:.1}× faster than 20 round trips", trips / all),
        );
        figures.insert(
            format!("task: {}", task.label),
            json!({"client_round_trips_ms": trips, "execute_sequential_ms": seq,
                   "execute_promise_all_ms": all, "speedup_sequential": trips / seq,
                   "speedup_promise_all": trips / all}),
        );
        Ok(())
    }

    /// An empty script through `weir serve`: the whole hop, client to
    /// answer.
    async fn code_empty_served(
        &mut self,
        test_server: &Path,
        figures: &mut serde_json::Map<String, Value>,
    ) -> Result<()> {
        let n = if self.quick { 300 } else { 3000 };
        let coding = self
            .serve_servers(
                "code-empty-serve",
                json!({"test": {"command": test_server}}),
                true,
                false,
            )
            .await?;
        let peer = coding.peer().clone();
        for _ in 0..50 {
            execute(&peer, "").await?;
        }
        let mut each = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            execute(&peer, "").await?;
            each.push(t.elapsed());
        }
        coding.cancel().await?;
        let figure = self.latency_row("[code] empty execute_code through weir serve (stdio)", each);
        figures.insert("empty execute_code via serve".into(), figure);
        Ok(())
    }

    /// An empty script in-process (fresh instance + run), and the
    /// runtime's instantiation alone.
    async fn code_empty(&mut self, figures: &mut serde_json::Map<String, Value>) -> Result<()> {
        let n = if self.quick { 500 } else { 5000 };
        let host = self.host(
            "code-empty",
            json!({"builtin": false, "code_mode": {"allow": []}}),
            json!({}),
        )?;
        let t = Instant::now();
        let code = CodeMode::prepare(&host, weir_app::CODE_RUNTIME).await?;
        let prepared_ms = t.elapsed().as_secs_f64() * 1e3;
        for _ in 0..100 {
            code.execute(&host, "").await.result?;
        }
        let mut runs = Vec::with_capacity(n);
        let mut instantiations = Vec::with_capacity(n);
        for _ in 0..n {
            let t = Instant::now();
            code.execute(&host, "").await.result?;
            runs.push(t.elapsed());
            let t = Instant::now();
            host.instantiate_only(code.runtime()).await?;
            instantiations.push(t.elapsed());
        }
        for (label, key, each) in [
            (
                "[code] empty execution in-process (instantiate + run)",
                "empty execution in-process",
                runs,
            ),
            (
                "[code] the runtime's instantiation alone",
                "runtime instantiation",
                instantiations,
            ),
        ] {
            let figure = self.latency_row(label, each);
            figures.insert(key.into(), figure);
        }
        self.row(
            "[code] runtime prepared at start (from the compile cache)",
            format!("{prepared_ms:.1} ms"),
            "pre-initialized + compiled once, then cached".into(),
        );
        figures.insert("prepare_ms".into(), json!(prepared_ms));
        host.shutdown().await;
        Ok(())
    }

    /// The peers' executors on the same scripts, against the same
    /// server-filesystem, by `bench/peers/harness.mjs`.
    async fn code_peers(
        &mut self,
        task: &Task,
        figures: &mut serde_json::Map<String, Value>,
    ) -> Result<()> {
        let harness = self.root.join("bench/peers/harness.mjs");
        if !self
            .root
            .join("bench/peers/node_modules/isolated-vm")
            .exists()
        {
            bail!(
                "bench/peers is not installed: run `npm ci --prefix bench/peers` (scripts/bench does)"
            );
        }
        let (isolates, denos, rounds) = if self.quick {
            (200, 10, 5)
        } else {
            (2000, 50, 30)
        };
        let input = json!({
            "server": task.entry,
            "empty": {"isolate": isolates, "deno": denos},
            "rounds": rounds,
            "scripts": {
                "sequential": task.script(TASK_SEQUENTIAL),
                "promise_all": task.script(TASK_ALL),
            },
        });
        let out = tokio::process::Command::new("node")
            .arg(&harness)
            .arg(input.to_string())
            .stderr(Stdio::inherit())
            .output()
            .await?;
        if !out.status.success() {
            bail!("{} failed ({})", harness.display(), out.status);
        }
        let report: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("{} printed no JSON", harness.display()))?;
        let expected = json!(task.answers);
        let weir = figures.clone();
        for (key, label) in [
            ("isolate", "a fresh V8 isolate (isolated-vm)"),
            ("deno", "a fresh Deno process"),
        ] {
            let peer = &report[key];
            for script in ["sequential", "promise_all"] {
                if peer["scripts"][script]["value"] != expected {
                    bail!(
                        "{label} answered {} for {script}",
                        peer["scripts"][script]["value"]
                    );
                }
            }
            let p50 = peer["empty_p50_us"].as_f64().unwrap_or(f64::NAN);
            let p99 = peer["empty_p99_us"].as_f64().unwrap_or(f64::NAN);
            let ours = weir["empty execution in-process"]["p50_us"]
                .as_f64()
                .unwrap_or(f64::NAN);
            self.row(
                &format!("[code] empty execution, {label}"),
                format!("{p50:.1} µs"),
                format!(
                    "p50; p99 {p99:.1} µs; weir in-process is {:.1}× faster",
                    p50 / ours
                ),
            );
            let seq = peer["scripts"]["sequential"]["median_ms"]
                .as_f64()
                .unwrap_or(f64::NAN);
            let all = peer["scripts"]["promise_all"]["median_ms"]
                .as_f64()
                .unwrap_or(f64::NAN);
            self.row(
                &format!("[code] {}, {label}: in turn / Promise.all", task.label),
                format!("{seq:.2} / {all:.2} ms"),
                format!("median of {rounds}; same server, one MCP session"),
            );
            figures.insert(
                format!("peer: {label}"),
                json!({"empty_p50_us": p50, "empty_p99_us": p99,
                       "task_sequential_ms": seq, "task_promise_all_ms": all}),
            );
        }
        Ok(())
    }
}
