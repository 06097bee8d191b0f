//! Sessions survive the real world — servers that crash, never start,
//! hang, or write garbage — without ever opening more connections than
//! one per slot plus one per recovery.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use support::{Scratch, alive, eventually, load, load_as};
use weir_host::{HostRunError, RunError};

fn stats_of(host: &weir_host::Host, server: &str) -> weir_host::session::ServerStats {
    host.sessions()
        .stats()
        .into_iter()
        .find(|s| s.name == server)
        .expect("server stats")
}

/// 50 concurrent callers while the server is SIGKILLed 10 times: exactly
/// 1 + 10 sessions are opened; every call returns the right result or a
/// clear `unavailable`; no process is left at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kills_under_load_cost_one_session_each() {
    let scratch = Scratch::new("kill-storm");
    let host = Arc::new(scratch.host(json!({})));
    let testbed = load(&host, "testbed");
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..50)
        .map(|i| {
            let (host, testbed, stop) = (host.clone(), testbed.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ok, mut unavailable, mut round) = (0u64, 0u64, 0);
                while !stop.load(Ordering::Relaxed) {
                    let out = host
                        .run(&testbed, &format!("tolerant:c{i}r{round}:20"))
                        .await
                        .unwrap_or_else(|e| panic!("caller {i}: {e}"));
                    let (k, u) = out
                        .strip_prefix("ok=")
                        .and_then(|r| r.split_once(" unavailable="))
                        .unwrap_or_else(|| panic!("caller {i}: {out}"));
                    ok += k.parse::<u64>().expect("count");
                    unavailable += u.parse::<u64>().expect("count");
                    round += 1;
                }
                (ok, unavailable)
            })
        })
        .collect();

    let mut killed = Vec::new();
    for kill in 1..=10u64 {
        // Wait for the session that replaced the last one, then kill it.
        assert!(
            eventually(Duration::from_secs(30), || async {
                let s = stats_of(&host, "test");
                s.sessions_opened == kill && !s.pids.is_empty()
            })
            .await,
            "session {kill} did not come up: {:?}",
            stats_of(&host, "test")
        );
        let pid = stats_of(&host, "test").pids[0];
        tokio::time::sleep(Duration::from_millis(50)).await;
        let target = rustix::process::Pid::from_raw(pid as i32).expect("pid");
        rustix::process::kill_process(target, rustix::process::Signal::KILL).expect("kill server");
        killed.push(pid);
    }
    assert!(
        eventually(Duration::from_secs(30), || async {
            stats_of(&host, "test").sessions_opened == 11
        })
        .await,
        "recovered after the last kill"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut unavailable) = (0, 0);
    for caller in callers {
        let (k, u) = caller.await.expect("caller task");
        ok += k;
        unavailable += u;
    }
    assert_eq!(
        stats_of(&host, "test").sessions_opened,
        11,
        "1 + 10 kills, never more"
    );
    assert_eq!(scratch.sessions().len(), 11);
    eprintln!("kill storm: {ok} calls ok, {unavailable} unavailable, 11 sessions");
    assert!(
        ok > 0,
        "calls succeeded ({ok} ok, {unavailable} unavailable)"
    );
    let last = stats_of(&host, "test").pids;
    host.shutdown().await;
    for pid in killed.into_iter().chain(last) {
        assert!(
            eventually(Duration::from_secs(5), || async move { !alive(pid) }).await,
            "server {pid} left behind"
        );
    }
}

/// A server that cannot start: attempts follow the backoff schedule, the
/// circuit opens after the threshold and calls fail fast; once the server
/// is fixed, the probe after the cool-down brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_starts_open_the_circuit_then_recover() {
    let scratch = Scratch::new("circuit");
    std::fs::write(scratch.fail_start_flag(), b"").expect("flag");
    let host = scratch.host(json!({
        "backoff_base_secs": 0.05, "backoff_max_secs": 0.2,
        "circuit_threshold": 5, "circuit_cooldown_secs": 3.0
    }));
    let testbed = load(&host, "testbed");
    let call = r#"call:test:echo:{"message":"hi"}"#;
    let mut outcomes = Vec::new();
    for _ in 0..20 {
        outcomes.push(host.run(&testbed, call).await.expect("runs"));
    }
    assert_eq!(
        scratch.events("start-failed"),
        5,
        "attempts allowed by the schedule"
    );
    for (i, out) in outcomes.iter().enumerate() {
        let want = if i < 5 {
            "failed to start"
        } else {
            "circuit open: 5 failed starts in a row"
        };
        assert!(
            out.starts_with("unavailable:") && out.contains(want),
            "call {i}: {out}"
        );
    }
    assert!(
        outcomes[0].contains("failing to start on request"),
        "the server's stderr is quoted: {}",
        outcomes[0]
    );
    // Operators see it: the metrics (and so `weir stats` and the status
    // page) say the circuit is open, until the probe closes it.
    let open = "weir_upstream_circuit_open{server=\"test\"} 1";
    let metrics = host.render_metrics();
    assert!(metrics.lines().any(|l| l == open), "{metrics}");

    std::fs::remove_file(scratch.fail_start_flag()).expect("fix the server");
    let recovered = eventually(Duration::from_secs(10), || async {
        host.run(&testbed, call).await.is_ok_and(|o| o == "ok:hi")
    })
    .await;
    assert!(recovered, "the probe after the cool-down succeeds");
    let closed = "weir_upstream_circuit_open{server=\"test\"} 0";
    assert!(host.render_metrics().lines().any(|l| l == closed));
    assert_eq!(
        scratch.events("start-failed"),
        5,
        "no attempt while the circuit was open"
    );
    assert_eq!(scratch.sessions().len(), 1);
    host.shutdown().await;
}

