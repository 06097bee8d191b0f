//! Running plugins nobody has read: the operator's policy decides, the
//! plugin directory survives bad files, compiled plugins are cached, and a
//! crowd of hostile plugins running at once hurts nothing.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Scratch, load, load_as, plugin_path};
use weir_host::plugins::PluginError;
use weir_host::{HostRunError, RunError};

/// A component with a custom section appended: same code, other bytes.
fn variant(name: &str, tag: u32) -> Vec<u8> {
    let mut bytes = std::fs::read(plugin_path(name)).expect("plugin");
    let payload = format!("weir-test-{tag}");
    bytes.push(0);
    bytes.push((1 + payload.len()) as u8);
    bytes.push(payload.len() as u8);
    bytes.extend_from_slice(payload.as_bytes());
    bytes
}

/// Every file in the plugins directory is validated on its own: the bad
/// ones say which file and why, the good ones load; case-only name clashes
/// and lying manifests are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_directory_survives_bad_files() {
    let scratch = Scratch::new("plugin-dir");
    let dir = scratch.dir.join("plugins");
    std::fs::create_dir_all(&dir).expect("dir");
    let put = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).expect("write");
    put(
        "hello.wasm",
        &std::fs::read(plugin_path("hello")).expect("hello"),
    );
    put("Hello.wasm", &variant("hello", 1));
    put(
        "fanout.wasm",
        &std::fs::read(plugin_path("fanout")).expect("fanout"),
    );
    put("fanout.toml", b"name = \"impostor\"\n");
    put("good.wasm", &variant("testbed", 2));
    put(
        "good.toml",
        b"version = \"1.0.0\"\ndescription = \"a test\"\n[policy]\nmax_calls_per_run = 3\n",
    );
    put("text.wasm", b"hello");
    put("core.wasm", b"\0asm\x01\0\0\0");
    put("empty.wasm", b"\0asm\x0d\0\x01\0");
    let hello = std::fs::read(plugin_path("hello")).expect("hello");
    put("truncated.wasm", &hello[..hello.len() / 3]);
    put("broken.wasm", &variant("testbed", 3));
    put("broken.toml", b"[policy]\nallow = 5\n");

    let config = scratch.config(json!({"plugins_dir": dir}), json!({}));
    let host = weir_host::Host::new(
        weir_host::Config::load(&config).expect("config"),
        Some(support::WEIR.into()),
    )
    .expect("host");
    let loaded = host.load_all().expect("directory");
    let outcome = |name: &str| {
        loaded
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.as_ref().map(|_| ()).map_err(ToString::to_string))
            .unwrap_or_else(|| panic!("{name} listed"))
    };
    assert_eq!(outcome("Hello"), Ok(()));
    assert_eq!(outcome("good"), Ok(()));
    let expect_err = |name: &str, want: &str| {
        let err = outcome(name).expect_err(name);
        assert!(err.contains(want), "{name}: {err}");
    };
    expect_err("hello", "plugin name `hello` is taken twice");
    expect_err(
        "fanout",
        "fanout.toml: it names the plugin `impostor`, but the file is `fanout.wasm`",
    );
    expect_err("text", "text.wasm is not a WebAssembly file");
    expect_err(
        "core",
        "core.wasm is a core WebAssembly module, not a component",
    );
    expect_err("empty", "empty.wasm does not target weir's world");
    expect_err("truncated", "truncated.wasm is not a valid component");
    expect_err(
        "broken",
        "broken.toml: line 2: invalid type: integer `5`, expected a sequence",
    );

    let good = host.load("good").expect("good loads");
    assert_eq!(
        good.policy().max_calls_per_run,
        3,
        "the manifest narrowed the call budget"
    );
    let out = host.run(&good, "echo:x:5").await.unwrap_err();
    assert_eq!(
        out,
        HostRunError::Run(RunError::Failed(
            "denied: this run has used its 3 tool calls".into()
        ))
    );
    host.shutdown().await;
}

