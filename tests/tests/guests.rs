//! Agents written in Python and TypeScript: built by `weir build` with the
//! real tools (componentize-py from PyPI, componentize-js from npm), run
//! on the host's shared sessions, and held by the same sandbox and limits
//! as Rust ones.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Scratch, WEIR};
use weir_host::{Host, HostRunError, Plugin, RunError};

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_owned()
}

/// `weir build` with componentize-py (tests/py's venv) on PATH.
fn weir_build(dir: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let venv = root().join("tests/py/.venv/bin");
    let path = std::env::join_paths(std::iter::once(venv).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let (dir, out) = (dir.display().to_string(), out.display().to_string());
    let args: Vec<&str> = ["build", dir.as_str(), "--out", out.as_str()]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    support::weir_env(&args, &[("PATH", &path)])
}

/// The guest plugins, built once per test run (Python ones and JS ones
/// side by side) into a directory of their own; the JS ones on QuickJS
/// too, into its `quickjs/`.
fn guests() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guest-plugins");
        let _ = std::fs::remove_dir_all(&out);
        const QUICKJS: &[&str] = &["--js-engine", "quickjs"];
        let batches: [&[(&str, &[&str])]; 2] = [
            &[
                ("plugins/hello-py", &[]),
                ("tests/plugins/testbed-py", &[]),
                ("plugins/research-py", &[]),
            ],
            &[
                ("plugins/hello-ts", &[]),
                ("tests/plugins/testbed-ts", &[]),
                ("plugins/hello-ts", QUICKJS),
                ("tests/plugins/testbed-ts", QUICKJS),
            ],
        ];
        std::thread::scope(|s| {
            for batch in batches {
                let out = &out;
                s.spawn(move || {
                    for (dir, extra) in batch {
                        let target = if extra.is_empty() {
                            out.clone()
                        } else {
                            out.join("quickjs")
                        };
                        let built = weir_build(&root().join(dir), &target, extra);
                        assert!(
                            built.status.success(),
                            "weir build {dir} {extra:?} failed:\n{}",
                            String::from_utf8_lossy(&built.stderr)
                        );
                    }
                });
            }
        });
        out
    })
}

/// A guest plugin by name; `quickjs/NAME` for the QuickJS build.
fn load(host: &Host, name: &str) -> Plugin {
    let path = guests().join(format!("{name}.wasm"));
    host.load(&path.display().to_string())
        .unwrap_or_else(|e| panic!("{name} loads: {e}"))
}

fn sessions_opened(host: &Host, server: &str) -> u64 {
    host.sessions()
        .stats()
        .into_iter()
        .find(|s| s.name == server)
        .map(|s| s.sessions_opened)
        .unwrap_or_else(|| panic!("no server {server}"))
}

async fn run_json(host: &Host, plugin: &Plugin, input: &str) -> Value {
    let out = host
        .run(plugin, input)
        .await
        .unwrap_or_else(|e| panic!("{} {input}: {e}", plugin.name()));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{input}: {e}: {out}"))
}

/// hello-py and hello-ts say what hello says, through the built-in server;
/// 100 runs of each share its one session. `weir run` runs them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_in_python_and_typescript_share_one_session() {
    let scratch = Scratch::new("guests-hello");
    let host = scratch.host(json!({}));
    for name in ["hello-py", "hello-ts", "quickjs/hello-ts"] {
        let plugin = load(&host, name);
        for i in 0..100 {
            let greeting = host
                .run(&plugin, &format!("run {i}"))
                .await
                .unwrap_or_else(|e| panic!("{name} run {i}: {e}"));
            assert_eq!(greeting, format!("Hello, run {i}!"), "{name}");
        }
        assert_eq!(
            host.run(&plugin, "  ").await.as_deref(),
            Ok("Hello, world!")
        );
        assert_eq!(sessions_opened(&host, "builtin"), 1, "after {name}");
    }
    host.shutdown().await;

    for name in ["hello-py", "hello-ts"] {
        let out = support::weir(&[
            "run",
            "--plugins",
            &guests().display().to_string(),
            name,
            "--input",
            "Ann",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "Hello, Ann!");
    }
}

