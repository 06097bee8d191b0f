//! The streamable HTTP transport, against weir's test server over loopback
//! HTTP and against server-everything's `streamableHttp` mode (forced onto
//! loopback by a preload).

mod support;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Scratch, TEST_SERVER, load, wait_for};

/// A server process killed when the test ends.
struct Served {
    child: Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// weir's test server in HTTP mode, on a free loopback port.
fn test_server_http(scratch: &Scratch) -> Served {
    test_server_http_with(scratch, &[])
}

/// [`test_server_http`] with more of its environment.
fn test_server_http_with(scratch: &Scratch, env: &[(&str, &str)]) -> Served {
    let mut child = Command::new(TEST_SERVER)
        .args(["--http", "127.0.0.1:0"])
        .env("WEIR_TEST_SESSION_LOG", scratch.session_log())
        .env("WEIR_TEST_EVENTS", scratch.events_log())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .expect("test server starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address line");
    let url = line
        .trim()
        .strip_prefix("listening ")
        .expect("listening line")
        .to_owned();
    Served { child, url }
}

/// The addresses listening on `port`, from /proc/net/tcp{,6}.
fn listeners(port: u16) -> Vec<String> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
        {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            if *state == "0A" && local.ends_with(&format!(":{port:04X}")) {
                found.push(local.to_string());
            }
        }
    }
    found
}

/// server-everything's streamable HTTP mode, bound to 127.0.0.1 only.
fn everything_http() -> Served {
    let npm = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("npm");
    let bin = npm.join("node_modules/.bin/mcp-server-everything");
    assert!(
        bin.exists(),
        "{} is missing: run `npm ci --prefix tests/npm`",
        bin.display()
    );
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new(bin)
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .env(
            "NODE_OPTIONS",
            format!("--require {}", npm.join("loopback.cjs").display()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("server-everything starts");
    let served = Served {
        child,
        url: format!("http://127.0.0.1:{port}/mcp"),
    };
    assert!(
        wait_for(Duration::from_secs(30), || !listeners(port).is_empty()),
        "server-everything listens"
    );
    // 0100007F is 127.0.0.1 in /proc's byte order.
    assert_eq!(
        listeners(port),
        vec![format!("0100007F:{port:04X}")],
        "loopback only"
    );
    served
}

fn http_host(scratch: &Scratch, url: &str, settings: Value) -> weir_host::Host {
    http_host_with(scratch, url, settings, json!({}))
}

fn http_host_with(scratch: &Scratch, url: &str, settings: Value, weir: Value) -> weir_host::Host {
    let mut entry = json!({ "url": url, "headers": { "X-Weir-Test": "${WEIR_TEST_HEADER:-yes}" } });
    if let (Some(e), Some(s)) = (entry.as_object_mut(), settings.as_object()) {
        e.extend(s.clone());
    }
    scratch.host_with(weir, json!({ "test": entry }))
}

/// Plugins reach the test server over HTTP exactly as over stdio: one
/// session for 200 calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_http_share_one_session() {
    let scratch = Scratch::new("http");
    let server = test_server_http(&scratch);
    let host = http_host(&scratch, &server.url, json!({}));
    let fanout = load(&host, "fanout");
    let input =
        json!({"server": "test", "tool": "echo", "arguments": {"message": "hi"}, "count": 200});
    let out: Value =
        serde_json::from_str(&host.run(&fanout, &input.to_string()).await.expect("runs"))
            .expect("json");
    assert_eq!(out, json!({"calls": 200, "ok": 200, "errors": 0}));
    // Keep-alive: the connections the concurrent calls opened are reused
    // (2026-07-28 has no session to keep; the pool is what stays).
    let opened = http_connections(&host);
    assert!(opened >= 1, "connections are counted");
    let testbed = load(&host, "testbed");
    assert_eq!(
        host.run(&testbed, "echo:h:20").await.expect("runs"),
        "20 ok"
    );
    // One may still be opened while a connection the last concurrent
    // call used is being handed back; without pooling it is all 20.
    let new = http_connections(&host) - opened;
    assert!(
        new <= 4,
        "20 calls one after another reuse connections, yet opened {new}"
    );
    assert_eq!(scratch.sessions().len(), 1);
    host.shutdown().await;
}

/// A 2026-07-28 server over HTTP tells weir its tools changed on the
/// `subscriptions/listen` stream weir keeps open (one, on a pooled
/// connection): with a ten-minute cache hint, nothing else could have
/// refreshed the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_changes_arrive_on_a_listen_stream_over_http() {
    let scratch = Scratch::new("http-listen");
    let server = test_server_http_with(&scratch, &[("WEIR_TEST_TOOLS_TTL_MS", "600000")]);
    let host = http_host(&scratch, &server.url, json!({}));
    let testbed = load(&host, "testbed");
    let listed = host.run(&testbed, "list").await.expect("runs");
    assert!(!listed.contains("test/late"), "{listed}");
    assert!(
        support::eventually(Duration::from_secs(30), || async {
            scratch.events("listen") == 1
        })
        .await,
        "weir opened one listen stream"
    );
    assert!(
        support::late_appears(&host, &testbed, "enable_late", Duration::from_secs(30)).await,
        "the new tool is listed"
    );
    assert_eq!(
        host.run(&testbed, "call:test:late:").await.expect("runs"),
        "ok:late"
    );
    assert_eq!(scratch.events("listen"), 1);
    assert_eq!(
        scratch.events("list-tools"),
        2,
        "the first, and the one after the change"
    );
    host.shutdown().await;
}

