//! Against a real third-party server: the npm reference server
//! `@modelcontextprotocol/server-everything`, over stdio, configured in the
//! `mcpServers` format. `scripts/test` installs it (`npm ci` in tests/npm).

mod support;

use std::path::PathBuf;

use serde_json::{Value, json};
use support::{Scratch, WEIR, alive, load};
use weir_host::{Config, Host};

fn everything_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("npm/node_modules/.bin/mcp-server-everything");
    assert!(
        bin.exists(),
        "{} is missing: run `npm ci --prefix tests/npm` (scripts/test does)",
        bin.display()
    );
    bin
}

fn time_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py/.venv/bin/mcp-server-time");
    assert!(
        bin.exists(),
        "{} is missing: run `python3 -m venv tests/py/.venv && tests/py/.venv/bin/pip install -r tests/py/requirements.txt` (scripts/test does)",
        bin.display()
    );
    bin
}

/// The PyPI reference server `mcp-server-time` (the Python SDK) over stdio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_time_server() {
    let scratch = Scratch::new("time");
    let path = scratch.dir.join("weir.json");
    let config = json!({"mcpServers": {"time": {"command": time_bin(), "args": ["--local-timezone", "UTC"]}},
                        "weir": {"default_policy": {"allow": ["time/*"]}}});
    std::fs::write(&path, config.to_string()).expect("write config");
    let host = Host::new(Config::load(&path).expect("config"), Some(WEIR.into())).expect("host");
    let testbed = load(&host, "testbed");
    let out = host
        .run(&testbed, r#"call:time:get_current_time:{"timezone":"UTC"}"#)
        .await
        .expect("runs");
    assert!(
        out.starts_with("ok:") && out.contains("\"timezone\": \"UTC\""),
        "{out}"
    );
    let bad = host
        .run(
            &testbed,
            r#"call:time:get_current_time:{"timezone":"Mars/Olympus"}"#,
        )
        .await
        .expect("runs");
    assert!(
        bad.contains("Mars/Olympus"),
        "the server's complaint reaches the plugin: {bad}"
    );
    let time = host
        .sessions()
        .stats()
        .into_iter()
        .find(|s| s.name == "time")
        .expect("stats");
    // The Python SDK 2.3 speaks 2026-07-28: weir's probe finds it.
    assert_eq!(
        (time.sessions_opened, time.protocol.as_deref()),
        (1, Some("2026-07-28"))
    );
    host.shutdown().await;
}