/// Each way the host refuses a call reaches Python and JS code as its own
/// exception class, with the host's message; a batch keeps its failures in
/// place; an agent's own exception is its run's error, never a trap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_errors_reach_python_and_js_as_exceptions() {
    let scratch = Scratch::new("guests-errors");
    let grant = json!({
        "allow": ["builtin/echo", "builtin/add", "builtin/nosuch", "nowhere/echo"],
        "max_argument_bytes": 65536,
    });
    let host = scratch.host(json!({"plugins": {"testbed-py": grant, "testbed-ts": grant}}));
    for (name, invalid, raised) in [
        (
            "testbed-py",
            (
                "invalid_not_json",
                "InvalidArguments: invalid arguments: arguments are not JSON",
            ),
            "ValueError: raised on request",
        ),
        (
            "testbed-ts",
            (
                "invalid_not_object",
                "InvalidArguments: invalid arguments: arguments must be an object",
            ),
            "RangeError: raised on request",
        ),
        (
            "quickjs/testbed-ts",
            (
                "invalid_not_object",
                "InvalidArguments: invalid arguments: arguments must be an object",
            ),
            "RangeError: raised on request",
        ),
    ] {
        let plugin = load(&host, name);
        let got = run_json(&host, &plugin, "errors").await;
        let expect = [
            ("denied", "Denied: denied: `builtin/kv_set` is not granted"),
            (
                "not_found",
                "NotFound: not found: server `builtin` has no tool `nosuch`",
            ),
            (
                "no_server",
                "NotFound: not found: no server named `nowhere`",
            ),
            ("too_big", "Denied: denied: arguments are"),
            invalid,
        ];
        for (field, want) in expect {
            let seen = got[field].as_str().unwrap_or_default();
            assert!(
                seen.starts_with(want),
                "{name} {field}: {seen}\n  want: {want}"
            );
        }
        assert_eq!(
            got["tool_error"], true,
            "{name}: a tool's own failure is a result"
        );
        assert_eq!(got["ok"], "5", "{name}");

        let batch = run_json(&host, &plugin, "batch").await;
        assert_eq!(batch, json!(["first", "Denied", "third"]), "{name}");

        let failed = host.run(&plugin, "raise").await.unwrap_err();
        let HostRunError::Run(RunError::Failed(message)) = &failed else {
            panic!("{name}: expected the agent's error, got {failed:?}")
        };
        assert!(message.contains(raised), "{name}: {message}");

        let answer = run_json(&host, &plugin, "json:x").await;
        assert_eq!(answer, json!({"input": "x", "n": 3}), "{name}");
        if name == "testbed-py" {
            // Even sys.exit() is the run's error, not a trap.
            let exited = host.run(&plugin, "exit").await.unwrap_err();
            assert!(
                matches!(&exited, HostRunError::Run(RunError::Failed(m)) if m.contains("SystemExit: 3")),
                "{exited:?}"
            );
        }
    }
    host.shutdown().await;
}

/// A Python agent's sockets, files and environment and a JS agent's fetch
/// reach nothing: a listener on loopback sees no connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_js_agents_reach_no_network_files_or_environment() {
    let scratch = Scratch::new("guests-hostile");
    let host = scratch.host(json!({}));
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();

    let py = load(&host, "testbed-py");
    let seen = run_json(&host, &py, &format!("escape:{port}")).await;
    for probe in ["create_connection", "socket", "passwd", "listdir"] {
        let got = seen[probe].as_str().unwrap_or_default();
        assert!(got.starts_with("error("), "python {probe}: {got}");
    }
    assert_eq!(seen["environ"], json!({}), "python sees no environment");

    for name in ["testbed-ts", "quickjs/testbed-ts"] {
        // Built without wasi:http: the component asks for no network.
        let path = guests().join(format!("{name}.wasm")).display().to_string();
        let inspected = support::weir(&["inspect", &path, "--json"]);
        let shape: Value = serde_json::from_slice(&inspected.stdout).expect("inspect json");
        let imports = shape["imports"].as_array().expect("imports");
        assert!(
            imports.iter().any(|i| i == "weir:agent/mcp@0.1.0"),
            "{name}: {imports:?}"
        );
        assert!(
            !imports.iter().any(|i| i
                .as_str()
                .is_some_and(|i| i.starts_with("wasi:http") || i.starts_with("wasi:sockets"))),
            "{name} imports a network: {imports:?}"
        );
        let ts = load(&host, name);
        let seen = run_json(&host, &ts, "escape").await;
        for global in ["process", "require", "deno", "env"] {
            assert_eq!(seen[global], "undefined", "{name} {global}: {seen}");
        }
        // SpiderMonkey's fetch exists but has no wasi:http under it;
        // QuickJS has none.
        match host.run(&ts, &format!("fetch:{port}")).await {
            Ok(out) => assert_ne!(out, "\"answered\"", "{name}: fetch got an answer"),
            Err(error) => assert!(
                matches!(
                    error,
                    HostRunError::Run(RunError::Trap(_) | RunError::Failed(_))
                ),
                "{name}: {error:?}"
            ),
        }
    }
    // Every run above has ended, and a loopback connect completes its
    // handshake inside the connect call: a connection made would be queued
    // by now, so there is nothing to wait for.
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "a guest connected to the loopback listener"
    );
    let hello = load(&host, "hello-ts");
    assert_eq!(
        host.run(&hello, "after").await.as_deref(),
        Ok("Hello, after!")
    );
    host.shutdown().await;
}

