//! `weir serve` against real MCP clients: the Python `mcp` SDK over stdio
//! and HTTP, the MCP Inspector CLI, and an rmcp client watching hot
//! reload. Every upstream call lands on the test server, whose session log
//! counts the sessions weir opened.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{Value, json};
use support::serve::{Served, install, plugins_dir, raw_http, serve_args};
use support::{Scratch, WEIR, alive, eventually, python, wait_for};

fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("py/serve_client.py")
}

/// Runs the Python client; returns its JSON report.
fn run_client(args: &[String]) -> Value {
    let out = Command::new(python())
        .arg(client_script())
        .args(args)
        .output()
        .expect("run the Python MCP client");
    assert!(
        out.status.success(),
        "the Python client failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "client output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn load_args(extra: &[&str]) -> Vec<String> {
    ["--server", "test", "--calls", "200", "--concurrency", "50"]
        .iter()
        .chain(extra)
        .map(|s| (*s).to_owned())
        .collect()
}

/// Checks the 200-call load came back right and the test server saw one
/// session for all of it.
fn assert_load(report: &Value, scratch: &Scratch) {
    let tools: Vec<&str> = report["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(tools, ["fanout", "hello"], "{report}");
    assert_eq!(
        report["fanout_schema"]["required"],
        json!(["server", "tool", "count"]),
        "the manifest's schema is the tool's input schema"
    );
    assert_eq!(report["calls"], 200, "{report}");
    assert_eq!(report["correct"], 200, "{report}");
    assert_eq!(
        scratch.sessions().len(),
        1,
        "50 concurrent client tasks × 200 runs × 3 calls: one upstream session"
    );
}

/// The Python SDK over stdio: 200 `fanout` calls from 50 tasks, all right,
/// one upstream session; weir exits when the client hangs up, leaving no
/// server behind.
#[test]
fn python_sdk_over_stdio() {
    let scratch = Scratch::new("serve-stdio");
    let plugins = plugins_dir(&scratch, &["fanout", "hello"]);
    let mut args = load_args(&["stdio", "--", WEIR]);
    args.extend(serve_args(&scratch, &plugins));
    let report = run_client(&args);
    assert_load(&report, &scratch);
    let pid = scratch.sessions()[0];
    assert!(
        wait_for(Duration::from_secs(20), || !alive(pid)),
        "the test server is gone once the client hung up"
    );
}

/// The Python SDK over streamable HTTP, then `/metrics` read with the
/// reference parser: its counters are what the load did. Requests from
/// another origin are refused; SIGTERM stops weir cleanly.
#[test]
fn python_sdk_over_http_with_metrics() {
    let scratch = Scratch::new("serve-http");
    let plugins = plugins_dir(&scratch, &["fanout", "hello"]);
    let served = Served::start(&scratch, &plugins);
    let mut args = load_args(&["--metrics", &served.metrics_url()]);
    args.extend(["http".to_owned(), served.mcp_url()]);
    let report = run_client(&args);
    assert_load(&report, &scratch);

    let metrics = &report["metrics"];
    assert!(
        metrics["content_type"]
            .as_str()
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{metrics}"
    );
    let sample = |key: &str| metrics["samples"][key].as_f64().unwrap_or(-1.0);
    assert_eq!(
        sample("weir_plugin_runs_total{outcome=ok,plugin=fanout}"),
        200.0
    );
    assert_eq!(sample("weir_plugin_runs_in_flight{plugin=fanout}"), 0.0);
    assert_eq!(
        sample("weir_plugin_run_duration_seconds_count{plugin=fanout}"),
        200.0
    );
    assert_eq!(
        sample("weir_tool_calls_total{server=test,tool=echo}"),
        600.0
    );
    assert_eq!(
        sample("weir_tool_call_duration_seconds_count{server=test,tool=echo}"),
        600.0
    );
    assert_eq!(
        sample("weir_upstream_sessions_opened_total{server=test}"),
        1.0
    );
    assert_eq!(sample("weir_upstream_restarts_total{server=test}"), 0.0);
    assert_eq!(sample("weir_upstream_sessions_live{server=test}"), 1.0);
    assert!(sample("weir_upstream_session_age_seconds{server=test}") > 0.0);
    assert_eq!(sample("weir_plugin_denials_total{plugin=fanout}"), 0.0);
    assert!(
        !metrics["samples"]
            .as_object()
            .expect("samples")
            .keys()
            .any(|k| k.starts_with("weir_tool_errors_total")),
        "no call failed"
    );

    // DNS rebinding: a page on another site reaching this port is refused.
    let addr = served.base.trim_start_matches("http://");
    for (header, path) in [
        ("Host: evil.example", "/metrics"),
        ("Origin: http://evil.example", "/mcp"),
    ] {
        let reply = raw_http(addr, path, header);
        assert!(reply.starts_with("HTTP/1.1 403"), "{header}: {reply}");
    }
    assert!(raw_http(addr, "/metrics", "Host: localhost").starts_with("HTTP/1.1 200"));

    let pid = scratch.sessions()[0];
    assert!(served.stop().success(), "SIGTERM is a clean stop");
    assert!(
        !alive(pid),
        "weir closed the upstream session on its way out"
    );
}

/// The MCP Inspector's CLI lists weir's tools and calls one.
#[test]
fn inspector_cli_lists_and_calls_a_plugin() {
    let scratch = Scratch::new("serve-inspector");
    let plugins = plugins_dir(&scratch, &["fanout", "hello"]);
    let inspector =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("npm/node_modules/.bin/mcp-inspector");
    assert!(
        inspector.exists(),
        "{} is missing: run `npm ci` in tests/npm (scripts/test does)",
        inspector.display()
    );
    // The Inspector has a --config of its own: weir's goes by environment.
    let config = scratch.config(json!({}), json!({}));
    let inspect = |method: &[&str]| {
        let out = Command::new(&inspector)
            .arg("--cli")
            .arg("-e")
            .arg(format!("WEIR_CONFIG={}", config.display()))
            .args([WEIR, "serve", "--plugins"])
            .arg(&plugins)
            .args(method)
            // Its catalog of servers goes to the scratch dir, not ~.
            .env("HOME", &scratch.dir)
            .env("MCP_CATALOG_PATH", scratch.dir.join("inspector.json"))
            .output()
            .expect("run the MCP Inspector");
        assert!(
            out.status.success(),
            "inspector {method:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
        })
    };
    let listed = inspect(&["--method", "tools/list"]);
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["fanout", "hello"]);
    let called = inspect(&[
        "--method",
        "tools/call",
        "--tool-name",
        "hello",
        "--tool-arg",
        "input=Inspector",
    ]);
    assert_eq!(called["isError"], false, "{called}");
    assert_eq!(called["content"][0]["text"], "Hello, Inspector!");
}

/// An rmcp client that counts `notifications/tools/list_changed`.
#[derive(Clone, Default)]
struct Watcher {
    changes: Arc<AtomicUsize>,
}

impl ClientHandler for Watcher {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("weir-serve-test", "0"),
        )
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changes.fetch_add(1, Ordering::SeqCst);
    }
}