/// A server that never answers `initialize` is given up on after the
/// startup timeout, with a message saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_that_never_initialize_time_out() {
    let scratch = Scratch::new("hang-start");
    let mut entry = scratch.test_server(json!({"startup_timeout_secs": 0.5}));
    entry["env"]["WEIR_TEST_HANG_START"] = json!("1");
    let host = scratch.host_with(json!({}), json!({ "test": entry }));
    let testbed = load(&host, "testbed");
    let out = host.run(&testbed, "call:test:echo:{}").await.expect("runs");
    assert!(
        out.starts_with("unavailable:")
            && out.contains("no answer to initialize (or server/discover) within 0.5 s"),
        "{out}"
    );
    assert!(
        out.contains("hanging before initialize on request"),
        "{out}"
    );
    host.shutdown().await;
}

/// A hanging tool: the plugin gets `timeout` and the server receives
/// `notifications/cancelled`; a run that ends (deadline) cancels its call
/// at the server too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_and_ended_runs_cancel_at_the_server() {
    let scratch = Scratch::new("cancel");
    let host = scratch.host(json!({"call_timeout_secs": 0.5, "deadline_secs": 3}));
    let testbed = load(&host, "testbed");
    assert_eq!(
        host.run(&testbed, "call:test:hang:").await.expect("runs"),
        "timeout"
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            scratch.events("cancelled") == 1
        })
        .await,
        "server saw the cancellation"
    );

    let scratch2 = Scratch::new("cancel-run");
    let host2 = scratch2.host(json!({"deadline_secs": 1}));
    let testbed2 = load(&host2, "testbed");
    let ended = host2.run(&testbed2, "call:test:hang:").await.unwrap_err();
    assert_eq!(
        ended,
        HostRunError::Run(RunError::Deadline(Duration::from_secs(1)))
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            scratch2.events("cancelled") == 1
        })
        .await,
        "ended run's call cancelled"
    );
    host.shutdown().await;
    host2.shutdown().await;
}

/// A server writing non-JSON, or JSON that is not JSON-RPC: its session is
/// closed with a protocol error naming the line, the next call gets a new
/// session, and other servers are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_recycles_the_session() {
    let scratch = Scratch::new("garbage");
    let host = scratch.host(json!({}));
    let testbed = load(&host, "testbed");
    let cases = [
        ("garbage", "\"this is not json\""),
        ("bad_shape", "no \"jsonrpc\""),
    ];
    for (i, (tool, want)) in cases.iter().enumerate() {
        let out = host
            .run(&testbed, &format!("call:test:{tool}:"))
            .await
            .expect("runs");
        assert!(
            out.starts_with("protocol-error:") && out.contains(want),
            "{tool}: {out}"
        );
        assert_eq!(
            host.run(&testbed, "echo:after:3").await.expect("next call"),
            "3 ok",
            "{tool}: a new session serves"
        );
        assert_eq!(scratch.sessions().len(), i + 2, "{tool}: one new session");
    }
    let builtin = host
        .run(&testbed, r#"call:builtin:echo:{"message":"fine"}"#)
        .await
        .expect("runs");
    assert_eq!(builtin, "ok:fine");
    host.shutdown().await;
}

/// A call answered with something that is not a tool result fails at once
/// with a protocol error saying what was wrong (not at its timeout); the
/// session is fine and keeps serving, and the server's second, late answer
/// to the same call is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_answer_fails_only_its_call() {
    let scratch = Scratch::new("bad-answer");
    let host = scratch.host(json!({}));
    let testbed = load(&host, "testbed");
    let out = host
        .run(&testbed, "call:test:bad_answer:")
        .await
        .expect("runs");
    assert!(
        out.starts_with("protocol-error:") && out.contains("not a tool result"),
        "{out}"
    );
    assert_eq!(
        host.run(&testbed, "echo:after:3").await.expect("next call"),
        "3 ok"
    );
    assert_eq!(scratch.sessions().len(), 1, "the same session serves");
    host.shutdown().await;
}

