//! Record and replay: a run recorded against the test server is replayed
//! with no server at all, to the same output; a call the recording does not
//! hold is a clear error naming it; `weir test` replays a directory of
//! recordings and compares outputs.

mod support;

use std::process::Output;

use serde_json::json;
use support::{Scratch, plugin_path, weir};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `weir run testbed` on `input` under `config`, recorded into
/// `recording`; its output must be `want`.
fn record(config: &std::path::Path, input: &str, recording: &std::path::Path, want: &str) {
    let testbed = plugin_path("testbed");
    let path = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();
    let out = weir(&[
        "run",
        &path(&testbed),
        "--input",
        input,
        "--config",
        &path(config),
        "--record",
        &path(recording),
    ]);
    assert_eq!(
        stdout(&out),
        want,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_recorded_run_replays_without_its_server() {
    let scratch = Scratch::new("replay");
    let config = scratch.config(json!({}), json!({}));
    let recording = scratch.dir.join("echo.replay.jsonl");
    let testbed = plugin_path("testbed");
    let testbed = testbed.to_str().expect("utf-8");
    let s = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();

    let input = r#"call:test:echo:{"message":"rec"}"#;
    record(&config, input, &recording, "ok:rec\n");
    assert_eq!(scratch.sessions().len(), 1);
    let lines = std::fs::read_to_string(&recording).expect("recording written");
    assert_eq!(lines.lines().count(), 3, "run, call, output:\n{lines}");

    // The server cannot even start now: replay never asks it anything.
    let dead = scratch.dir.join("dead.json");
    std::fs::write(
        &dead,
        json!({
            "mcpServers": {"test": {"command": "/nonexistent/weir-test-server"}},
            "weir": {"default_policy": {"allow": ["*/*"]}},
        })
        .to_string(),
    )
    .expect("config");
    let out = weir(&[
        "run",
        testbed,
        "--config",
        &s(&dead),
        "--replay",
        &s(&recording),
    ]);
    assert_eq!(stdout(&out), "ok:rec\n", "identical output, replayed");
    assert_eq!(scratch.sessions().len(), 1, "no new session");

    // A changed run asks for a call the recording does not hold.
    let out = weir(&[
        "run",
        testbed,
        "--config",
        &s(&dead),
        "--replay",
        &s(&recording),
        "--input",
        r#"call:test:echo:{"message":"other"}"#,
    ]);
    assert_eq!(
        stdout(&out),
        "not-found:replay: the recording has no call of `test/echo` with arguments {\"message\":\"other\"}\n"
    );

    // `weir test`: recordings in a directory, the plugin beside them.
    let fixtures = scratch.dir.join("fixtures");
    std::fs::create_dir_all(&fixtures).expect("dir");
    std::fs::copy(&recording, fixtures.join("echo.replay.jsonl")).expect("copy");
    std::fs::copy(plugin_path("testbed"), fixtures.join("testbed.wasm")).expect("copy");
    let out = weir(&["test", &s(&fixtures), "--config", &s(&dead)]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("1 recordings, 1 passed, 0 failed"),
        "{}",
        stdout(&out)
    );

    // An expectation the plugin no longer meets fails, saying how.
    let text = std::fs::read_to_string(fixtures.join("echo.replay.jsonl")).expect("read");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let last = lines.len() - 1;
    lines[last] = lines[last].replace("ok:rec", "ok:something else");
    std::fs::write(fixtures.join("echo.replay.jsonl"), lines.join("\n") + "\n").expect("write");
    let out = weir(&["test", &s(&fixtures), "--config", &s(&dead)]);
    assert_eq!(out.status.code(), Some(1));
    let shown = stdout(&out);
    assert!(
        shown.contains("FAIL") && shown.contains("ok:something else"),
        "{shown}"
    );
}

/// A recording carries the grants it was made under: replayed with no
/// config at all (the default grants only `builtin/*`), it reproduces.
#[test]
fn a_replay_needs_no_config() {
    let scratch = Scratch::new("replay-no-config");
    let config = scratch.config(json!({"default_policy": {"allow": ["test/*"]}}), json!({}));
    let recording = scratch.dir.join("granted.replay.jsonl");
    let testbed = plugin_path("testbed");
    let testbed = testbed.to_str().expect("utf-8");
    let s = |p: &std::path::Path| p.to_str().expect("utf-8").to_owned();
    let input = r#"call:test:echo:{"message":"granted"}"#;
    record(&config, input, &recording, "ok:granted\n");
    let first = std::fs::read_to_string(&recording).expect("recording");
    assert!(
        first
            .lines()
            .next()
            .is_some_and(|l| l.contains(r#""allow":["test/*"]"#)),
        "{first}"
    );

    let out = weir(&["run", testbed, "--replay", &s(&recording)]);
    assert_eq!(
        stdout(&out),
        "ok:granted\n",
        "replayed with no config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `weir test` too: the recording's grants, not the default ones.
    let plugins = plugin_path("testbed");
    let plugins = plugins.parent().expect("plugin dir");
    let out = weir(&["test", &s(&scratch.dir), "--plugins", &s(plugins)]);
    assert!(
        stdout(&out).contains("1 recordings, 1 passed, 0 failed"),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `weir run --allow` grants for one run, without editing the config;
/// without it the same call is denied, naming what is granted.
#[test]
fn allow_grants_for_one_run() {
    let scratch = Scratch::new("run-allow");
    let config = scratch.config(json!({"default_policy": {"allow": []}}), json!({}));
    let config = config.to_str().expect("utf-8");
    let testbed = plugin_path("testbed");
    let testbed = testbed.to_str().expect("utf-8");
    let input = r#"call:test:echo:{"message":"once"}"#;
    let run = |extra: &[&str]| {
        let mut args = vec!["run", testbed, "--input", input, "--config", config];
        args.extend_from_slice(extra);
        weir(&args)
    };
    let denied = stdout(&run(&[]));
    assert!(
        denied.starts_with("denied:`test/echo` is not granted"),
        "{denied}"
    );
    assert_eq!(stdout(&run(&["--allow", "test/*"])), "ok:once\n");
    assert_eq!(
        stdout(&run(&["--allow", "builtin/*", "--allow", "test/ech*"])),
        "ok:once\n",
        "repeatable, prefixes too"
    );
    let bad = run(&["--allow", "nonsense"]);
    assert!(!bad.status.success());
    let why = String::from_utf8_lossy(&bad.stderr);
    assert!(
        why.contains("--allow: \"nonsense\" is not a `server/tool` pattern"),
        "{why}"
    );
}