/// Starts `weir serve` on stdio with `extra` arguments and connects `watcher`.
async fn connect(
    args: Vec<String>,
    watcher: Watcher,
) -> (RunningService<RoleClient, Watcher>, tokio::process::Child) {
    let (client, child, _log) = connect_logged(args, watcher).await;
    (client, child)
}

/// [`connect`], keeping weir's log (and passing it on to the test's
/// stderr).
async fn connect_logged(
    args: Vec<String>,
    watcher: Watcher,
) -> (
    RunningService<RoleClient, Watcher>,
    tokio::process::Child,
    support::mcp::Log,
) {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    let mut child = support::mcp::spawn_weir(&args, "weir_host=info");
    let stdout = child.stdout.take().expect("stdout");
    let stdin = child.stdin.take().expect("stdin");
    let log = support::mcp::keep_lines(child.stderr.take().expect("stderr"));
    let client = watcher
        .serve((stdout, stdin))
        .await
        .expect("initialize with weir serve");
    (client, child, log)
}

/// Ends the session, then waits (bounded) for weir to exit cleanly, as it
/// does when its stdio client hangs up.
async fn close_and_wait(
    client: RunningService<RoleClient, Watcher>,
    child: &mut tokio::process::Child,
) {
    client.cancel().await.expect("close the session");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("weir exits when its client hangs up")
        .expect("wait");
    assert!(status.success(), "{status}");
}

async fn tool_names(client: &RunningService<RoleClient, Watcher>) -> Vec<String> {
    client
        .peer()
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect()
}

async fn call(client: &RunningService<RoleClient, Watcher>, tool: &str, args: Value) -> String {
    support::mcp::call_text(client.peer(), tool, args).await
}

/// Calls `testbed` with `input` on a task of its own.
fn call_in_background(
    client: &RunningService<RoleClient, Watcher>,
    input: &str,
) -> tokio::task::JoinHandle<Result<rmcp::model::CallToolResult, rmcp::service::ServiceError>> {
    let peer = client.peer().clone();
    let params = CallToolRequestParams::new("testbed").with_arguments(
        json!({ "input": input })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    tokio::spawn(async move { peer.call_tool(params).await })
}

/// Whether the test server logs an event starting with `kind` (waiting up
/// to 30 s).
async fn server_saw(scratch: &Scratch, kind: &str) -> bool {
    eventually(Duration::from_secs(30), || async {
        scratch.events(kind) >= 1
    })
    .await
}

/// Hot reload: a plugin copied in is announced and callable; a garbage
/// version is refused and the old one keeps serving; a run in flight
/// finishes on its version while the file is removed; a removed plugin is
/// announced gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_follows_the_plugins_directory() {
    let scratch = Scratch::new("serve-reload");
    let plugins = plugins_dir(&scratch, &["hello", "testbed"]);
    let watcher = Watcher::default();
    let changes = watcher.changes.clone();
    let (client, mut child, log) = connect_logged(serve_args(&scratch, &plugins), watcher).await;
    assert_eq!(tool_names(&client).await, ["hello", "testbed"]);

    // Added: announced, listed, callable.
    install(&plugins, "fanout");
    assert!(
        eventually(Duration::from_secs(30), || async {
            changes.load(Ordering::SeqCst) >= 1
        })
        .await,
        "list_changed after a plugin was added"
    );
    assert_eq!(tool_names(&client).await, ["fanout", "hello", "testbed"]);
    let job = json!({"server": "test", "tool": "echo", "arguments": {"message": "x"}, "count": 2});
    assert_eq!(
        call(&client, "fanout", job.clone()).await,
        r#"{"calls":2,"errors":0,"ok":2}"#
    );

    // Garbage over it: refused, the old version serves on, nothing announced.
    std::fs::write(plugins.join("fanout.wasm"), b"\0asm garbage").expect("overwrite");
    // Refused: the log says so, naming the plugin.
    assert!(
        eventually(Duration::from_secs(30), || async {
            log.lock()
                .expect("log")
                .iter()
                .any(|l| l.contains("new version rejected") && l.contains("plugin=fanout"))
        })
        .await,
        "the garbage version was refused"
    );
    let before = changes.load(Ordering::SeqCst);
    install(&plugins, "hello");
    std::fs::write(
        plugins.join("hello.toml"),
        "description = \"Greets, version 2.\"\n",
    )
    .expect("new manifest");
    assert!(
        eventually(Duration::from_secs(30), || async {
            changes.load(Ordering::SeqCst) > before
        })
        .await,
        "list_changed after hello's manifest changed"
    );
    assert_eq!(
        call(&client, "fanout", job).await,
        r#"{"calls":2,"errors":0,"ok":2}"#,
        "the previous fanout keeps serving"
    );

    // A run in flight while its file is removed finishes on its version.
    let before = changes.load(Ordering::SeqCst);
    let slow = call_in_background(&client, "sleep:1500");
    assert!(
        server_saw(&scratch, "call sleep").await,
        "the slow run reached the server"
    );
    std::fs::remove_file(plugins.join("testbed.wasm")).expect("remove testbed");
    assert!(
        eventually(Duration::from_secs(30), || async {
            changes.load(Ordering::SeqCst) > before
        })
        .await,
        "list_changed after a plugin was removed"
    );
    assert_eq!(tool_names(&client).await, ["fanout", "hello"]);
    let result = slow
        .await
        .expect("task")
        .expect("the run in flight answers");
    assert_eq!(
        result.content[0].as_text().map(|t| t.text.as_str()),
        Some("ok:slept")
    );
    assert!(
        call(&client, "testbed", json!({"input": "echo:x"}))
            .await
            .contains("no tool named `testbed`")
    );

    close_and_wait(client, &mut child).await;
}