/// `notifications/tools/list_changed` refreshes the cache: `list-tools`
/// and `call-tool` see the new tool — on a legacy revision from the
/// session, on 2026-07-28 from the `subscriptions/listen` stream weir
/// keeps open (the list's cache hint is ten minutes: only the
/// notification can have refreshed it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_changed_refreshes_the_tools_on_both_revisions() {
    for protocol in ["2025-11-25", "2026-07-28"] {
        let scratch = Scratch::new(&format!("list-changed-{protocol}"));
        let mut test = scratch.test_server(json!({"protocol": protocol}));
        test["env"]["WEIR_TEST_TOOLS_TTL_MS"] = json!("600000");
        let host = scratch.host_with(json!({}), json!({"test": test}));
        let testbed = load(&host, "testbed");
        let listed = host.run(&testbed, "list").await.expect("runs");
        assert!(!listed.contains("test/late"), "{listed}");
        assert!(
            host.run(&testbed, "call:test:late:")
                .await
                .expect("runs")
                .starts_with("not-found:")
        );
        // A change is heard from the moment the stream is open: on
        // 2026-07-28, wait for it (a change before would wait out the
        // cache hint, as the server asked).
        if protocol == "2026-07-28" {
            assert!(
                support::eventually(Duration::from_secs(30), || async {
                    scratch.events("listen") == 1
                })
                .await,
                "weir opened its listen stream"
            );
        }
        assert!(
            support::late_appears(&host, &testbed, "enable_late", Duration::from_secs(30)).await,
            "{protocol}: list-tools shows the new tool"
        );
        assert_eq!(
            host.run(&testbed, "call:test:late:").await.expect("runs"),
            "ok:late"
        );
        let listening = scratch.events("listen");
        if protocol == "2026-07-28" {
            assert_eq!(listening, 1, "one stream for the session");
        } else {
            assert_eq!(listening, 0, "{protocol} has notifications on the session");
        }
        assert_eq!(scratch.sessions().len(), 1);
        host.shutdown().await;
        // The stream is cancelled before the server's stdin closes (a
        // server may wait for it to end before it exits).
        assert_eq!(scratch.events("unlisten"), listening);
    }
}

/// A 2026-07-28 server whose `tools/list` says `ttlMs: 600000` is not
/// asked again for ten minutes: a tool it adds without saying so is
/// neither listed nor callable, and no read or call costs a `tools/list`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_cache_hint_keeps_the_list() {
    let scratch = Scratch::new("ttl-long");
    let mut test = scratch.test_server(json!({}));
    test["env"]["WEIR_TEST_TOOLS_TTL_MS"] = json!("600000");
    let host = scratch.host_with(json!({}), json!({"test": test}));
    let testbed = load(&host, "testbed");
    assert_eq!(
        host.run(&testbed, "call:test:enable_late_quietly:")
            .await
            .expect("runs"),
        "ok:enabled"
    );
    for _ in 0..3 {
        let listed = host.run(&testbed, "list").await.expect("runs");
        assert!(!listed.contains("test/late"), "{listed}");
    }
    assert!(
        host.run(&testbed, "call:test:late:")
            .await
            .expect("runs")
            .starts_with("not-found:")
    );
    assert_eq!(scratch.events("list-tools"), 1, "only the session's first");
    host.shutdown().await;
}

/// `ttlMs: 0` (rmcp's and the Python SDK's default): calls use the list in
/// hand — no `tools/list` per call — while readers get a list refetched
/// once it is older than weir's floor of a second; so a tool the server
/// added without saying so shows up, becomes callable, and the change is
/// counted for `weir serve`'s clients. A burst of readers costs at most
/// one `tools/list` per second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_cache_hint_refetches_for_readers_not_for_calls() {
    let scratch = Scratch::new("ttl-zero");
    let mut test = scratch.test_server(json!({}));
    test["env"]["WEIR_TEST_TOOLS_TTL_MS"] = json!("0");
    let host = scratch.host_with(json!({}), json!({"test": test}));
    let changes = host.sessions().tool_changes();
    let testbed = load(&host, "testbed");
    for i in 0..20 {
        assert_eq!(
            host.run(
                &testbed,
                &format!("call:test:echo:{{\"message\":\"m{i}\"}}")
            )
            .await
            .expect("runs"),
            format!("ok:m{i}")
        );
    }
    assert_eq!(scratch.events("list-tools"), 1, "calls do not list");
    assert!(
        support::late_appears(
            &host,
            &testbed,
            "enable_late_quietly",
            Duration::from_secs(30)
        )
        .await,
        "a reader sees the new tool once the list is stale"
    );
    assert_eq!(
        host.run(&testbed, "call:test:late:").await.expect("runs"),
        "ok:late"
    );
    assert!(*changes.borrow() >= 1, "the refetch found the list changed");

    let before = scratch.events("list-tools");
    let started = std::time::Instant::now();
    let readers: Vec<_> = (0..10).map(|_| host.run(&testbed, "list")).collect();
    for listed in futures::future::join_all(readers).await {
        assert!(listed.expect("runs").contains("test/late"));
    }
    let lists = scratch.events("list-tools") - before;
    let seconds = started.elapsed().as_secs() as usize + 1;
    assert!(
        lists <= seconds,
        "{lists} tools/list for 10 readers in under {seconds} s"
    );
    host.shutdown().await;
}