/// A Python or JS agent that allocates without end is stopped by the
/// memory limit, one that loops by the deadline; each says which, and the
/// next run of the same plugin works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_deadline_stop_runaway_python_and_js() {
    let scratch = Scratch::new("guests-limits");
    let host = scratch.host(json!({"deadline_secs": 2, "memory_limit_mb": 64}));
    for name in ["testbed-py", "testbed-ts", "quickjs/testbed-ts"] {
        let plugin = load(&host, name);
        let hog = host.run(&plugin, "hog").await.unwrap_err();
        assert_eq!(
            hog,
            HostRunError::Run(RunError::MemoryLimit(64 << 20)),
            "{name}"
        );
        let spin = host.run(&plugin, "spin").await.unwrap_err();
        assert_eq!(
            spin,
            HostRunError::Run(RunError::Deadline(Duration::from_secs(2))),
            "{name}"
        );
        let answer = run_json(&host, &plugin, "json:after").await;
        assert_eq!(answer["input"], "after", "{name}");
    }
    host.shutdown().await;
}

/// The field report's research agent, in Python, against the real
/// server-filesystem: each query searches and reads every document (many
/// tool calls, reads in one batch), and 10 queries open one session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn research_agent_in_python_on_server_filesystem() {
    let scratch = Scratch::new("guests-research");
    let docs = scratch.dir.join("docs");
    std::fs::create_dir_all(docs.join("notes")).expect("docs");
    std::fs::write(
        docs.join("storms.md"),
        "# Storms\nAgent code opened a new MCP session for every tool call.\n\
         A connection storm is dozens of sessions per query.\n",
    )
    .expect("write");
    std::fs::write(
        docs.join("notes/sandbox.md"),
        "# Sandbox\nPlugins cannot open a socket or read files.\n",
    )
    .expect("write");
    std::fs::write(docs.join("notes/skip.txt"), "connection storm session").expect("write");
    let server =
        root().join("tests/npm/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
    let host = scratch.host_with(
        json!({}),
        json!({"fs": {"command": "node", "args": [server, docs]}}),
    );
    let research = load(&host, "research-py");
    for i in 0..10 {
        let answer = run_json(
            &host,
            &research,
            &json!({"question": format!("What is a connection storm? ({i})")}).to_string(),
        )
        .await;
        assert_eq!(answer["files_read"], 2, "{answer}");
        // list dirs + 1 search + 2 reads + the note kept in builtin's store.
        assert_eq!(answer["tool_calls"], 5, "{answer}");
        let best = &answer["findings"][0];
        assert!(
            best["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("storms.md")),
            "{answer}"
        );
        assert_eq!(best["line"], 3, "{answer}");
        assert_eq!(
            best["text"],
            "A connection storm is dozens of sessions per query."
        );
    }
    assert_eq!(sessions_opened(&host, "fs"), 1);
    assert_eq!(sessions_opened(&host, "builtin"), 1);
    host.shutdown().await;
}

/// A build that cannot work says why: a TypeScript type error names the
/// file and line, a Python import error names the module, an empty
/// directory says what weir build looks for.
#[test]
fn build_errors_name_what_went_wrong() {
    let scratch = Scratch::new("guests-build");
    let out = scratch.dir.join("out");
    // A directory holding `files`, built: it must fail saying each of `says`.
    let refused = |name: &str, files: &[(&str, &str)], says: &[&str]| {
        let dir = scratch.dir.join(name);
        std::fs::create_dir_all(&dir).expect("dir");
        for (file, text) in files {
            std::fs::write(dir.join(file), text).expect("write");
        }
        let built = weir_build(&dir, &out, &[]);
        let stderr = String::from_utf8_lossy(&built.stderr);
        assert!(!built.status.success(), "{name} built");
        for said in says {
            assert!(stderr.contains(said), "{name}: no {said:?} in\n{stderr}");
        }
    };
    refused(
        "typo-ts",
        &[(
            "agent.ts",
            "import { agent } from 'weir-guest';\n\
             export const run = agent((input: string) => input.lenght);\n",
        )],
        &["agent.ts(2,", "'lenght' does not exist"],
    );
    refused(
        "missing-py",
        &[(
            "agent.py",
            "import requests\nfrom weir_guest import agent\n\n\
             @agent\ndef run(input):\n    return input\n",
        )],
        &["No module named 'requests'"],
    );
    refused("empty", &[], &["holds no plugin source"]);

    // A JS SDK pointed at the wrong place is named as such.
    let js = scratch.dir.join("typo-ts").display().to_string();
    let built = support::weir_env(&["build", &js], &[("WEIR_JS_SDK", out.as_os_str())]);
    let stderr = String::from_utf8_lossy(&built.stderr);
    assert!(!built.status.success());
    assert!(stderr.contains("WEIR_JS_SDK is"), "{stderr}");
    assert!(!out.exists() || std::fs::read_dir(&out).expect("out").next().is_none());
}

/// `weir new --lang python|typescript` makes an agent that `weir build`
/// builds and `weir run` runs as it stands.
#[test]
fn new_python_and_typescript_agents_build_and_run() {
    let scratch = Scratch::new("guests-new");
    let parent = scratch.dir.display().to_string();
    for (name, lang) in [("greet-py", "python"), ("greet-ts", "typescript")] {
        let made = support::weir(&["new", name, "--lang", lang, "--path", &parent]);
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
        let dir = scratch.dir.join(name);
        let built = weir_build(&dir, &dir, &[]);
        assert!(
            built.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&built.stderr)
        );
        let wasm = dir.join(format!("{name}.wasm")).display().to_string();
        let ran = support::weir(&["run", &wasm, "--input", "you"]);
        assert!(
            ran.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&ran.stderr)
        );
        let out = String::from_utf8_lossy(&ran.stdout);
        assert!(out.starts_with("Hello, you! ("), "{name}: {out}");
    }
}

