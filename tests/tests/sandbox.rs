//! A plugin reaches nothing but `call-tool`/`list-tools`, and nothing it
//! does hurts the host: each fault ends its own run with an error that says
//! which, and the next run works.

mod support;

use serde_json::{Value, json};
use support::{Scratch, load};
use weir_host::{HostRunError, RunError};

/// Sockets, DNS, files and the environment are all out of reach, and the
/// host keeps serving afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_files_and_environment_are_unreachable() {
    let scratch = Scratch::new("hostile");
    let host = scratch.host(json!({}));
    let testbed = load(&host, "testbed");

    let net: Value =
        serde_json::from_str(&host.run(&testbed, "tcp").await.expect("runs")).expect("json");
    for probe in ["tcp", "udp", "dns"] {
        let seen = net[probe].as_str().expect("probe result");
        assert!(seen.starts_with("error("), "{probe}: {seen}");
    }

    // The same, through wasi:sockets directly rather than std.
    let raw: Value = serde_json::from_str(&host.run(&testbed, "raw-sockets").await.expect("runs"))
        .expect("json");
    for probe in ["tcp", "udp", "dns"] {
        let seen = raw[probe].as_str().expect("probe result");
        assert!(seen.starts_with("error("), "raw {probe}: {seen}");
    }

    let fs: Value =
        serde_json::from_str(&host.run(&testbed, "fs").await.expect("runs")).expect("json");
    for probe in ["read", "list", "write"] {
        let seen = fs[probe].as_str().expect("probe result");
        assert!(seen.starts_with("error("), "{probe}: {seen}");
    }
    assert!(!std::path::Path::new("/tmp/weir-escape").exists());

    // The host has PATH, HOME and more; the plugin sees none of them.
    assert!(std::env::vars().count() > 0);
    assert_eq!(
        host.run(&testbed, "env").await.expect("runs"),
        "vars=0 args=0"
    );
    assert_eq!(
        host.run(&testbed, "echo:after:3")
            .await
            .expect("host unaffected"),
        "3 ok"
    );
    host.shutdown().await;
}

/// An infinite loop is stopped by the deadline and an unbounded allocation
/// by the memory limit; each says so, and the next run works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loops_and_memory_bombs_end_only_their_run() {
    let scratch = Scratch::new("limits");
    let host = scratch.host(json!({"deadline_secs": 1, "memory_limit_mb": 32}));
    let testbed = load(&host, "testbed");

    let looped = host.run(&testbed, "loop").await.unwrap_err();
    assert_eq!(
        looped,
        HostRunError::Run(RunError::Deadline(std::time::Duration::from_secs(1)))
    );
    assert!(looped.to_string().contains("deadline of 1s"), "{looped}");

    let bomb = host.run(&testbed, "alloc").await.unwrap_err();
    assert_eq!(bomb, HostRunError::Run(RunError::MemoryLimit(32 << 20)));
    assert!(
        bomb.to_string().contains("memory limit of 32 MiB"),
        "{bomb}"
    );

    let panicked = host.run(&testbed, "panic").await.unwrap_err();
    let HostRunError::Run(RunError::Panic(message)) = &panicked else {
        panic!("expected a panic, got {panicked:?}")
    };
    assert!(message.starts_with("boom on request (at "), "{message}");

    let failed = host.run(&testbed, "fail:on purpose").await.unwrap_err();
    assert_eq!(
        failed,
        HostRunError::Run(RunError::Failed("failing on request: on purpose".into()))
    );

    assert_eq!(
        host.run(&testbed, "echo:next:2")
            .await
            .expect("next run works"),
        "2 ok"
    );
    host.shutdown().await;
}

/// The deadline covers time spent waiting in `call-tool`: a run stuck on a
/// slow tool is stopped too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_covers_waiting_in_calls() {
    let scratch = Scratch::new("slow-call");
    let host = scratch.host(json!({"deadline_secs": 1}));
    let testbed = load(&host, "testbed");
    let stuck = host.run(&testbed, "sleep:60000").await.unwrap_err();
    assert_eq!(
        stuck,
        HostRunError::Run(RunError::Deadline(std::time::Duration::from_secs(1)))
    );
    assert_eq!(
        host.run(&testbed, "echo:after:1")
            .await
            .expect("session still serves"),
        "1 ok"
    );
    assert_eq!(scratch.sessions().len(), 1);
    host.shutdown().await;
}