/// `pool_size = 4`: four sessions, and calls spread over all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_spread_calls() {
    let scratch = Scratch::new("pool");
    let host = scratch.host_with(
        json!({}),
        json!({"test": scratch.test_server(json!({"pool_size": 4}))}),
    );
    let testbed = load(&host, "testbed");
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let out = host.run(&testbed, "call:test:pid:").await.expect("runs");
        pids.insert(out.strip_prefix("ok:").expect("pid").to_owned());
    }
    assert_eq!(pids.len(), 4, "calls reached {pids:?}");
    assert_eq!(scratch.sessions().len(), 4);
    assert_eq!(stats_of(&host, "test").pids.len(), 4);
    host.shutdown().await;
}

/// `scope = plugin`: a session per plugin, and what one plugin stores the
/// other cannot read; `shared` (the default) shares one session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_scope_isolates_state() {
    for (scope, b_sees, sessions) in [
        ("plugin", "tool-error:no `k`", 2),
        ("shared", "ok:from-a", 1),
    ] {
        let scratch = Scratch::new("scope");
        let host = scratch.host_with(
            json!({}),
            json!({"test": scratch.test_server(json!({"scope": scope}))}),
        );
        let a = load_as(&host, &scratch, "testbed", "alpha");
        let b = load_as(&host, &scratch, "testbed", "beta");
        let set = r#"call:test:kv_set:{"key":"k","value":"from-a"}"#;
        let get = r#"call:test:kv_get:{"key":"k"}"#;
        assert_eq!(host.run(&a, set).await.expect("runs"), "ok:ok");
        assert_eq!(
            host.run(&a, get).await.expect("runs"),
            "ok:from-a",
            "{scope}"
        );
        assert_eq!(host.run(&b, get).await.expect("runs"), b_sees, "{scope}");
        assert_eq!(scratch.sessions().len(), sessions, "{scope}");
        host.shutdown().await;
    }
}

/// Plugin-scoped sessions stay within `max_sessions`: a new plugin's
/// session replaces the least recently used idle one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_scope_is_bounded() {
    let scratch = Scratch::new("scope-bound");
    let host = scratch.host_with(
        json!({}),
        json!({"test": scratch.test_server(json!({"scope": "plugin", "max_sessions": 2}))}),
    );
    for name in ["p1", "p2", "p3", "p4"] {
        let plugin = load_as(&host, &scratch, "testbed", name);
        assert_eq!(host.run(&plugin, "echo:x:2").await.expect("runs"), "2 ok");
        assert!(stats_of(&host, "test").pids.len() <= 2, "at most 2 open");
    }
    assert_eq!(scratch.sessions().len(), 4);
    let first = scratch.sessions()[0];
    assert!(
        eventually(Duration::from_secs(5), || async { !alive(first) }).await,
        "evicted session closed"
    );
    host.shutdown().await;
}

/// An idle session that stops answering pings is recycled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pings_recycle_the_session() {
    let scratch = Scratch::new("ping");
    let host = scratch.host_with(
        json!({}),
        json!({"test": scratch.test_server(json!({"ping_interval_secs": 0.2, "call_timeout_secs": 1}))}),
    );
    let testbed = load(&host, "testbed");
    assert_eq!(host.run(&testbed, "echo:a:1").await.expect("runs"), "1 ok");
    let pid = scratch.sessions()[0];
    // Freeze the server: it stops answering, but its pipes stay open.
    let target = rustix::process::Pid::from_raw(pid as i32).expect("pid");
    rustix::process::kill_process(target, rustix::process::Signal::STOP).expect("stop server");
    assert!(
        eventually(Duration::from_secs(20), || async {
            stats_of(&host, "test").pids.is_empty()
        })
        .await,
        "the frozen session is marked broken"
    );
    assert_eq!(host.run(&testbed, "echo:b:1").await.expect("runs"), "1 ok");
    assert_eq!(scratch.sessions().len(), 2);
    host.shutdown().await;
    assert!(!alive(pid), "the frozen server was killed");
}