/// What each server settles on, per `"protocol"`: auto finds the newest
/// both sides speak (the new lifecycle where the server has it, else
/// `initialize` naming 2025-11-25, never a revision without one), a pinned
/// revision is spoken as it is, and calls work on every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_server_settles_on_the_revision_it_speaks() {
    let scratch = Scratch::new("revisions");
    let test = |protocol: Option<&str>, speaks: Option<&str>| {
        let mut entry = scratch.test_server(json!({}));
        if let Some(p) = protocol {
            entry["protocol"] = json!(p);
        }
        if let Some(v) = speaks {
            entry["env"]["WEIR_TEST_PROTOCOL"] = json!(v);
        }
        entry
    };
    let servers = json!({
        "auto_new": test(None, None),
        "auto_old": test(Some("auto"), Some("2025-11-25")),
        "pinned_old": test(Some("2025-06-18"), None),
        "pinned_new": test(Some("2026-07-28"), None),
        "everything": {"command": everything_bin(), "args": ["stdio"]},
        "time": {"command": time_bin(), "args": ["--local-timezone", "UTC"], "protocol": "2025-11-25"},
    });
    let allow: Vec<String> = [
        "auto_new",
        "auto_old",
        "pinned_old",
        "pinned_new",
        "everything",
        "time",
    ]
    .iter()
    .map(|s| format!("{s}/*"))
    .collect();
    let host = scratch.host_with(json!({"default_policy": {"allow": allow}}), servers);
    let testbed = load(&host, "testbed");
    for server in ["auto_new", "auto_old", "pinned_old", "pinned_new"] {
        for n in 0..2 {
            let out = host
                .run(
                    &testbed,
                    &format!("call:{server}:echo:{{\"message\":\"m{n}\"}}"),
                )
                .await
                .expect("runs");
            assert!(
                out.starts_with("ok:") && out.contains(&format!("m{n}")),
                "{server}: {out}"
            );
        }
    }
    let out = host
        .run(&testbed, r#"call:everything:echo:{"message":"hi"}"#)
        .await
        .expect("runs");
    assert!(out.starts_with("ok:") && out.contains("hi"), "{out}");
    let out = host
        .run(&testbed, r#"call:time:get_current_time:{"timezone":"UTC"}"#)
        .await
        .expect("runs");
    assert!(out.starts_with("ok:"), "{out}");
    let settled = settled(&host);
    let want = |v: &str| Some(v.to_owned());
    assert_eq!(settled["auto_new"], want("2026-07-28"));
    assert_eq!(settled["auto_old"], want("2025-11-25"));
    assert_eq!(settled["pinned_old"], want("2025-06-18"));
    assert_eq!(settled["pinned_new"], want("2026-07-28"));
    assert_eq!(settled["everything"], want("2025-11-25"));
    assert_eq!(settled["time"], want("2025-11-25"));
    host.shutdown().await;
}

/// The Python SDK's `MCPServer` as weir's server, over stdio and over
/// streamable HTTP, auto and pinned to 2025-11-25: the revision each
/// pair settles on, and a call on each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_mcpserver_over_stdio_and_http_at_both_revisions() {
    let scratch = Scratch::new("py-mcpserver");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py");
    let python = dir.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing (scripts/test installs it)",
        python.display()
    );
    let script = dir.join("mcpserver.py");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let _http = KillOnDrop(
        std::process::Command::new(&python)
            .arg(&script)
            .args(["http", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the Python server"),
    );
    assert!(
        support::wait_for(std::time::Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        }),
        "the Python server listens"
    );
    let url = format!("http://127.0.0.1:{port}/mcp");
    let stdio = json!({"command": python, "args": [script, "stdio"]});
    let mut servers = json!({
        "stdio_auto": stdio.clone(),
        "stdio_2025": stdio,
        "http_auto": {"url": url},
        "http_2025": {"url": url, "protocol": "2025-11-25"},
    });
    servers["stdio_2025"]["protocol"] = json!("2025-11-25");
    let names = ["stdio_auto", "stdio_2025", "http_auto", "http_2025"];
    let allow: Vec<String> = names.iter().map(|s| format!("{s}/*")).collect();
    let host = scratch.host_with(json!({"default_policy": {"allow": allow}}), servers);
    let testbed = load(&host, "testbed");
    for server in names {
        let out = host
            .run(
                &testbed,
                &format!(r#"call:{server}:greet:{{"name":"{server}"}}"#),
            )
            .await
            .expect("runs");
        assert!(
            out.starts_with("ok:") && out.contains(&format!("Hello from Python, {server}!")),
            "{server}: {out}"
        );
    }
    let settled = settled(&host);
    let want = |v: &str| Some(v.to_owned());
    assert_eq!(settled["stdio_auto"], want("2026-07-28"), "{settled:?}");
    assert_eq!(settled["stdio_2025"], want("2025-11-25"), "{settled:?}");
    assert_eq!(settled["http_auto"], want("2026-07-28"), "{settled:?}");
    assert_eq!(settled["http_2025"], want("2025-11-25"), "{settled:?}");
    host.shutdown().await;
}

/// The revision each server's sessions settled on.
fn settled(host: &Host) -> std::collections::BTreeMap<String, Option<String>> {
    host.sessions()
        .stats()
        .into_iter()
        .map(|s| (s.name, s.protocol))
        .collect()
}

/// A server process, killed when the test ends however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server that only speaks the 2025-06-18 revision is served the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_protocol_revision() {
    let scratch = Scratch::new("protocol");
    let mut entry = scratch.test_server(json!({}));
    entry["env"]["WEIR_TEST_PROTOCOL"] = json!("2025-06-18");
    let host = scratch.host_with(json!({}), json!({ "test": entry }));
    let testbed = load(&host, "testbed");
    assert_eq!(
        host.run(&testbed, "echo:old:5").await.expect("runs"),
        "5 ok"
    );
    let test = host
        .sessions()
        .stats()
        .into_iter()
        .find(|s| s.name == "test")
        .expect("stats");
    assert_eq!(test.protocol.as_deref(), Some("2025-06-18"));
    host.shutdown().await;
}

