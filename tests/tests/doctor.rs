//! `weir doctor` on a config with a good server, a missing command and a
//! server that never initializes, and a plugins directory with a good
//! plugin and a broken one: the right verdict for each, a next step for
//! each failure, a non-zero exit, and valid JSON with `--json`.

mod support;

use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::{Scratch, WEIR, plugin_path};

fn doctor_setup(scratch: &Scratch) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut silent = scratch.test_server(json!({"startup_timeout_secs": 2}));
    silent["env"]["WEIR_TEST_HANG_START"] = json!("1");
    let config = scratch.config(
        json!({
            "builtin": false,
            "default_policy": {"allow": ["test/*", "search/*"]},
            "plugins": {"tiny": {"memory_limit_mb": 1, "allow": ["test/*"]}},
        }),
        json!({
            "missing": {"command": "weir-no-such-command", "args": ["--stdio"]},
            "silent": silent,
        }),
    );
    let plugins = scratch.dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::copy(plugin_path("hello"), plugins.join("hello.wasm")).expect("copy");
    // Loads, but its memory does not fit the 1 MiB it is granted.
    std::fs::copy(plugin_path("hello"), plugins.join("tiny.wasm")).expect("copy");
    std::fs::write(plugins.join("broken.wasm"), b"\0asm\x01\0\0\0").expect("core module");
    (config, plugins)
}

fn doctor(config: &std::path::Path, plugins: &std::path::Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(WEIR)
        .arg("doctor")
        .arg("--config")
        .arg(config)
        .arg("--plugins")
        .arg(plugins)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("weir doctor runs");
    assert!(
        !out.stderr.contains(&b'\r'),
        "no progress spinner when stderr is piped"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn doctor_gives_a_verdict_and_a_next_step_per_server_and_plugin() {
    let scratch = Scratch::new("doctor");
    let (config, plugins) = doctor_setup(&scratch);

    let (code, text) = doctor(&config, &plugins, &[]);
    assert_eq!(code, 1, "a failed check is a non-zero exit:\n{text}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"))
            .to_owned()
    };
    assert!(line("test").contains(" ok "), "{text}");
    assert!(line("test").contains("2026-07-28"), "{text}");
    assert!(line("missing").contains("FAIL"), "{text}");
    assert!(line("silent").contains("FAIL"), "{text}");
    assert!(
        text.contains("command `weir-no-such-command` not found on PATH"),
        "{text}"
    );
    assert!(text.contains("→ install the command"), "{text}");
    assert!(text.contains("never answered `initialize`"), "{text}");
    assert!(line("hello").contains("ok"), "{text}");
    assert!(line("broken").contains("FAIL"), "{text}");
    assert!(
        text.contains("wasm32-wasip2"),
        "the next step for a core module:\n{text}"
    );
    assert!(line("tiny").contains("FAIL"), "{text}");
    assert!(
        text.contains("tiny: cannot be instantiated: the plugin reached its memory limit of 1 MiB")
            && text.contains("weir.plugins.tiny.memory_limit_mb"),
        "{text}"
    );
    assert!(
        text.contains("allows `search/*`, but no configured server matches `search`"),
        "{text}"
    );

    let (code, json) = doctor(&config, &plugins, &["--json"]);
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&json).expect("--json prints JSON");
    let server = |name: &str| {
        report["servers"]
            .as_array()
            .expect("servers")
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {report}"))
    };
    let test = server("test");
    assert_eq!(test["ok"], true);
    assert!(test["tools"].as_u64().is_some_and(|n| n > 5), "{test}");
    assert!(test["ping_ms"].as_f64().is_some(), "{test}");
    assert!(test["start_ms"].as_f64().is_some(), "{test}");
    for name in ["missing", "silent"] {
        let s = server(name);
        assert_eq!(s["ok"], false, "{s}");
        assert!(
            s["next_step"].as_str().is_some_and(|n| !n.is_empty()),
            "{s}"
        );
    }
    let plugins: Vec<(String, bool)> = report["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .map(|p| (p["name"].as_str().unwrap_or("").to_owned(), p["ok"] == true))
        .collect();
    assert_eq!(
        plugins,
        [
            ("broken".to_owned(), false),
            ("hello".to_owned(), true),
            ("tiny".to_owned(), false)
        ]
    );
}

#[test]
fn doctor_passes_on_a_healthy_setup() {
    let scratch = Scratch::new("doctor-ok");
    let config = scratch.config(json!({}), json!({}));
    let plugins = scratch.dir.join("plugins");
    std::fs::create_dir_all(&plugins).expect("plugins dir");
    std::fs::copy(plugin_path("hello"), plugins.join("hello.wasm")).expect("copy");
    let (code, text) = doctor(&config, &plugins, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("All good."), "{text}");
    assert_eq!(
        scratch.sessions().len(),
        1,
        "doctor opened one session to test"
    );
}
