//! Connections stay O(servers): however many calls and runs, the host
//! opens one session per server — checked by the server's own session log.

mod support;

use std::sync::Arc;

use futures::future::join_all;
use serde_json::{Value, json};
use support::{Scratch, load};
use weir_host::HostRunError;
use weir_host::gateway::{Caller, ToolGateway};

/// One run making 100 calls uses exactly one session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_hundred_calls_one_session() {
    let scratch = Scratch::new("one-run");
    let host = scratch.host(json!({}));
    let fanout = load(&host, "fanout");
    let input =
        json!({"server": "test", "tool": "echo", "arguments": {"message": "hi"}, "count": 100});
    let out = host
        .run(&fanout, &input.to_string())
        .await
        .expect("fanout runs");
    let out: Value = serde_json::from_str(&out).expect("fanout answers JSON");
    assert_eq!(out, json!({"calls": 100, "ok": 100, "errors": 0}));
    assert_eq!(scratch.sessions().len(), 1, "sessions seen by the server");
    host.shutdown().await;
}

/// 100 concurrent runs of 10 calls each in one host: still one session,
/// and every one of the 1,000 replies is the right one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_runs_share_one_session() {
    let scratch = Scratch::new("concurrent");
    let host = Arc::new(scratch.host(json!({})));
    let testbed = load(&host, "testbed");
    let runs: Vec<_> = (0..100)
        .map(|i| {
            let host = host.clone();
            let testbed = testbed.clone();
            tokio::spawn(async move { host.run(&testbed, &format!("echo:run{i}:10")).await })
        })
        .collect();
    for (i, run) in runs.into_iter().enumerate() {
        let out = run
            .await
            .expect("task")
            .unwrap_or_else(|e| panic!("run {i}: {e}"));
        assert_eq!(out, "10 ok", "run {i}");
    }
    assert_eq!(scratch.sessions().len(), 1, "sessions seen by the server");
    let stats = host.sessions().stats();
    let test = stats
        .iter()
        .find(|s| s.name == "test")
        .expect("test server stats");
    assert_eq!(test.sessions_opened, 1);
    host.shutdown().await;
}

/// Sessions start on first use only: a host that made no call to a server
/// never started it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_start_on_first_use() {
    let scratch = Scratch::new("lazy");
    let host = scratch.host(json!({}));
    let testbed = load(&host, "testbed");
    assert_eq!(
        host.run(&testbed, "env").await.expect("runs"),
        "vars=0 args=0"
    );
    assert!(scratch.sessions().is_empty(), "no call, no session");
    assert!(
        host.sessions()
            .stats()
            .iter()
            .all(|s| s.sessions_opened == 0)
    );
    host.shutdown().await;
}

/// `list-tools` comes from the session's cache: listing and calling many
/// times opens nothing more, and every server's tools are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_tools_is_cached() {
    let scratch = Scratch::new("list");
    let host = scratch.host(json!({}));
    let testbed = load(&host, "testbed");
    for _ in 0..5 {
        let listed = host.run(&testbed, "list").await.expect("lists");
        for tool in [
            "test/echo",
            "test/sleep",
            "test/crash",
            "builtin/echo",
            "builtin/kv_get",
        ] {
            assert!(listed.split(',').any(|t| t == tool), "{tool} in {listed}");
        }
    }
    assert_eq!(scratch.sessions().len(), 1);
    let direct = host.sessions().list_tools(&Caller::new("test")).await;
    assert!(
        direct
            .iter()
            .any(|t| t.server == "test" && t.name == "sleep" && t.input_schema.contains("\"ms\""))
    );
    host.shutdown().await;
}

/// A server that dies mid-call: that call fails `unavailable` (never
/// silently re-sent), the next call gets a new session — exactly one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_server_is_restarted_once() {
    let scratch = Scratch::new("crash");
    let host = scratch.host(json!({}));
    let testbed = load(&host, "testbed");
    assert_eq!(
        host.run(&testbed, "echo:before:3").await.expect("runs"),
        "3 ok"
    );
    let crashed = host.run(&testbed, "call:test:crash:").await.expect("runs");
    assert!(crashed.starts_with("unavailable:"), "{crashed}");
    assert!(
        crashed.contains("crashing on request"),
        "the server's last words are reported: {crashed}"
    );
    let first_pid = scratch.sessions()[0];
    assert!(
        support::eventually(std::time::Duration::from_secs(10), || async {
            !support::alive(first_pid)
        })
        .await
    );

    let inputs: Vec<String> = (0..10).map(|i| format!("echo:after{i}:5")).collect();
    // Polled together, so the restart really is contended.
    let after = join_all(inputs.iter().map(|input| host.run(&testbed, input))).await;
    for out in after {
        assert_eq!(out.expect("runs"), "5 ok");
    }
    assert_eq!(
        scratch.sessions().len(),
        2,
        "one session before the crash, one after"
    );
    host.shutdown().await;
}

/// A graceful stop lets runs in flight finish, refuses new ones, then
/// closes every session; runs past the grace period are stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_runs_in_flight() {
    let scratch = Scratch::new("drain");
    let host = Arc::new(scratch.host(json!({})));
    let testbed = load(&host, "testbed");
    let slow = {
        let (host, testbed) = (host.clone(), testbed.clone());
        tokio::spawn(async move { host.run(&testbed, "sleep:500").await })
    };
    let stuck = {
        let (host, testbed) = (host.clone(), testbed.clone());
        tokio::spawn(async move { host.run(&testbed, "call:test:hang:").await })
    };
    // Both runs are inside their calls: the server saw each.
    assert!(
        support::eventually(std::time::Duration::from_secs(30), || async {
            scratch.events("call sleep") == 1 && scratch.events("call hang") == 1
        })
        .await
    );
    let drain = {
        let host = host.clone();
        tokio::spawn(async move { host.drain(std::time::Duration::from_secs(3)).await })
    };
    // Once the drain has begun, a new run is refused.
    assert!(
        support::eventually(std::time::Duration::from_secs(30), || async {
            host.run(&testbed, "env").await == Err(HostRunError::ShuttingDown)
        })
        .await,
        "no new runs"
    );
    assert_eq!(
        slow.await.expect("task"),
        Ok("ok:slept".to_owned()),
        "finished within the grace"
    );
    assert_eq!(
        stuck.await.expect("task"),
        Err(HostRunError::ShuttingDown),
        "stopped after the grace"
    );
    assert_eq!(drain.await.expect("task"), 1, "one run outlived the grace");
    assert!(!support::alive(scratch.sessions()[0]), "server ended");
}
