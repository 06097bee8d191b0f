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

fn host_with_everything(scratch: &Scratch) -> Host {
    let path = scratch.dir.join("weir.json");
    let config = json!({"mcpServers": {"everything": {"command": everything_bin(), "args": ["stdio"]}},
                        "weir": {"builtin": false}});
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