/// A second host with the same cache compiles none of 20 plugins; a
/// corrupt entry is ignored and rebuilt, never loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_plugins_are_cached() {
    let scratch = Scratch::new("cache");
    let dir = scratch.dir.join("plugins");
    std::fs::create_dir_all(&dir).expect("dir");
    for i in 0..20 {
        std::fs::write(
            dir.join(format!("p{i:02}.wasm")),
            variant("testbed", 100 + i),
        )
        .expect("write");
    }
    let cache = scratch.dir.join("cache");
    let start = || {
        let config = scratch.config(json!({"plugins_dir": dir, "cache_dir": cache}), json!({}));
        let host = weir_host::Host::new(
            weir_host::Config::load(&config).expect("config"),
            Some(support::WEIR.into()),
        )
        .expect("host");
        let loaded = host.load_all().expect("directory");
        assert!(loaded.iter().all(|(_, r)| r.is_ok()), "all 20 load");
        host
    };
    assert_eq!(start().compile_counts(), (20, 0), "first start compiles");
    let second = start();
    assert_eq!(
        second.compile_counts(),
        (0, 20),
        "second start compiles nothing"
    );
    let p = second.load("p07").expect("loads");
    assert_eq!(
        second.run(&p, "env").await.expect("runs"),
        "vars=0 args=0",
        "a cached plugin runs"
    );

    let entry = std::fs::read_dir(&cache)
        .expect("cache dir")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().ends_with(".cwasm"))
        .expect("an entry")
        .path();
    let mut bytes = std::fs::read(&entry).expect("entry");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&entry, bytes).expect("corrupt");
    assert_eq!(
        start().compile_counts(),
        (1, 19),
        "the corrupt entry is rebuilt"
    );
    assert_eq!(start().compile_counts(), (0, 20), "and is good again");
}