/// `weir_upstream_http_connections_total` of server `test`.
fn http_connections(host: &weir_host::Host) -> u64 {
    let metrics = host.render_metrics();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("weir_upstream_http_connections_total{server=\"test\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no connection count in:\n{metrics}"))
}

/// The server forgets the session (HTTP 404): the client re-initializes
/// once and the calls go on. (Sessions are 2025-11-25's: 2026-07-28 has
/// none to forget.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_http_session_is_reinitialized_once() {
    let scratch = Scratch::new("http-expire");
    let server = test_server_http(&scratch);
    let host = http_host(&scratch, &server.url, json!({"protocol": "2025-11-25"}));
    let testbed = load(&host, "testbed");
    assert_eq!(host.run(&testbed, "echo:a:3").await.expect("runs"), "3 ok");
    assert_eq!(
        host.run(&testbed, "call:test:expire_sessions:")
            .await
            .expect("runs"),
        "ok:expiring"
    );
    assert!(
        wait_for(Duration::from_secs(30), || scratch
            .events("sessions-expired")
            >= 1),
        "the server dropped its sessions"
    );
    assert_eq!(
        host.run(&testbed, "echo:b:10").await.expect("runs"),
        "10 ok"
    );
    assert_eq!(scratch.sessions().len(), 2, "one re-initialize");
    host.shutdown().await;
}

/// A timeout over HTTP reaches the server as a cancellation too (a
/// `notifications/cancelled` in the 2025-11-25 session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_timeouts_cancel_at_the_server() {
    let scratch = Scratch::new("http-cancel");
    let server = test_server_http(&scratch);
    let host = http_host(
        &scratch,
        &server.url,
        json!({"call_timeout_secs": 0.5, "protocol": "2025-11-25"}),
    );
    let testbed = load(&host, "testbed");
    assert_eq!(
        host.run(&testbed, "call:test:hang:").await.expect("runs"),
        "timeout"
    );
    assert!(
        support::eventually(Duration::from_secs(5), || async {
            scratch.events("cancelled") == 1
        })
        .await,
        "server saw the cancellation"
    );
    host.shutdown().await;
}

/// On 2026-07-28 a timeout over HTTP cancels the call the way that
/// revision has it — the request's response stream is closed, with no
/// `notifications/cancelled` — and the server stops working on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_timeouts_cancel_at_the_server_on_2026() {
    let scratch = Scratch::new("http-cancel-2026");
    let server = test_server_http(&scratch);
    let host = http_host(
        &scratch,
        &server.url,
        json!({"call_timeout_secs": 0.5, "protocol": "2026-07-28"}),
    );
    let testbed = load(&host, "testbed");
    assert_eq!(
        host.run(&testbed, "call:test:hang:").await.expect("runs"),
        "timeout"
    );
    assert!(
        support::eventually(Duration::from_secs(10), || async {
            scratch.events("hang-abandoned") == 1
        })
        .await,
        "the server's handler was cancelled"
    );
    // The session goes on.
    assert_eq!(host.run(&testbed, "echo:a:3").await.expect("runs"), "3 ok");
    assert_eq!(
        scratch.events("cancelled"),
        0,
        "closing the stream is the signal: no notifications/cancelled"
    );
    host.shutdown().await;
}

/// Nobody listening: `unavailable`, naming the server, and the host goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_http_server_is_unavailable() {
    let scratch = Scratch::new("http-down");
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let host = http_host(
        &scratch,
        &format!("http://127.0.0.1:{port}/mcp"),
        json!({"startup_timeout_secs": 5}),
    );
    let testbed = load(&host, "testbed");
    let out = host.run(&testbed, "call:test:echo:{}").await.expect("runs");
    assert!(
        out.starts_with("unavailable:server `test` failed to start"),
        "{out}"
    );
    assert_eq!(
        host.run(&testbed, r#"call:builtin:echo:{"message":"x"}"#)
            .await
            .expect("runs"),
        "ok:x"
    );
    host.shutdown().await;
}

/// server-everything over streamable HTTP: `hello` and `fanout` work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_over_http() {
    let scratch = Scratch::new("everything-http");
    let server = everything_http();
    let host = http_host(&scratch, &server.url, json!({}));
    let hello = load(&host, "hello");
    let fanout = load(&host, "fanout");
    let greeting = host.run(&hello, "http").await.expect("hello runs");
    assert!(
        greeting == "Echo: Hello, http!" || greeting == "Hello, http!",
        "{greeting}"
    );
    let input =
        json!({"server": "test", "tool": "get-sum", "arguments": {"a": 1, "b": 2}, "count": 100});
    let out: Value =
        serde_json::from_str(&host.run(&fanout, &input.to_string()).await.expect("runs"))
            .expect("json");
    assert_eq!(out, json!({"calls": 100, "ok": 100, "errors": 0}));
    host.shutdown().await;
}