/// A client that hangs up in the middle of a call: the run is stopped, its
/// upstream call cancelled at the server, and weir exits leaving no
/// server process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_hanging_up_mid_call_stops_the_run() {
    let scratch = Scratch::new("serve-hangup");
    let plugins = plugins_dir(&scratch, &["testbed"]);
    let (client, mut child) = connect(serve_args(&scratch, &plugins), Watcher::default()).await;
    let call = call_in_background(&client, "call:test:hang:");
    assert!(
        server_saw(&scratch, "call hang").await,
        "the upstream call started"
    );
    let server_pid = scratch.sessions()[0];
    // Hang up: weir's stdin closes with the call in flight.
    drop(client);
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("weir exits after its client hung up")
        .expect("wait");
    assert!(status.success(), "{status}");
    assert_eq!(
        scratch.events("cancelled"),
        1,
        "the upstream call was cancelled at the server"
    );
    assert!(
        wait_for(Duration::from_secs(10), || !alive(server_pid)),
        "no server left"
    );
    call.abort();
}

/// Over HTTP, a client cancelling its call stops the run and cancels the
/// upstream call; the same session then serves the next call, and the
/// metrics count the run as cancelled.
#[test]
fn http_client_cancelling_a_call_stops_the_run() {
    let scratch = Scratch::new("serve-cancel");
    let plugins = plugins_dir(&scratch, &["testbed"]);
    let served = Served::start(&scratch, &plugins);
    let events = scratch.events_log().display().to_string();
    let report = run_client(&[
        "--server".into(),
        "test".into(),
        "--cancel-after".into(),
        events,
        "http".into(),
        served.mcp_url(),
    ]);
    assert_eq!(report["cancelled"], true, "{report}");
    assert_eq!(report["after"], "ok:after", "{report}");
    assert!(
        wait_for(Duration::from_secs(20), || scratch.events("cancelled") == 1),
        "the upstream call was cancelled at the server"
    );
    let metrics = raw_http(
        served.base.trim_start_matches("http://"),
        "/metrics",
        "Accept: */*",
    );
    for line in [
        "weir_plugin_runs_total{plugin=\"testbed\",outcome=\"cancelled\"} 1",
        "weir_plugin_runs_total{plugin=\"testbed\",outcome=\"ok\"} 1",
        "weir_plugin_runs_in_flight{plugin=\"testbed\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    assert_eq!(scratch.sessions().len(), 1);
    assert!(served.stop().success());
}

/// A 2026-07-28 client cancels by closing its request's response stream:
/// weir serve stops the run and cancels its upstream call, as for a
/// legacy client's `notifications/cancelled`.
#[test]
fn a_2026_client_closing_its_stream_cancels_the_run() {
    use std::io::Write;
    let scratch = Scratch::new("serve-cancel-2026");
    let plugins = plugins_dir(&scratch, &["testbed"]);
    let served = Served::start(&scratch, &plugins);
    let addr = served.addr();
    let call = support::serve::request_text_2026(
        &addr,
        "tools/call",
        Some("testbed"),
        json!({"name": "testbed", "arguments": {"input": "call:test:hang:"}}),
        "",
    );
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    stream.write_all(call.as_bytes()).expect("send the call");
    assert!(
        wait_for(Duration::from_secs(30), || scratch.events("call hang") == 1),
        "the upstream call started"
    );
    drop(stream);
    assert!(
        wait_for(Duration::from_secs(20), || scratch.events("hang-abandoned")
            == 1),
        "the upstream call was cancelled at the server"
    );
    let metrics = raw_http(&addr, "/metrics", "Accept: */*");
    let line = "weir_plugin_runs_total{plugin=\"testbed\",outcome=\"cancelled\"} 1";
    assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    assert!(served.stop().success());
}

/// A client that asks for progress gets reports while a slow run goes on,
/// each further along than the last.
#[test]
fn slow_runs_report_progress() {
    let scratch = Scratch::new("serve-progress");
    let plugins = plugins_dir(&scratch, &["testbed"]);
    let mut args: Vec<String> = [
        "--server",
        "test",
        "--progress",
        "2600",
        "stdio",
        "--",
        WEIR,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(serve_args(&scratch, &plugins));
    let report = run_client(&args);
    assert_eq!(report["result"], "ok:slept", "{report}");
    let progress = report["progress"].as_array().expect("progress list");
    assert!(progress.len() >= 2, "one report a second: {report}");
    let values: Vec<f64> = progress
        .iter()
        .filter_map(|p| p["progress"].as_f64())
        .collect();
    assert!(values.windows(2).all(|w| w[1] > w[0]), "{values:?}");
    assert!(
        progress[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("1 tool calls so far")),
        "{report}"
    );
}

/// The Python SDK's `Client` in each of its connect modes, over HTTP and
/// stdio: auto settles on 2026-07-28 (weir answers `server/discover`),
/// legacy on 2025-11-25 through `initialize`, a pinned 2026-07-28 on that;
/// on each the tools are listed and a plugin runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_in_every_mode_over_http_and_stdio() {
    let scratch = Scratch::new("serve-modes");
    let plugins = plugins_dir(&scratch, &["hello"]);
    let served = Served::start(&scratch, &plugins);
    let mut stdio = vec!["stdio".to_owned(), "--".to_owned(), WEIR.to_owned()];
    stdio.extend(serve_args(&scratch, &plugins));
    for transport in [vec!["http".to_owned(), served.mcp_url()], stdio] {
        let out = Command::new(python())
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("py/interop_client.py"))
            .args(["--tool", "hello", "--args", r#"{"input": "py"}"#])
            .args(["--mode", "auto", "--mode", "legacy", "--mode", "2026-07-28"])
            .args(&transport)
            .output()
            .expect("run the Python client");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{transport:?}: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let settled: Vec<(String, String)> = stdout
            .lines()
            .map(|line| {
                let report: Value = serde_json::from_str(line).expect("a JSON line");
                assert_eq!(report["text"], "Hello, py!", "{report}");
                assert_eq!(report["is_error"], false, "{report}");
                assert!(
                    report["tools"]
                        .as_array()
                        .is_some_and(|t| t.contains(&json!("hello"))),
                    "{report}"
                );
                (
                    report["mode"].as_str().unwrap_or_default().to_owned(),
                    report["protocol"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = [
            ("auto", "2026-07-28"),
            ("legacy", "2025-11-25"),
            ("2026-07-28", "2026-07-28"),
        ]
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
        assert_eq!(settled, want, "{transport:?}");
    }
}

/// An upstream server's request for input reaches the person at the MCP
/// client whose call it is (`"elicitation": "forward"`, weir serve's
/// default), and their answer goes back: a 2026-07-28 server's
/// `input_required` question (`test.ask`) and a 2025-11-25 server's
/// `elicitation/create` (`old.ask_legacy`), to a Python SDK client on
/// 2026-07-28 (weir answers it `input_required` in turn) and on 2025-11-25
/// (weir asks it on its session), over HTTP and stdio; through a plugin's
/// call too. A client that declared no elicitation is not asked: the
/// question is declined, and nothing hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_question_reaches_the_client_whose_call_it_is() {
    let scratch = Scratch::new("serve-ask");
    let plugins = plugins_dir(&scratch, &["testbed"]);
    let weir = json!({"expose_upstream_tools": true});
    let old = json!({"old": scratch.test_server(json!({"protocol": "2025-11-25"}))});
    let served = Served::start_with_env(&scratch, &plugins, weir.clone(), old.clone(), &[]);
    let config = scratch.config(weir, old);
    let stdio: Vec<String> = ["stdio", "--", WEIR, "serve", "--stdio", "--config"]
        .into_iter()
        .map(String::from)
        .chain([
            config.display().to_string(),
            "--plugins".into(),
            plugins.display().to_string(),
        ])
        .collect();
    let http = vec!["http".to_owned(), served.mcp_url()];
    let accepted = r#"answered: {"action":"accept","content":{"name":"Ada"}}"#;
    let declined = r#"answered: {"action":"decline"}"#;
    // (transport, tool, arguments, the name the person gives, the answer)
    let cases = [
        (&http, "test.ask", "{}", Some("Ada"), accepted),
        (&http, "old.ask_legacy", "{}", Some("Ada"), accepted),
        (&stdio, "test.ask", "{}", Some("Ada"), accepted),
        (&stdio, "old.ask_legacy", "{}", Some("Ada"), accepted),
        (&http, "test.ask", "{}", None, declined),
        (&http, "old.ask_legacy", "{}", None, declined),
        (
            &http,
            "testbed",
            r#"{"input": "call:test:ask:"}"#,
            Some("Ada"),
            accepted,
        ),
    ];
    for (transport, tool, arguments, elicit, want) in cases {
        let mut command = Command::new(python());
        command
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("py/interop_client.py"))
            .args(["--tool", tool, "--args", arguments])
            .args(["--mode", "auto", "--mode", "legacy"]);
        if let Some(name) = elicit {
            command.args(["--elicit", name]);
        }
        let out = command
            .args(transport)
            .output()
            .expect("run the Python client");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let case = format!("{tool} over {} asking {elicit:?}", transport[0]);
        assert!(
            out.status.success(),
            "{case}: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reports: Vec<Value> = stdout
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect();
        let protocols: Vec<&str> = reports
            .iter()
            .map(|r| r["protocol"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(protocols, ["2026-07-28", "2025-11-25"], "{case}");
        for report in &reports {
            let text = report["text"].as_str().unwrap_or_default();
            assert!(text.ends_with(want), "{case}: {report}");
            assert_eq!(report["is_error"], false, "{case}: {report}");
        }
    }
    assert!(served.stop().success());
}

/// `"upstream_tool_names": "bare"`: an upstream tool goes by its own name
/// where only one server has it and none of weir's own tools is called
/// that (`server.tool` otherwise, and always accepted); a server's -32021
/// (it needs a capability of its client) reaches a client lacking it as
/// that error, naming the capability; code mode's API is offered as
/// resources and its prompt as a prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_names_relayed_capability_errors_and_code_mode_documents() {
    let scratch = Scratch::new("serve-bare");
    let plugins = plugins_dir(&scratch, &["hello"]);
    let config = scratch.config(
        json!({
            "expose_upstream_tools": true,
            "upstream_tool_names": "bare",
            "default_policy": {"allow": ["test/*", "builtin/echo"]},
        }),
        json!({}),
    );
    let args: Vec<String> = ["serve", "--stdio", "--code-mode", "--config"]
        .into_iter()
        .map(String::from)
        .chain([
            config.display().to_string(),
            "--plugins".into(),
            plugins.display().to_string(),
        ])
        .collect();
    let (client, mut child) = connect(args, Watcher::default()).await;
    let names = tool_names(&client).await;
    for want in ["hello", "execute_code", "test_missing_capability", "sleep"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    // `echo` is on both servers: neither gets the bare name.
    assert!(names.iter().any(|n| n == "test.echo"), "{names:?}");
    assert!(names.iter().any(|n| n == "builtin.echo"), "{names:?}");
    assert!(!names.iter().any(|n| n == "echo"), "{names:?}");
    assert_eq!(
        call(&client, "test.echo", json!({"message": "prefixed"})).await,
        "prefixed"
    );
    assert!(
        call(&client, "pid", json!({})).await.parse::<u32>().is_ok(),
        "a bare name calls its tool"
    );

    let error = client
        .peer()
        .call_tool(CallToolRequestParams::new("test_missing_capability"))
        .await
        .expect_err("the client offers no sampling");
    let rmcp::ServiceError::McpError(error) = error else {
        panic!("not the server's error: {error}");
    };
    assert_eq!(
        error.code,
        rmcp::model::ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
    );
    assert!(error.message.contains("sampling"), "{}", error.message);
    assert_eq!(
        error
            .data
            .as_ref()
            .map(|d| d["requiredCapabilities"].clone()),
        Some(json!({"sampling": {}}))
    );

    let resources = client
        .peer()
        .list_resources(None)
        .await
        .expect("resources/list");
    let uris: Vec<&str> = resources.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["weir://code-mode/tools.d.ts"]);
    let read = |uri: &str| {
        client
            .peer()
            .read_resource(rmcp::model::ReadResourceRequestParams::new(uri))
    };
    let api = serde_json::to_string(&read("weir://code-mode/tools.d.ts").await.expect("read"))
        .expect("json");
    assert!(
        api.contains("test_missing_capability") && api.contains("declare const tools"),
        "{api}"
    );
    let one = serde_json::to_string(
        &read("weir://code-mode/servers/builtin.d.ts")
            .await
            .expect("read"),
    )
    .expect("json");
    assert!(
        one.contains("echo") && !one.contains("test_missing_capability"),
        "{one}"
    );
    let missing = read("weir://code-mode/servers/nope.d.ts").await;
    assert!(
        format!("{missing:?}").contains("no server `nope`"),
        "{missing:?}"
    );
    let prompt = client
        .peer()
        .get_prompt(
            rmcp::model::GetPromptRequestParams::new("code_mode").with_arguments(
                json!({"task": "tell the time"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        )
        .await
        .expect("prompts/get");
    let prompt = serde_json::to_string(&prompt).expect("json");
    assert!(
        prompt.contains("tell the time") && prompt.contains("execute_code"),
        "{prompt}"
    );
    close_and_wait(client, &mut child).await;
}

/// With `expose_upstream_tools`, upstream tools are offered as
/// `server.tool` — only those the default policy allows — and calls to
/// them share the one upstream session. Metrics on a listener of their own
/// (stdio mode) count them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tools_pass_through_under_the_default_policy() {
    let scratch = Scratch::new("serve-passthrough");
    let plugins = plugins_dir(&scratch, &["hello"]);
    let config = scratch.config(
        json!({
            "expose_upstream_tools": true,
            "default_policy": {"allow": ["test/echo", "builtin/echo"]},
        }),
        json!({}),
    );
    let mut child = tokio::process::Command::new(WEIR)
        .args(["serve", "--stdio", "--metrics", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--plugins")
        .arg(&plugins)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start weir serve");
    let stdout = child.stdout.take().expect("stdout");
    let stdin = child.stdin.take().expect("stdin");
    let stderr = child.stderr.take().expect("stderr");
    let client = Watcher::default()
        .serve((stdout, stdin))
        .await
        .expect("initialize");
    let metrics_url = {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        loop {
            let line = lines
                .next_line()
                .await
                .expect("stderr")
                .expect("start line");
            if let Some(at) = line.find("metrics at http://") {
                let url = line[at + "metrics at http://".len()..].to_owned();
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                break url;
            }
        }
    };
    assert_eq!(
        tool_names(&client).await,
        ["hello", "builtin.echo", "test.echo"]
    );
    assert_eq!(
        call(&client, "test.echo", json!({"message": "through"})).await,
        "through"
    );
    assert!(
        call(&client, "test.hang", json!({}))
            .await
            .starts_with("error: denied:"),
        "a tool the policy does not allow is refused, even by exact name"
    );
    assert_eq!(
        call(&client, "hello", json!({"input": "pass"})).await,
        "Hello, pass!"
    );
    let (addr, path) = metrics_url.split_once('/').expect("url");
    let metrics = raw_http(addr, &format!("/{path}"), "Accept: */*");
    for line in [
        "weir_tool_calls_total{server=\"test\",tool=\"echo\"} 1",
        "weir_upstream_sessions_opened_total{server=\"test\"} 1",
        "weir_plugin_runs_total{plugin=\"hello\",outcome=\"ok\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    assert_eq!(scratch.sessions().len(), 1);
    client.cancel().await.expect("close");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("weir exits")
        .expect("wait");
    assert!(status.success());
}

/// Headless chromium (Debian's, installed by scripts/test), kept off every
/// network but loopback: no host name resolves, and its background
/// services are off.
fn chromium(args: &[&str], url: &str) -> String {
    let bin = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium is not installed: scripts/test installs it (apt-get install chromium)");
    let profile = tempdir_for_chromium();
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-quic",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tempdir_for_chromium() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "weir-chromium-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("chromium profile dir");
    dir
}

/// The cells of the row of `table` whose first cell is `first`, from the
/// status page's HTML.
fn row_cells(html: &str, table: &str, first: &str) -> Vec<String> {
    let start = html
        .find(&format!("<table id=\"{table}\">"))
        .unwrap_or_else(|| panic!("no table {table} in:\n{html}"));
    let table_html = &html[start..start + html[start..].find("</table>").expect("table end")];
    let row = table_html
        .split("<tr>")
        .find(|r| r.starts_with(&format!("<td>{first}</td>")))
        .unwrap_or_else(|| panic!("no row {first} in {table}:\n{table_html}"));
    row.split("</td>")
        .filter_map(|c| c.rsplit_once('>').map(|(_, v)| v.to_owned()))
        .filter(|c| !c.is_empty() && !c.starts_with('<'))
        .collect()
}

/// After a scripted load, `weir stats`, `/metrics` and the status page (in
/// a real headless browser) tell the same story — and the page's numbers
/// moved with the load.
#[test]
fn stats_and_status_page_follow_the_load() {
    let scratch = Scratch::new("serve-status");
    let plugins = plugins_dir(&scratch, &["fanout", "hello"]);
    let served = Served::start(&scratch, &plugins);

    let before = chromium(&["--dump-dom"], &format!("{}/", served.base));
    assert!(before.contains("<title>weir status</title>"), "{before}");
    assert_eq!(row_cells(&before, "servers", "test")[1..3], ["0", "0"]);
    assert_eq!(row_cells(&before, "servers", "builtin")[1..3], ["0", "0"]);

    let report = run_client(&[
        "--server".into(),
        "test".into(),
        "--calls".into(),
        "40".into(),
        "--concurrency".into(),
        "8".into(),
        "http".into(),
        served.mcp_url(),
    ]);
    assert_eq!(report["correct"], 40, "{report}");

    let out = Command::new(WEIR)
        .args(["stats", "--json", "--url", &served.base])
        .output()
        .expect("weir stats");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
    let find = |list: &str, key: &str, name: &str| {
        stats[list]
            .as_array()
            .expect("list")
            .iter()
            .find(|r| r[key] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {stats}"))
    };
    let metrics = raw_http(
        served.base.trim_start_matches("http://"),
        "/metrics",
        "Accept: */*",
    );
    let metric = |line: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{line} in:\n{metrics}"))
    };
    let test = find("servers", "server", "test");
    assert_eq!(test["sessions_opened"], 1.0);
    assert_eq!(
        test["sessions_opened"].as_f64(),
        Some(metric(
            "weir_upstream_sessions_opened_total{server=\"test\"}"
        ))
    );
    assert_eq!(test["sessions_live"], 1.0);
    let fanout = find("plugins", "plugin", "fanout");
    assert_eq!(fanout["runs"], 40.0);
    assert_eq!(
        fanout["ok"].as_f64(),
        Some(metric(
            "weir_plugin_runs_total{plugin=\"fanout\",outcome=\"ok\"}"
        ))
    );
    let echo = find("tools", "tool", "echo");
    assert_eq!(echo["calls"], 120.0);
    assert_eq!(
        echo["calls"].as_f64(),
        Some(metric(
            "weir_tool_calls_total{server=\"test\",tool=\"echo\"}"
        ))
    );
    assert_eq!(echo["errors"], 0.0);
    assert!(echo["p50_ms"].as_f64().is_some_and(|v| v > 0.0), "{echo}");

    let text = Command::new(WEIR)
        .args(["stats", "--url", &served.base])
        .output()
        .expect("weir stats");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().take(4).eq(["test", "1", "1", "0"])),
        "server, sessions open, opened, restarts:\n{text}"
    );

    let after = chromium(&["--dump-dom"], &format!("{}/", served.base));
    assert_eq!(row_cells(&after, "servers", "test")[1..3], ["1", "1"]);
    assert_eq!(row_cells(&after, "plugins", "fanout")[1..3], ["40", "40"]);
    assert!(
        after.contains("fetch(\"/?part=stats\""),
        "the page refreshes itself"
    );
    let fragment = raw_http(
        served.base.trim_start_matches("http://"),
        "/?part=stats",
        "Accept: text/html",
    );
    assert!(fragment.contains("<table id=\"servers\">"), "{fragment}");

    // The screenshot, kept as a test artifact (README shows one).
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let shot = artifacts.join("status-page.png");
    chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,900",
        ],
        &format!("{}/", served.base),
    );
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000),
        "a screenshot at {}",
        shot.display()
    );
    assert!(served.stop().success());
}

/// With upstream tools passed through, an upstream server's
/// `tools/list_changed` reaches weir's own clients: the new tool is
/// announced, then listed and callable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tool_changes_reach_the_clients() {
    let scratch = Scratch::new("serve-upstream-changed");
    let plugins = plugins_dir(&scratch, &["hello"]);
    let watcher = Watcher::default();
    let changes = watcher.changes.clone();
    let args =
        support::serve::serve_args_with(&scratch, &plugins, json!({"expose_upstream_tools": true}));
    let mut args = args;
    args.push("--stdio".into());
    let (client, mut child) = connect(args, watcher).await;
    let before = tool_names(&client).await;
    assert!(
        before.contains(&"test.enable_late".to_owned()),
        "{before:?}"
    );
    assert!(!before.contains(&"test.late".to_owned()), "{before:?}");
    // The test server speaks 2026-07-28: a change is heard once weir's
    // listen stream is open.
    assert!(
        eventually(Duration::from_secs(30), || async {
            scratch.events("listen") >= 1
        })
        .await,
        "weir opened its listen stream"
    );
    call(&client, "test.enable_late", json!({})).await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            changes.load(Ordering::SeqCst) >= 1
        })
        .await,
        "weir's client was told the tool list changed"
    );
    assert!(tool_names(&client).await.contains(&"test.late".to_owned()));
    close_and_wait(client, &mut child).await;
}

/// Kills a helper process when the test ends, however it ends.
struct Helper(std::process::Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `weir serve --http` behind `weir.auth` with JWTs, used by the Python
/// SDK's client: a good token lists and calls (its scope deciding which
/// tools it sees and may call); an expired one, one for another audience,
/// one signed with a key the issuer never published, one signed HS256 with
/// a made-up secret, and none are each
/// refused with 401 and a `WWW-Authenticate` naming the protected-resource
/// metadata, which says where tokens come from.
#[test]
fn jwt_auth_checks_tokens_and_scopes_hide_tools() {
    use std::io::BufRead;
    let scratch = Scratch::new("serve-jwt");
    let keys = scratch.dir.join("keys");
    std::fs::create_dir_all(&keys).expect("keys dir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/oauth_fixture.py");
    let mut issuer = Command::new(python())
        .arg(&fixture)
        .arg("issuer")
        .arg(&keys)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the issuer");
    let mut jwks_url = String::new();
    std::io::BufReader::new(issuer.stdout.take().expect("stdout"))
        .read_line(&mut jwks_url)
        .expect("the JWKS URL");
    let _issuer = Helper(issuer);
    let jwks_url = jwks_url.trim().to_owned();
    let issuer_url = jwks_url.trim_end_matches("/jwks").to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let plugins = plugins_dir(&scratch, &["hello"]);
    let config = scratch.config(
        json!({
            "expose_upstream_tools": true,
            "auth": {
                "resource": resource,
                "issuer": issuer_url,
                "jwks_url": jwks_url,
                "scopes": {"all": ["*"], "read": ["hello"]},
            },
        }),
        json!({}),
    );
    let args = [std::ffi::OsStr::new("--plugins"), plugins.as_os_str()];
    let audit = [(
        "RUST_LOG",
        std::ffi::OsStr::new("weir::audit=info,weir=warn"),
    )];
    let served = Served::launch_on(&config, &args, &audit, &format!("127.0.0.1:{port}"));
    let out = Command::new(python())
        .arg(&fixture)
        .arg("client")
        .arg(&keys)
        .arg(served.mcp_url())
        .args(["--issuer", &issuer_url, "--resource", &resource])
        .output()
        .expect("run the client");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        served.log()
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");

    let all = &report["all"];
    assert_eq!(all["hello"], "Hello, auth!", "{report}");
    assert!(
        all["tools"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("test.echo"))),
        "{report}"
    );
    let read = &report["read"];
    assert_eq!(
        read["tools"],
        json!(["hello"]),
        "scope `read` sees hello only"
    );
    assert_eq!(read["hello"], "Hello, auth!");
    assert!(
        read["hidden_call"]
            .as_str()
            .is_some_and(|t| t.contains("do not grant the tool `test.echo`")),
        "{report}"
    );
    // Refused by scope: the same audit event as any refused call.
    assert!(
        served.log().lines().any(|l| l.contains("weir::audit")
            && l.contains("via=\"client\"")
            && l.contains("test.echo")
            && l.contains("allowed=false")),
        "{}",
        served.log()
    );
    let metadata_url = format!("http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp");
    for (case, why) in [
        ("expired", "expired"),
        ("wrong_audience", "another resource"),
        ("rogue_key", "signature does not verify"),
        ("symmetric", "only the issuer's public-key signatures"),
        ("none", "needs `Authorization: Bearer TOKEN`"),
    ] {
        let refused = &report[case];
        assert_eq!(refused["status"], 401, "{case}: {refused}");
        let challenge = refused["www_authenticate"].as_str().unwrap_or_default();
        assert!(
            challenge.starts_with(&format!("Bearer resource_metadata=\"{metadata_url}\"")),
            "{case}: {challenge}"
        );
        assert!(
            challenge.contains("scope=\"all read\""),
            "{case}: {challenge}"
        );
        assert!(
            refused["body"].as_str().is_some_and(|b| b.contains(why)),
            "{case}: {refused}"
        );
    }
    assert!(
        report["none"]["www_authenticate"]
            .as_str()
            .is_some_and(|c| !c.contains("invalid_token"))
    );
    assert_eq!(
        report["metadata"],
        json!({
            "resource": resource,
            "authorization_servers": [issuer_url],
            "bearer_methods_supported": ["header"],
            "scopes_supported": ["all", "read"],
        })
    );
    // Tokens never reach the log.
    assert!(!served.log().contains("eyJ"), "{}", served.log());
    assert!(served.stop().success());
}

/// `weir.auth.tokens`: a static bearer token (from `${VAR}`) for simple
/// setups; with `protect_status`, `/metrics` needs it too. The token never
/// shows in weir's log.
#[test]
fn a_static_token_guards_mcp_and_metrics() {
    use std::io::{Read, Write};
    let scratch = Scratch::new("serve-static-token");
    let plugins = plugins_dir(&scratch, &["hello"]);
    let token = "s3cret-static-token-for-the-test";
    let config = scratch.config(
        json!({"auth": {"tokens": ["${WEIR_SERVE_TOKEN}"], "protect_status": true}}),
        json!({}),
    );
    let args = [std::ffi::OsStr::new("--plugins"), plugins.as_os_str()];
    let served = Served::launch(
        &config,
        &args,
        &[("WEIR_SERVE_TOKEN", std::ffi::OsStr::new(token))],
    );
    let addr = served.addr();
    let bearer = format!("Authorization: Bearer {token}");
    let open_metrics = raw_http(&addr, "/metrics", "Accept: */*");
    assert!(open_metrics.starts_with("HTTP/1.1 401"), "{open_metrics}");
    assert!(
        raw_http(&addr, "/metrics", &bearer).starts_with("HTTP/1.1 200"),
        "the token opens /metrics"
    );
    let list = |authorization: &str| {
        let text =
            support::serve::request_text_2026(&addr, "tools/list", None, json!({}), authorization);
        let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
        stream.write_all(text.as_bytes()).expect("send");
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        reply
    };
    let refused = list("");
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(
        refused.contains("needs `Authorization: Bearer TOKEN`"),
        "{refused}"
    );
    let wrong = list("Authorization: Bearer not-the-token-at-all-no\r\n");
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    assert!(wrong.contains("invalid_token"), "{wrong}");
    // The probes stay open; readiness says yes or no, no more.
    let ready = raw_http(&addr, "/readyz", "Accept: */*");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(ready.ends_with(r#"{"ready":true}"#), "{ready}");
    let listed = list(&format!("{bearer}\r\n"));
    assert!(listed.starts_with("HTTP/1.1 200"), "{listed}");
    assert!(listed.contains("\"hello\""), "{listed}");
    // `weir stats` needs the token too, and says so.
    let stats = |token: Option<&str>| {
        let mut command = Command::new(WEIR);
        command.args(["stats", "--json", "--url", &served.base]);
        if let Some(token) = token {
            command.env("WEIR_STATS_TOKEN", token);
        }
        command.output().expect("weir stats")
    };
    let refused = stats(None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("needs a token"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(stats(Some(token)).status.success());
    assert!(!served.log().contains(token), "{}", served.log());
    assert!(served.stop().success());
}

/// `/healthz` says the process is alive; `/readyz` that every upstream
/// server is reachable (starting a shared server's session, the one calls
/// will use), else `503` naming the one that is not.
#[test]
fn health_and_readiness_probes() {
    let scratch = Scratch::new("serve-probes");
    let plugins = plugins_dir(&scratch, &["hello"]);
    let served = Served::start(&scratch, &plugins);
    let addr = served.addr();
    let alive = raw_http(&addr, "/healthz", "Accept: */*");
    assert!(
        alive.starts_with("HTTP/1.1 200") && alive.ends_with("ok"),
        "{alive}"
    );
    let ready = raw_http(&addr, "/readyz", "Accept: */*");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(
        ready.contains(r#""servers":{"builtin":"ok","test":"ok"}"#),
        "{ready}"
    );
    assert_eq!(
        scratch.sessions().len(),
        1,
        "the probe started the session calls use"
    );
    assert!(served.stop().success());

    let broken = Scratch::new("serve-probes-broken");
    let plugins = plugins_dir(&broken, &["hello"]);
    let served = Served::start_with_env(
        &broken,
        &plugins,
        json!({}),
        json!({"gone": {"command": "/nonexistent/mcp-server"}}),
        &[],
    );
    let addr = served.addr();
    assert!(raw_http(&addr, "/healthz", "Accept: */*").starts_with("HTTP/1.1 200"));
    let unready = raw_http(&addr, "/readyz", "Accept: */*");
    assert!(unready.starts_with("HTTP/1.1 503"), "{unready}");
    assert!(unready.contains(r#""ready":false"#), "{unready}");
    assert!(unready.contains(r#""test":"ok""#), "{unready}");
    assert!(
        unready.contains(r#""gone":"unavailable: server `gone` failed to start: command `/nonexistent/mcp-server` not found""#),
        "{unready}"
    );
    assert!(served.stop().success());
}

/// SIGTERM with a request on its way — its connection open, its header
/// half sent — waits for it: the stop counts the connection until its
/// request arrives, then answers it in full before it ends the sessions
/// (as a replica in a rolling restart must), and exits cleanly.
#[test]
fn a_stop_answers_the_request_on_its_way() {
    use std::io::{Read as _, Write as _};
    let scratch = Scratch::new("serve-stop-on-its-way");
    let plugins = plugins_dir(&scratch, &["testbed"]);
    let mut served = Served::start_with_env(
        &scratch,
        &plugins,
        // The half-sent header's own clock is not what is tested here.
        json!({"http_header_timeout_secs": 120}),
        json!({}),
        &[(
            "RUST_LOG",
            std::ffi::OsStr::new("warn,weir_host::serve=info"),
        )],
    );
    let addr = served.addr();
    let request = support::serve::request_text_2026(
        &addr,
        "tools/call",
        Some("testbed"),
        json!({"name": "testbed", "arguments": {"input": r#"call:test:sleep:{"ms":200}"#}}),
        "",
    );
    let (first_line, rest) = request.split_once("\r\n").expect("a request line");
    let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(stream, "{first_line}\r\n").expect("send the request line");
    stream.flush().expect("flush");
    served.sigterm();
    assert!(
        wait_for(Duration::from_secs(30), || served
            .log()
            .contains("stopping: no new requests")),
        "the stop did not wait for the connection:\n{}",
        served.log()
    );
    stream.write_all(rest.as_bytes()).expect("send the rest");
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains("ok:slept"), "{reply}");
    assert!(
        served.exits_cleanly_within(Duration::from_secs(60)),
        "weir did not exit cleanly after the stop:\n{}",
        served.log()
    );
}

/// A client dribbling a header does not hold a stop for the grace
/// period: its header clock still runs, and weir exits once it is out
/// (grace 600 s, header timeout 1 s; the wait is bounded far below the
/// grace).
#[test]
fn a_dribbling_header_does_not_hold_the_stop() {
    use std::io::Write as _;
    let scratch = Scratch::new("serve-stop-dribble");
    let plugins = plugins_dir(&scratch, &["testbed"]);
    let mut served = Served::start_with(
        &scratch,
        &plugins,
        json!({"http_header_timeout_secs": 1, "shutdown_grace_secs": 600}),
    );
    let mut stream = std::net::TcpStream::connect(served.addr()).expect("connect");
    stream.write_all(b"POST /mcp HT").expect("a few bytes");
    stream.flush().expect("flush");
    served.sigterm();
    assert!(
        served.exits_cleanly_within(Duration::from_secs(120)),
        "weir waited on a header that never came:\n{}",
        served.log()
    );
    drop(stream);
}

/// A fleet's view: each replica labels its metrics with `weir.replica`,
/// and `weir stats --url A --url B` sums them (a replica that cannot be
/// read is named and left out).
#[test]
fn stats_sum_the_replicas_of_a_fleet() {
    let mut fleet = Vec::new();
    for (name, calls) in [("r1", "10"), ("r2", "6")] {
        let scratch = Scratch::new(&format!("serve-fleet-{name}"));
        let plugins = plugins_dir(&scratch, &["fanout"]);
        let served = Served::start_with(&scratch, &plugins, json!({"replica": name}));
        let report = run_client(&[
            "--server".into(),
            "test".into(),
            "--calls".into(),
            calls.into(),
            "--concurrency".into(),
            "2".into(),
            "http".into(),
            served.mcp_url(),
        ]);
        assert_eq!(report["correct"].to_string(), calls, "{report}");
        let metrics = raw_http(&served.addr(), "/metrics", "Accept: */*");
        assert!(
            metrics.contains(&format!(
                "weir_upstream_sessions_opened_total{{replica=\"{name}\",server=\"test\"}} 1"
            )),
            "{metrics}"
        );
        fleet.push((scratch, served));
    }
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let out = Command::new(WEIR)
        .args(["stats", "--json"])
        .args(["--url", &fleet[0].1.base, "--url", &fleet[1].1.base])
        .args(["--url", &format!("http://{gone}")])
        .output()
        .expect("weir stats");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("left out http://{gone}")),
        "{stderr}"
    );
    let stats: Value = serde_json::from_slice(&out.stdout).expect("stats JSON");
    let row = |list: &str, key: &str, name: &str| {
        stats[list]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r[key] == name).cloned())
            .unwrap_or_else(|| panic!("{name} in {stats}"))
    };
    assert_eq!(row("servers", "server", "test")["sessions_opened"], 2.0);
    assert_eq!(row("servers", "server", "test")["sessions_live"], 2.0);
    assert_eq!(row("plugins", "plugin", "fanout")["runs"], 16.0);
    for (_, served) in fleet {
        assert!(served.stop().success());
    }
}