fn host_with_everything(scratch: &Scratch) -> Host {
    let path = scratch.dir.join("weir.json");
    let config = json!({"mcpServers": {"everything": {"command": everything_bin(), "args": ["stdio"]}},
                        "weir": {"builtin": false, "default_policy": {"allow": ["everything/*"]}}});
    std::fs::write(&path, config.to_string()).expect("write config");
    Host::new(Config::load(&path).expect("config"), Some(WEIR.into())).expect("host")
}

/// `hello` finds server-everything's `echo` through `list-tools` and
/// greets through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_through_server_everything() {
    let scratch = Scratch::new("everything-hello");
    let host = host_with_everything(&scratch);
    let hello = load(&host, "hello");
    let out = host.run(&hello, "interop").await.expect("hello runs");
    assert_eq!(out, "Echo: Hello, interop!");
    host.shutdown().await;
}

/// `fanout` makes 200 calls each of `echo` and `get-sum` on one session;
/// the server process is gone after shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_through_server_everything() {
    let scratch = Scratch::new("everything-fanout");
    let host = host_with_everything(&scratch);
    let fanout = load(&host, "fanout");
    for (tool, arguments) in [
        ("echo", json!({"message": "hi"})),
        ("get-sum", json!({"a": 2, "b": 3})),
    ] {
        let input =
            json!({"server": "everything", "tool": tool, "arguments": arguments, "count": 200});
        let out: Value =
            serde_json::from_str(&host.run(&fanout, &input.to_string()).await.expect("runs"))
                .expect("json");
        assert_eq!(out, json!({"calls": 200, "ok": 200, "errors": 0}), "{tool}");
    }
    let stats = host.sessions().stats();
    assert_eq!(stats[0].sessions_opened, 1);
    let pid = stats[0].pids[0];
    host.shutdown().await;
    assert!(!alive(pid), "server-everything outlived shutdown");
}

/// A bad argument type is refused by the server and reaches the plugin as
/// a clear error, not a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_against_server_everything() {
    let scratch = Scratch::new("everything-bad");
    let host = host_with_everything(&scratch);
    let testbed = load(&host, "testbed");
    let out = host
        .run(&testbed, r#"call:everything:get-sum:{"a": "two"}"#)
        .await
        .expect("runs");
    assert!(
        out.starts_with("invalid-arguments:") || out.starts_with("tool-error:"),
        "{out}"
    );
    assert!(out.contains('a'), "{out}");
    host.shutdown().await;
}

/// A 2026-07-28 server that asks for input before it answers a call
/// (input_required): weir answers from the schema's defaults where the
/// entry says `"elicitation": "defaults"`, declines where it does not, echoes
/// the request state, and the plugin gets the final result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_asks_first_gets_an_answer() {
    let scratch = Scratch::new("asks");
    let mut defaults = scratch.test_server(json!({}));
    defaults["elicitation"] = json!("defaults");
    let declines = scratch.test_server(json!({}));
    let host = scratch.host_with(
        json!({"default_policy": {"allow": ["defaults/*", "declines/*"]}}),
        json!({ "defaults": defaults, "declines": declines }),
    );
    let testbed = load(&host, "testbed");
    let out = host
        .run(&testbed, "call:defaults:ask:{}")
        .await
        .expect("runs");
    assert!(
        out.starts_with("ok:answered: ")
            && out.contains(r#""action":"accept""#)
            && out.contains(r#""name":"weir-default""#),
        "{out}"
    );
    let out = host
        .run(&testbed, "call:declines:ask:{}")
        .await
        .expect("runs");
    assert!(
        out.starts_with("ok:answered: ") && out.contains(r#""action":"decline""#),
        "{out}"
    );
    host.shutdown().await;
}
