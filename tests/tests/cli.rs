//! The `weir` binary as a user runs it: answers on stdout, errors on stderr
//! with an exit code, and no server process left behind — after a normal
//! exit, Ctrl-C or SIGTERM.

mod support;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use support::{Scratch, WEIR, alive, plugin_path, wait_for, weir};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The README's first command in miniature: `hello` through the built-in
/// server, with no config at all.
#[test]
fn hello_runs_against_the_builtin_server() {
    let hello = plugin_path("hello");
    let out = weir(&[
        "run",
        hello.to_str().expect("utf-8 path"),
        "--input",
        "weir",
    ]);
    assert_eq!(
        text(&out.stdout),
        "Hello, weir!\n",
        "stderr: {}",
        text(&out.stderr)
    );
    assert!(out.status.success());
}

/// Plugins are found by name in the plugins directory; input comes from
/// --input-file or stdin as well as --input.
#[test]
fn plugins_by_name_and_input_sources() {
    let scratch = Scratch::new("cli-input");
    let dir = plugin_path("hello")
        .parent()
        .expect("dir")
        .display()
        .to_string();
    let input = scratch.dir.join("input.txt");
    std::fs::write(&input, "file").expect("write input");
    let out = weir(&[
        "run",
        "hello",
        "--plugins",
        &dir,
        "--input-file",
        input.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        text(&out.stdout),
        "Hello, file!\n",
        "stderr: {}",
        text(&out.stderr)
    );

    let mut child = Command::new(WEIR)
        .args(["run", "hello", "--plugins", &dir])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("weir runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"stdin")
        .expect("write stdin");
    let out = child.wait_with_output().expect("weir exits");
    assert_eq!(text(&out.stdout), "Hello, stdin!\n");

    let out = weir(&["run", "nosuch", "--plugins", &dir]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("no plugin named `nosuch`") && err.contains("fanout, hello, testbed"),
        "{err}"
    );
}

/// A broken config stops weir before anything starts, naming the file,
/// the server and the field.
#[test]
fn config_errors_name_the_field() {
    let scratch = Scratch::new("cli-config");
    let path = scratch.dir.join("broken.json");
    std::fs::write(
        &path,
        r#"{"mcpServers": {"gh": {"command": "x", "env": {"TOKEN": "${WEIR_TEST_UNSET_VAR}"}}}}"#,
    )
    .expect("write");
    let hello = plugin_path("hello");
    let out = weir(&[
        "run",
        hello.to_str().expect("utf-8"),
        "--config",
        path.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("config file {}: mcpServers.gh.env.TOKEN: environment variable WEIR_TEST_UNSET_VAR is not set", path.display())),
        "{err}"
    );
}

/// A plugin's own failure is an error on stderr and exit code 1.
#[test]
fn plugin_failures_exit_non_zero() {
    let testbed = plugin_path("testbed");
    let out = weir(&["run", testbed.to_str().expect("utf-8"), "--input", "panic"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).is_empty());
    assert!(
        text(&out.stderr).contains("error: plugin `testbed`: the plugin panicked: boom on request")
    );
}

/// After a normal exit, every server process weir started is gone.
#[test]
fn normal_exit_leaves_no_server_behind() {
    let scratch = Scratch::new("cli-exit");
    let config = scratch.config(json!({}), json!({}));
    let testbed = plugin_path("testbed");
    let out = weir(&[
        "run",
        testbed.to_str().expect("utf-8"),
        "-c",
        config.to_str().expect("utf-8"),
        "--input",
        "echo:x:20",
    ]);
    assert_eq!(
        text(&out.stdout),
        "20 ok\n",
        "stderr: {}",
        text(&out.stderr)
    );
    let sessions = scratch.sessions();
    assert_eq!(sessions.len(), 1);
    assert!(!alive(sessions[0]), "server {} outlived weir", sessions[0]);
}

/// Ctrl-C (and SIGTERM) in the middle of a call: weir closes the session,
/// ends the server and exits 130; no server process is left.
#[test]
fn interrupt_leaves_no_server_behind() {
    for signal in [rustix::process::Signal::INT, rustix::process::Signal::TERM] {
        let scratch = Scratch::new("cli-signal");
        let config = scratch.config(json!({}), json!({}));
        let testbed = plugin_path("testbed");
        let child = Command::new(WEIR)
            .args([
                "run",
                testbed.to_str().expect("utf-8"),
                "-c",
                config.to_str().expect("utf-8"),
                "--input",
                "sleep:60000",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("weir runs");
        assert!(
            wait_for(Duration::from_secs(30), || scratch.sessions().len() == 1),
            "the server started"
        );
        let server = scratch.sessions()[0];
        // The plugin is inside its call: the server saw it.
        assert!(
            wait_for(Duration::from_secs(30), || scratch.events("call sleep")
                >= 1),
            "the call reached the server"
        );
        send(&child, signal);
        let out = child.wait_with_output().expect("weir exits");
        assert_eq!(
            out.status.code(),
            Some(130),
            "{signal:?}: stderr: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stderr).contains("interrupted"));
        assert!(!alive(server), "{signal:?}: server {server} outlived weir");
    }
}

fn send(child: &Child, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, signal).expect("signal weir");
}

/// `weir list` shows each server with its tools.
#[test]
fn list_shows_servers_and_tools() {
    let scratch = Scratch::new("cli-list");
    let config = scratch.config(json!({}), json!({}));
    let dir = plugin_path("hello")
        .parent()
        .expect("dir")
        .display()
        .to_string();
    let out = weir(&[
        "list",
        "-c",
        config.to_str().expect("utf-8"),
        "--plugins",
        &dir,
    ]);
    let listing = text(&out.stdout);
    assert!(out.status.success(), "{listing}\n{}", text(&out.stderr));
    for want in [
        "  hello",
        "ok",
        "  builtin (",
        "  test (",
        " tools, MCP 20",
        "    sleep",
        "    kv_set",
    ] {
        assert!(listing.contains(want), "{want:?} in:\n{listing}");
    }
    // The count a server's line gives is the tools listed under it.
    let test_tools = listing
        .lines()
        .skip_while(|l| !l.starts_with("  test ("))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .count();
    assert!(
        listing.contains(&format!("  test ({test_tools} tools, MCP 20")),
        "{test_tools} tools listed under test:\n{listing}"
    );
    assert!(!alive(scratch.sessions()[0]));
}

/// `weir inspect` tells an operator what a file is before trusting it: a
/// good plugin's world, imports, exports, manifest and policy; a core
/// module and a garbage file each get their verdict and a non-zero exit.
#[test]
fn inspect_reports_what_a_plugin_is() {
    let scratch = Scratch::new("inspect");
    let fanout = plugin_path("fanout");
    let out = weir(&["inspect", fanout.to_str().expect("utf-8"), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["kind"], "component");
    assert_eq!(report["world"]["ok"], true);
    assert_eq!(report["world"]["targets"], "weir:agent/agent@0.1.0");
    assert_eq!(report["exports"], json!(["run"]));
    assert!(
        report["imports"]
            .as_array()
            .expect("imports")
            .iter()
            .any(|i| i == "weir:agent/mcp@0.1.0"),
        "{report}"
    );
    assert_eq!(report["manifest"]["version"], "0.1.0");
    assert_eq!(report["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(report["runs_under"]["allow"], json!(["builtin/*"]));

    let text_out = weir(&["inspect", fanout.to_str().expect("utf-8")]);
    let shown = text(&text_out.stdout);
    assert!(
        shown.contains("world       weir:agent/agent@0.1.0 (links)"),
        "{shown}"
    );

    let core = scratch.dir.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").expect("write");
    let out = weir(&["inspect", core.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out.stdout);
    assert!(shown.contains("kind        core module"), "{shown}");
    assert!(shown.contains("wasm32-wasip2"), "{shown}");

    let garbage = scratch.dir.join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm at all").expect("write");
    let out = weir(&["inspect", garbage.to_str().expect("utf-8"), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["kind"], "not WebAssembly");
    assert!(
        report["world"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("not a WebAssembly file")),
        "{report}"
    );
}

/// deploy/: the Kubernetes manifests validate against the API's schemas
/// (`kubernetes-validate --strict`, from PyPI); the ConfigMap's config is
/// one weir accepts, with the replica name and token the Deployment gives
/// it; the probes are weir's; the pod's grace outlasts weir's own.
#[test]
fn deployment_files_are_valid_and_agree_with_weir() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let manifests: Vec<_> = [
        "configmap",
        "deployment",
        "secret",
        "service",
        "redis-deployment",
        "redis-service",
    ]
    .iter()
    .map(|m| root.join(format!("deploy/kubernetes/{m}.yaml")))
    .collect();
    let venv = root.join("tests/py/.venv/bin");
    let out = Command::new(venv.join("kubernetes-validate"))
        .arg("--strict")
        .args(&manifests)
        .output()
        .expect("run kubernetes-validate (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // The manifests as JSON, read by PyYAML (kubernetes-validate's own).
    let out = Command::new(venv.join("python"))
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps([yaml.safe_load(open(f)) for f in sys.argv[1:]]))",
        ])
        .args(&manifests)
        .output()
        .expect("read the manifests");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let docs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let (configmap, deployment) = (&docs[0], &docs[1]);
    let weir_json = configmap["data"]["weir.json"].as_str().expect("weir.json");
    let env = |name: &str| match name {
        "POD_NAME" => Some("weir-7d9f-abcde".to_owned()),
        "WEIR_SERVE_TOKEN" => Some("a-long-random-token-from-the-secret".to_owned()),
        "WEIR_REDIS_URL" => docs[2]["stringData"]["redis-url"]
            .as_str()
            .map(str::to_owned),
        _ => None,
    };
    let config = weir_host::config::Config::from_json(
        &root.join("deploy/kubernetes/weir.json"),
        weir_json,
        env,
    )
    .expect("the ConfigMap's config is valid");
    assert_eq!(config.replica.as_deref(), Some("weir-7d9f-abcde"));
    assert!(config.serve_auth.is_some(), "behind a token");
    // The replicas share state on the Redis the manifests deploy.
    assert_eq!(config.redis.as_deref(), Some("redis://weir-redis:6379"));
    assert_eq!(docs[5]["metadata"]["name"], "weir-redis");
    assert_eq!(docs[5]["spec"]["ports"][0]["port"], 6379);
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let env_names: Vec<&str> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(
        env_names,
        ["POD_NAME", "WEIR_SERVE_TOKEN", "WEIR_REDIS_URL"]
    );
    let grace = pod["terminationGracePeriodSeconds"]
        .as_f64()
        .expect("grace");
    assert!(
        grace > config.sessions.shutdown_grace.as_secs_f64(),
        "the pod is killed only after weir's own grace"
    );
    // The container's command line is one `weir serve` takes.
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(args[0], "serve");
    let help = text(&weir(&["serve", "--help"]).stdout);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        assert!(help.contains(flag), "weir serve has {flag}");
    }
}