/// Default deny: a plugin calls and sees only what it is granted; a denied
/// call never reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_grants_and_denies() {
    let scratch = Scratch::new("policy");
    let host = scratch.host(json!({
        "default_policy": {"allow": []},
        "plugins": {"alpha": {"allow": ["test/echo", "test/kv_*"], "max_argument_bytes": 100, "max_result_bytes": 100}}
    }));
    let alpha = load_as(&host, &scratch, "testbed", "alpha");
    let other = load_as(&host, &scratch, "testbed", "other");
    assert_eq!(
        host.run(&alpha, r#"call:test:echo:{"message":"hi"}"#)
            .await
            .expect("runs"),
        "ok:hi"
    );
    let denied = host.run(&alpha, "call:test:pid:").await.expect("runs");
    assert_eq!(
        denied,
        "denied:`test/pid` is not granted (granted: test/echo, test/kv_*)"
    );
    let nothing = host
        .run(&other, r#"call:test:echo:{"message":"hi"}"#)
        .await
        .expect("runs");
    assert_eq!(
        nothing,
        "denied:`test/echo` is not granted: this plugin may call no tools"
    );
    assert_eq!(
        host.run(&alpha, "list").await.expect("runs"),
        "test/echo,test/kv_get,test/kv_set"
    );
    assert_eq!(host.run(&other, "list").await.expect("runs"), "");

    let big = format!(r#"call:test:echo:{{"message":"{}"}}"#, "x".repeat(200));
    assert!(
        host.run(&alpha, &big)
            .await
            .expect("runs")
            .starts_with("denied:arguments are 214 bytes, more than the 100")
    );
    let echo_big = format!(r#"call:test:echo:{{"message":"{}"}}"#, "y".repeat(80));
    let refused = host.run(&alpha, &echo_big).await.expect("runs");
    assert!(
        refused.starts_with("denied:the result is") && refused.contains("more than the 100"),
        "{refused}"
    );

    assert_eq!(
        scratch.events("call pid"),
        0,
        "the denied call never reached the server"
    );
    assert_eq!(
        scratch.events("call echo"),
        2,
        "the allowed ones did; the oversized arguments did not"
    );
    host.shutdown().await;
}

/// A pinned plugin loads only with the pinned bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_plugins_must_match() {
    let scratch = Scratch::new("pin");
    let good =
        weir_host::plugins::sha256_hex(&std::fs::read(plugin_path("testbed")).expect("bytes"));
    let host = scratch.host(json!({"plugins": {
        "pinned": {"sha256": good},
        "wrong": {"sha256": "0".repeat(64)}
    }}));
    load_as(&host, &scratch, "testbed", "pinned");
    let copy = scratch.dir.join("wrong.wasm");
    std::fs::copy(plugin_path("testbed"), &copy).expect("copy");
    match host.load(&copy.display().to_string()) {
        Err(PluginError::Integrity {
            expected, actual, ..
        }) => {
            assert_eq!((expected, actual), ("0".repeat(64), good));
        }
        other => panic!(
            "expected an integrity error, got {:?}",
            other.map(|p| p.name().to_owned())
        ),
    }
    host.shutdown().await;
}

/// The CPU budget counts guest computation, not time waiting in calls;
/// the call rate is enforced by waiting, not failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_budget_and_rate() {
    let scratch = Scratch::new("cpu");
    let host = scratch.host(json!({"plugins": {
        "spinner": {"cpu_secs": 0.2, "deadline_secs": 20},
        "paced": {"calls_per_second": 20}
    }}));
    let spinner = load_as(&host, &scratch, "testbed", "spinner");
    assert_eq!(
        host.run(&spinner, "loop").await.unwrap_err(),
        HostRunError::Run(RunError::CpuBudget(Duration::from_millis(200)))
    );
    assert_eq!(
        host.run(&spinner, "sleep:1000")
            .await
            .expect("waiting is not CPU"),
        "ok:slept"
    );

    let paced = load_as(&host, &scratch, "testbed", "paced");
    let started = Instant::now();
    assert_eq!(host.run(&paced, "echo:p:30").await.expect("runs"), "30 ok");
    // A burst of 20, then 10 more at 20/s: at least half a second.
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    host.shutdown().await;
}

/// A granted scratch directory is private, usable, inescapable and gone
/// after the run; without the grant there is no filesystem at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_directory_is_private_and_temporary() {
    let scratch = Scratch::new("scratch-dir");
    let root = scratch.dir.join("scratch-root");
    std::fs::create_dir_all(&root).expect("root");
    let host = scratch.host(json!({
        "scratch_root": root,
        "plugins": {"writer": {"allow": [], "scratch_dir": true}}
    }));
    let writer = load_as(&host, &scratch, "testbed", "writer");
    let out: serde_json::Value =
        serde_json::from_str(&host.run(&writer, "scratch").await.expect("runs")).expect("json");
    assert_eq!(
        (out["write"].as_str(), out["read"].as_str()),
        (Some("ok"), Some("kept"))
    );
    for escape in ["up", "environ", "dotdot"] {
        let seen = out[escape].as_str().expect("probe");
        assert!(seen.starts_with("error("), "{escape}: {seen}");
    }
    assert_eq!(
        std::fs::read_dir(&root).expect("root").count(),
        0,
        "deleted after the run"
    );

    let plain = load_as(&host, &scratch, "testbed", "plain");
    let out: serde_json::Value =
        serde_json::from_str(&host.run(&plain, "scratch").await.expect("runs")).expect("json");
    assert!(
        out["write"].as_str().expect("probe").starts_with("error("),
        "no grant, no scratch"
    );
    host.shutdown().await;
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Every hostile plugin at once, beside well-behaved ones: each hostile
/// run ends with its own clear error, every good run is right, memory stays
/// bounded, no session is added, and nothing denied reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_crowd() {
    let scratch = Scratch::new("hostile-crowd");
    let host = Arc::new(scratch.host(json!({
        "deadline_secs": 5,
        "default_policy": {"allow": ["test/echo"], "max_calls_per_run": 1000, "max_argument_bytes": 1048576},
    })));
    let testbed = load(&host, "testbed");
    // Warm up: the session is open before the crowd arrives.
    assert_eq!(
        host.run(&testbed, "echo:warm:1").await.expect("runs"),
        "1 ok"
    );
    let rss_before = rss_kib();

    type Check = fn(&Result<String, HostRunError>) -> bool;
    let hostile: Vec<(&str, Check)> = vec![
        ("tcp", |r| {
            r.as_ref().is_ok_and(|o| {
                !o.contains("CONNECTED") && !o.contains("SENT") && !o.contains("RESOLVED")
            })
        }),
        ("raw-sockets", |r| {
            r.as_ref()
                .is_ok_and(|o| o.matches("error(").count() == 3 && o.contains("access-denied"))
        }),
        ("scratch", |r| {
            r.as_ref().is_ok_and(|o| {
                !o.contains("\"ok\"") && !o.contains("READ(") && !o.contains("LISTED(")
            })
        }),
        ("fs", |r| {
            r.as_ref().is_ok_and(|o| {
                !o.contains("READ(") && !o.contains("LISTED(") && !o.contains("WROTE")
            })
        }),
        ("env", |r| r.as_ref().is_ok_and(|o| o == "vars=0 args=0")),
        ("loop", |r| {
            matches!(r, Err(HostRunError::Run(RunError::Deadline(_))))
        }),
        (
            "recurse",
            |r| matches!(r, Err(HostRunError::Run(RunError::Trap(m))) if m.contains("stack overflow")),
        ),
        ("alloc", |r| {
            matches!(r, Err(HostRunError::Run(RunError::MemoryLimit(_))))
        }),
        ("print:100000000", |r| {
            r.as_ref().is_ok_and(|o| o == "printed")
        }),
        ("flood:1000000", |r| {
            matches!(r, Err(HostRunError::Run(RunError::CallBudget(1000))))
        }),
        ("call:test:pid:", |r| {
            r.as_ref()
                .is_ok_and(|o| o.starts_with("denied:`test/pid` is not granted"))
        }),
        ("call:builtin:kv_set:{\"key\":\"k\",\"value\":\"v\"}", |r| {
            r.as_ref().is_ok_and(|o| o.starts_with("denied:"))
        }),
        ("bigargs:10", |r| {
            r.as_ref()
                .is_ok_and(|o| o.starts_with("denied:arguments are 10485774 bytes"))
        }),
        ("call:test:echo:{not json", |r| {
            r.as_ref()
                .is_ok_and(|o| o.starts_with("invalid-arguments:"))
        }),
        (
            "badutf8",
            |r| matches!(r, Err(HostRunError::Run(RunError::Trap(m))) if m.contains("utf-8")),
        ),
        (
            "panic",
            |r| matches!(r, Err(HostRunError::Run(RunError::Panic(m))) if m.starts_with("boom on request")),
        ),
        ("bigresult:100", |r| {
            matches!(r, Err(HostRunError::Run(RunError::MemoryLimit(_))))
        }),
    ];
    let mut runs = Vec::new();
    for (input, check) in &hostile {
        let (host, testbed, input) = (host.clone(), testbed.clone(), input.to_string());
        runs.push((
            input.clone(),
            *check,
            tokio::spawn(async move { host.run(&testbed, &input).await }),
        ));
    }
    let good: Vec<_> = (0..20)
        .map(|i| {
            let (host, testbed) = (host.clone(), testbed.clone());
            tokio::spawn(async move { host.run(&testbed, &format!("echo:good{i}:20")).await })
        })
        .collect();
    for (input, check, run) in runs {
        let result = run.await.expect("task");
        assert!(check(&result), "{input}: {result:?}");
    }
    for (i, run) in good.into_iter().enumerate() {
        assert_eq!(
            run.await.expect("task"),
            Ok("20 ok".to_owned()),
            "good run {i}"
        );
    }
    let grown_mib = rss_kib().saturating_sub(rss_before) / 1024;
    assert!(grown_mib < 1024, "host RSS grew by {grown_mib} MiB");
    assert_eq!(scratch.sessions().len(), 1, "no session added");
    assert_eq!(
        scratch.events("call pid"),
        0,
        "denied calls never reached the server"
    );
    assert_eq!(scratch.events("call kv_set"), 0);
    assert_eq!(
        host.run(&testbed, "echo:after:3")
            .await
            .expect("host still serves"),
        "3 ok"
    );
    host.shutdown().await;
}