/// `weir serve` offers Python and TypeScript agents as MCP tools like any
/// other: described by their manifests, each call a fresh run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_serve_offers_python_and_typescript_agents() {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;

    let dir = guests().display().to_string();
    let mut child = tokio::process::Command::new(WEIR)
        .args(["serve", "--stdio", "--plugins", &dir])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start weir serve");
    let stdout = child.stdout.take().expect("stdout");
    let stdin = child.stdin.take().expect("stdin");
    let client = ().serve((stdout, stdin)).await.expect("initialize");
    let tools = client.peer().list_all_tools().await.expect("tools/list");
    let find = |name: &str| {
        tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} not listed"))
    };
    assert!(
        find("hello-py")
            .description
            .as_deref()
            .is_some_and(|d| d.contains("written in Python"))
    );
    assert!(
        find("hello-ts")
            .description
            .as_deref()
            .is_some_and(|d| d.contains("written in TypeScript"))
    );
    let research = Value::Object((*find("research-py").input_schema).clone());
    assert_eq!(research["required"], json!(["question"]), "{research}");

    for name in ["hello-py", "hello-ts"] {
        for i in 0..10 {
            let params = CallToolRequestParams::new(name.to_owned()).with_arguments(
                json!({"input": format!("MCP {i}")})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            );
            let result = client.peer().call_tool(params).await.expect("tools/call");
            assert_ne!(result.is_error, Some(true), "{name}: {result:?}");
            let text = result.content[0].as_text().map(|t| t.text.clone());
            assert_eq!(text.as_deref(), Some(format!("Hello, MCP {i}!").as_str()));
        }
    }
    client.cancel().await.expect("hang up");
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("weir exits when the client hangs up")
        .expect("status");
    assert!(status.success(), "{status}");
}