/// A call slower than the per-call timeout reaches the plugin as `timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_calls_time_out() {
    let scratch = Scratch::new("call-timeout");
    let host = scratch.host(json!({"call_timeout_secs": 0.5}));
    let testbed = load(&host, "testbed");
    assert_eq!(
        host.run(&testbed, "sleep:30000").await.expect("runs"),
        "timeout"
    );
    assert_eq!(
        host.run(&testbed, "sleep:1").await.expect("runs"),
        "ok:slept"
    );
    host.shutdown().await;
}

/// Unknown server, unknown tool and malformed arguments each arrive as the
/// right typed error, with a message naming what was wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_calls_get_typed_errors() {
    let scratch = Scratch::new("bad-calls");
    let host = scratch.host(json!({}));
    let testbed = load(&host, "testbed");
    let cases = [
        (
            "call:nowhere:echo:{}",
            "not-found:no server named `nowhere` (configured: builtin, test)",
        ),
        (
            "call:test:nothing:{}",
            "not-found:server `test` has no tool `nothing` (it has: ask, ask_legacy, bad_answer, bad_shape, crash, echo, enable_late, enable_late_quietly, expire_sessions, fail, garbage, hang, kv_get, kv_set, nap, pid, sleep, test_logging_tool, test_missing_capability, test_streaming_elicitation, test_trigger_tool_change)",
        ),
        (
            "call:test:echo:{not json",
            "invalid-arguments:arguments are not valid JSON",
        ),
        (
            "call:test:echo:[1,2]",
            "invalid-arguments:arguments must be a JSON object, got an array",
        ),
        (
            "call:test:echo:\"text\"",
            "invalid-arguments:arguments must be a JSON object, got a string",
        ),
        (
            "call:test:fail:{\"message\":\"no\"}",
            "tool-error:failed: no",
        ),
        ("call:test:echo:{\"message\":\"fine\"}", "ok:fine"),
    ];
    for (input, want) in cases {
        let got = host.run(&testbed, input).await.expect("runs");
        assert!(
            got.starts_with(want),
            "{input}\n  got:  {got}\n  want: {want}"
        );
    }
    host.shutdown().await;
}

/// Output past the cap is dropped, not fatal: a chatty plugin still
/// finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_output_is_capped() {
    let scratch = Scratch::new("output");
    let host = scratch.host(json!({"output_limit_bytes": 1000}));
    let testbed = load(&host, "testbed");
    assert_eq!(
        host.run(&testbed, "print:5000000").await.expect("runs"),
        "printed"
    );
    host.shutdown().await;
}

/// Files that are not plugins for weir are refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_plugins_are_refused_clearly() {
    let scratch = Scratch::new("not-plugins");
    let host = scratch.host(json!({}));
    let write = |name: &str, bytes: &[u8]| {
        let path = scratch.dir.join(name);
        std::fs::write(&path, bytes).expect("write");
        path.display().to_string()
    };
    let text = write("text.wasm", b"hello");
    // The smallest core module: magic and version 1.
    let core = write("core.wasm", b"\0asm\x01\0\0\0");
    // The smallest component: magic, version 0xd, layer 1 — exports no `run`.
    let empty = write("empty.wasm", b"\0asm\x0d\0\x01\0");
    let cut = std::fs::read(support::plugin_path("hello")).expect("hello");
    let truncated = write("truncated.wasm", &cut[..cut.len() / 2]);
    let cases = [
        (text, "is not a WebAssembly file"),
        (core, "is a core WebAssembly module, not a component"),
        (
            empty,
            "does not target weir's world `weir:agent/agent@0.1.0`",
        ),
        (truncated, "is not a valid component"),
        (
            scratch.dir.join("missing.wasm").display().to_string(),
            "cannot read plugin",
        ),
    ];
    for (path, want) in cases {
        let err = host
            .load(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains(want) && err.contains(&path),
            "{path}\n  got:  {err}\n  want: {want}"
        );
    }
    host.shutdown().await;
}
