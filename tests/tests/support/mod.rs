//! What the integration tests share: where the binaries and plugins are, a
//! scratch directory per test, a config for the test server, and process
//! checks.

#![allow(dead_code)]

pub mod mcp;
pub mod serve;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weir_host::{Config, Host, Plugin};

/// The `weir` binary under test.
pub const WEIR: &str = env!("CARGO_BIN_EXE_weir");
/// Runs the `weir` binary with `args` (stdin closed) to completion.
pub fn weir(args: &[&str]) -> std::process::Output {
    weir_env(args, &[])
}

/// [`weir`] with environment variables set (or replaced).
pub fn weir_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> std::process::Output {
    std::process::Command::new(WEIR)
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("weir runs")
}

/// The Python of the test venv (scripts/test makes it), with the `mcp`
/// SDK and the test fixtures' packages.
pub fn python() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/.venv/bin/python");
    assert!(
        bin.exists(),
        "{} is missing: run `python3 -m venv tests/py/.venv && tests/py/.venv/bin/pip install \
         -r tests/py/requirements.txt` (scripts/test does)",
        bin.display()
    );
    bin
}

/// weir's rmcp test server.
pub const TEST_SERVER: &str = env!("CARGO_BIN_EXE_weir-test-server");

/// A plugin built by this crate's build script.
pub fn plugin_path(name: &str) -> PathBuf {
    Path::new(env!("WEIR_TEST_PLUGINS")).join(format!("{name}.wasm"))
}

/// A directory of its own for one test, removed when dropped.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "weir-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self { dir }
    }

    /// The file the test server appends one pid per session to.
    pub fn session_log(&self) -> PathBuf {
        self.dir.join("sessions.log")
    }

    /// The file the test server appends events to (`cancelled <pid>`, …).
    pub fn events_log(&self) -> PathBuf {
        self.dir.join("events.log")
    }

    /// The largest `nap-concurrency N` the test server logged: how many
    /// naps were in flight together, counted by the server.
    pub fn max_nap_concurrency(&self) -> usize {
        std::fs::read_to_string(self.events_log())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("nap-concurrency "))
            .filter_map(|n| n.trim().parse().ok())
            .max()
            .unwrap_or(0)
    }

    /// Lines of the events log that start with `kind`.
    pub fn events(&self, kind: &str) -> usize {
        std::fs::read_to_string(self.events_log())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(kind))
            .count()
    }

    /// While this file exists, the test server fails to start.
    pub fn fail_start_flag(&self) -> PathBuf {
        self.dir.join("fail-start")
    }

    /// Pids of the sessions the test server recorded, in order.
    pub fn sessions(&self) -> Vec<u32> {
        std::fs::read_to_string(self.session_log())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// The test server's `mcpServers` entry; `settings` are merged in.
    pub fn test_server(&self, settings: Value) -> Value {
        let mut entry = json!({
            "command": TEST_SERVER,
            "env": {
                "WEIR_TEST_SESSION_LOG": self.session_log(),
                "WEIR_TEST_EVENTS": self.events_log(),
                "WEIR_TEST_FAIL_START": self.fail_start_flag(),
            }
        });
        if let (Some(e), Some(s)) = (entry.as_object_mut(), settings.as_object()) {
            e.extend(s.clone());
        }
        entry
    }

    /// Writes a config with the test server as `test` (plus `extra`
    /// servers) and the given `weir` settings; returns its path.
    pub fn config(&self, weir: Value, extra: Value) -> PathBuf {
        let mut servers = json!({ "test": self.test_server(json!({})) });
        if let (Some(s), Some(e)) = (servers.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        // Tests grant every tool unless they test policy themselves.
        let mut weir = weir;
        if let Some(w) = weir.as_object_mut() {
            w.entry("default_policy")
                .or_insert(json!({"allow": ["*/*"]}));
        }
        let path = self.dir.join("weir.json");
        let doc = json!({ "mcpServers": servers, "weir": weir });
        std::fs::write(&path, serde_json::to_vec_pretty(&doc).expect("json"))
            .expect("write config");
        path
    }

    /// A host in this process on that config (the built-in server is the
    /// real `weir` binary).
    pub fn host(&self, weir: Value) -> Host {
        self.host_with(weir, json!({}))
    }

    /// [`Scratch::host`] with more servers (or a `test` entry of its own).
    pub fn host_with(&self, weir: Value, servers: Value) -> Host {
        let config = Config::load(&self.config(weir, servers)).expect("valid test config");
        Host::new(config, Some(WEIR.into())).expect("host starts")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Loads a test plugin into `host` under another name (a copy of its file),
/// to stand for a different plugin.
pub fn load_as(host: &Host, scratch: &Scratch, name: &str, alias: &str) -> Plugin {
    let copy = scratch.dir.join(format!("{alias}.wasm"));
    std::fs::copy(plugin_path(name), &copy).expect("copy plugin");
    host.load(&copy.display().to_string())
        .unwrap_or_else(|e| panic!("plugin {alias} loads: {e}"))
}

/// Loads a test plugin into `host`.
pub fn load(host: &Host, name: &str) -> Plugin {
    host.load(&plugin_path(name).display().to_string())
        .unwrap_or_else(|e| panic!("plugin {name} loads: {e}"))
}

/// Whether `pid` is a live process (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

/// Waits up to `limit` for `check`; a bound on a wait, never a timing
/// assertion (the rig's, which the benchmarks use too).
pub use weir_tests::rig::within as wait_for;

/// [`wait_for`] for async tests: checks with an async closure and sleeps
/// on the runtime, so the host under test keeps running meanwhile.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Calls the test server's `enable` tool through `testbed` (it adds the
/// tool `late`: `enable_late`, `enable_late_quietly`), then waits up to
/// `limit` for `list-tools` to show `test/late`; whether it did.
pub async fn late_appears(host: &Host, testbed: &Plugin, enable: &str, limit: Duration) -> bool {
    let enabled = host
        .run(testbed, &format!("call:test:{enable}:"))
        .await
        .expect("runs");
    assert_eq!(enabled, "ok:enabled");
    eventually(limit, || async {
        host.run(testbed, "list")
            .await
            .is_ok_and(|l| l.contains("test/late"))
    })
    .await
}
