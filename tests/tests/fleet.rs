//! `weir serve --http` as a fleet: three replicas behind nginx (Debian's
//! package), sharing state on Redis (Debian's package), driven by many
//! Python `mcp` SDK clients at once — half on 2026-07-28, half in legacy
//! sessions that nginx spreads round-robin over the replicas. Everything
//! on loopback; nginx and Redis are started here, on ports of their own.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::serve::{Served, Session, plugins_dir, raw_http};
use support::{Scratch, TEST_SERVER, python, wait_for};
use weir_tests::rig::{Nginx, Redis, free_port};

/// Three (or `n`) replicas of `weir serve --http` on one Redis, nginx in
/// front, the test server upstream of each.
struct Fleet {
    scratch: Scratch,
    plugins: PathBuf,
    ports: Vec<u16>,
    configs: Vec<PathBuf>,
    replicas: Vec<Option<Served>>,
    redis: Redis,
    nginx: Option<Nginx>,
}

impl Fleet {
    /// `weir` holds the settings every replica shares (besides `redis`,
    /// `replica` and a grant of every tool); `servers` more upstreams.
    fn start(tag: &str, n: usize, weir: Value, servers: Value) -> Self {
        let scratch = Scratch::new(tag);
        let plugins = plugins_dir(&scratch, &["testbed"]);
        let redis = Redis::start(&scratch.dir);
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let configs = (0..n)
            .map(|i| {
                let mut settings = weir.clone();
                settings["redis"] = json!(redis.url());
                settings["replica"] = json!(format!("r{i}"));
                settings["default_policy"] = json!({"allow": ["*/*"]});
                let mut all = json!({"test": scratch.test_server(json!({}))});
                if let (Some(a), Some(more)) = (all.as_object_mut(), servers.as_object()) {
                    a.extend(more.clone());
                }
                let path = scratch.dir.join(format!("weir-r{i}.json"));
                let doc = json!({"mcpServers": all, "weir": settings});
                std::fs::write(&path, serde_json::to_vec_pretty(&doc).expect("json"))
                    .expect("write config");
                path
            })
            .collect();
        let mut fleet = Self {
            scratch,
            plugins,
            ports,
            configs,
            replicas: Vec::new(),
            redis,
            nginx: None,
        };
        fleet.replicas = (0..n).map(|i| Some(fleet.launch(i))).collect();
        fleet.nginx = Some(Nginx::start(&fleet.scratch.dir, &fleet.ports));
        fleet
    }

    fn launch(&self, i: usize) -> Served {
        let plugins = [std::ffi::OsStr::new("--plugins"), self.plugins.as_os_str()];
        Served::launch_on(
            &self.configs[i],
            &plugins,
            &[(
                "RUST_LOG",
                std::ffi::OsStr::new("warn,weir_host::fleet=info"),
            )],
            &format!("127.0.0.1:{}", self.ports[i]),
        )
    }

    /// Replica `i` killed outright (SIGKILL), and reaped.
    fn kill(&mut self, i: usize) {
        if let Some(mut killed) = self.replicas[i].take() {
            let _ = killed.child.kill();
            let _ = killed.child.wait();
        }
    }

    /// What nginx logged (upstreams refused, closed, timed out).
    fn nginx_log(&self) -> String {
        self.nginx.as_ref().map(Nginx::log).unwrap_or_default()
    }

    fn replica(&self, i: usize) -> &Served {
        self.replicas[i].as_ref().expect("replica running")
    }

    /// MCP through nginx.
    fn url(&self) -> String {
        format!("http://{}/mcp", self.nginx.as_ref().expect("nginx").addr())
    }

    /// The test server's processes, counted from /proc: those whose
    /// parent is one of the replicas.
    fn upstream_processes(&self) -> usize {
        let parents: Vec<u32> = self
            .replicas
            .iter()
            .flatten()
            .map(|r| r.child.id())
            .collect();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return 0;
        };
        entries
            .flatten()
            .filter(|e| {
                let dir = e.path();
                let exe = std::fs::read_link(dir.join("exe")).ok();
                let ppid = std::fs::read_to_string(dir.join("stat"))
                    .ok()
                    .and_then(|s| {
                        s.rsplit_once(") ")
                            .and_then(|(_, rest)| rest.split(' ').nth(1)?.parse::<u32>().ok())
                    });
                exe.as_deref() == Some(Path::new(TEST_SERVER))
                    && ppid.is_some_and(|p| parents.contains(&p))
            })
            .count()
    }

    /// A metric's value on replica `i`: the first sample whose line
    /// starts with `name` and holds `label`.
    fn metric_with(&self, i: usize, name: &str, label: &str) -> Option<f64> {
        let reply = raw_http(&self.replica(i).addr(), "/metrics", "");
        reply
            .lines()
            .find(|l| l.starts_with(name) && l.contains(label))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// [`Fleet::metric_with`] any labels.
    fn metric(&self, i: usize, name: &str) -> Option<f64> {
        self.metric_with(i, name, "")
    }
}

/// The load client, running: its progress and errors counted as they
/// come, its report at the end.
struct Load {
    child: Child,
    calls: Arc<AtomicUsize>,
    errors: Arc<Mutex<Vec<String>>>,
    report: Arc<Mutex<Option<Value>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(url: &str, args: &[&str]) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/fleet_client.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg(url)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the Python load client");
        let calls = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let report = Arc::new(Mutex::new(None));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let out = std::thread::spawn({
            let (calls, report) = (calls.clone(), report.clone());
            move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(n) = line.strip_prefix("calls ") {
                        calls.store(n.trim().parse().unwrap_or(0), Ordering::SeqCst);
                    } else if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        *report.lock().expect("report") = Some(v);
                    }
                }
            }
        });
        let err = std::thread::spawn({
            let errors = errors.clone();
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    errors.lock().expect("errors").push(line);
                }
            }
        });
        Self {
            child,
            calls,
            errors,
            report,
            readers: vec![out, err],
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Lines the client wrote about failed calls so far.
    fn failures(&self) -> Vec<String> {
        self.errors
            .lock()
            .expect("errors")
            .iter()
            .filter(|l| l.starts_with("error ") || l.starts_with("wrong "))
            .cloned()
            .collect()
    }

    /// Waits for `more` calls beyond now to finish (bounded, not timed).
    fn wait_for_more(&self, more: usize) {
        let target = self.calls() + more;
        assert!(
            wait_for(Duration::from_secs(120), || self.calls() >= target),
            "the load stalled at {} calls (waiting for {target}); client said:\n{}",
            self.calls(),
            self.errors.lock().expect("errors").join("\n")
        );
    }

    /// Waits for the client to exit (once its calls are made, or it is
    /// told to stop); its report. A client still running after `limit`
    /// has calls that never end: it is killed and the test fails, saying
    /// so.
    fn finish(mut self, limit: Duration) -> Value {
        if !wait_for(limit, || matches!(self.child.try_wait(), Ok(Some(_)))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!(
                "the load client's calls had not all ended within {} s; it said:\n{}",
                limit.as_secs(),
                self.errors.lock().expect("errors").join("\n")
            );
        }
        let status = self.child.wait().expect("wait for the client");
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let stderr = self.errors.lock().expect("errors").join("\n");
        assert!(
            status.success(),
            "the load client failed ({status}):\n{stderr}"
        );
        let report = self.report.lock().expect("report").take();
        report.unwrap_or_else(|| panic!("no report from the load client:\n{stderr}"))
    }
}

fn count(report: &Value, field: &str) -> usize {
    report[field].as_array().map_or(0, Vec::len)
}

/// 100 clients, half of each revision, through nginx round-robin over
/// three replicas: every answer right, every legacy session kept across
/// replicas, the plugin's 50 calls/s holding fleet-wide, one upstream
/// process per replica; the kv store and a session opened on one replica
/// seen from another.
#[test]
fn a_fleet_behind_nginx_is_one_weir() {
    let fleet = Fleet::start(
        "fleet",
        3,
        json!({"plugins": {"testbed": {"calls_per_second": 50}}}),
        json!({}),
    );
    let load = Load::start(&fleet.url(), &["--clients", "100", "--calls", "6"]);
    let report = load.finish(Duration::from_secs(300));
    assert_eq!(report["ok"], 600, "{report}");
    assert_eq!(count(&report, "wrong"), 0, "{report}");
    assert_eq!(count(&report, "errors"), 0, "{report}");
    assert_eq!(report["protocols"]["2026-07-28"], "2026-07-28");
    assert_eq!(report["protocols"]["legacy"], "2025-11-25");
    // nginx spread each legacy session's requests over the replicas.
    assert_eq!(report["legacy_sessions_kept"], 50, "{report}");

    // The rate, fleet-wide: one second's burst, then 50 a second. Measured
    // past the burst, on the calls' own completion times.
    let mut times: Vec<f64> = report["times"]
        .as_array()
        .expect("times")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    times.sort_by(f64::total_cmp);
    let (from, to) = (times[0] + 2.0, times[times.len() - 1] - 0.5);
    let inside = times.iter().filter(|t| (from..=to).contains(*t)).count();
    let rate = inside as f64 / (to - from);
    assert!(
        (45.0..=55.0).contains(&rate),
        "the fleet-wide limit of 50 calls/s measured {rate:.1}/s over {:.1} s",
        to - from
    );
    for i in 0..3 {
        assert!(
            fleet
                .metric_with(i, "weir_plugin_rate_waits_total", "plugin=\"testbed\"")
                .unwrap_or(0.0)
                > 0.0,
            "replica {i} never waited its turn"
        );
        assert_eq!(fleet.metric(i, "weir_redis_up"), Some(1.0));
    }

    // Sessions = replicas × servers × pool: 3, counted from outside.
    assert_eq!(fleet.upstream_processes(), 3);
    assert_eq!(fleet.scratch.sessions().len(), 3, "test server sessions");

    // A value stored through one replica is read through another.
    let call = |i: usize, input: String| {
        let mut session = Session::open(&fleet.replica(i).addr());
        session.request(
            "tools/call",
            json!({"name": "testbed", "arguments": {"input": input}}),
        )
    };
    let set = call(
        0,
        r#"call:builtin:kv_set:{"key":"k","value":"shared-value"}"#.into(),
    );
    assert!(set.contains("ok:ok"), "{set}");
    let got = call(2, r#"call:builtin:kv_get:{"key":"k"}"#.into());
    assert!(got.contains("ok:shared-value"), "{got}");

    // A legacy session opened on replica 0 goes on on replica 1.
    let mut session = Session::open(&fleet.replica(0).addr());
    let on_first = session.request("tools/list", json!({}));
    assert!(on_first.contains("testbed"), "{on_first}");
    let mut moved = session;
    moved.retarget(&fleet.replica(1).addr());
    let on_second = moved.request(
        "tools/call",
        json!({"name": "testbed", "arguments": {"input": r#"call:test:echo:{"message":"moved"}"#}}),
    );
    assert!(on_second.contains("moved"), "{on_second}");
}

/// Under steady load through nginx: one replica killed (its in-flight
/// calls fail, nothing else), a rolling restart by SIGTERM (no call
/// lost), Redis stopped (degraded: a warning, `weir_redis_up 0`, calls go
/// on — legacy sessions only on the replica that has them) and started
/// again (every call goes through again).
#[test]
fn a_fleet_loses_nothing_but_what_was_in_flight() {
    let mut fleet = Fleet::start(
        "fleet-chaos",
        3,
        json!({
            "plugins": {"testbed": {"calls_per_second": 2000}},
            "shutdown_grace_secs": 20
        }),
        json!({}),
    );
    let stop_file = fleet.scratch.dir.join("stop-load");
    let clients = 20;
    let load = Load::start(
        &fleet.url(),
        &[
            "--clients",
            &clients.to_string(),
            "--until",
            &stop_file.display().to_string(),
            "--progress",
            "10",
        ],
    );
    load.wait_for_more(200);
    assert!(load.failures().is_empty(), "{:?}", load.failures());

    // One replica killed outright.
    fleet.kill(2);
    load.wait_for_more(200);
    let after_kill = load.failures();
    assert!(
        after_kill.len() <= clients,
        "more calls failed than could have been in flight on the killed replica: {after_kill:#?}"
    );
    fleet.replicas[2] = Some(fleet.launch(2));
    load.wait_for_more(100);
    let before_rolling = load.failures().len();

    // A rolling restart: SIGTERM one replica at a time, start it again.
    for i in 0..3 {
        let served = fleet.replicas[i].take().expect("replica");
        let status = served.stop();
        assert!(status.success(), "replica {i} exited with {status}");
        fleet.replicas[i] = Some(fleet.launch(i));
        load.wait_for_more(100);
    }
    let rolling = load.failures();
    assert_eq!(
        rolling.len(),
        before_rolling,
        "calls failed in a rolling restart: {:#?}\nnginx:\n{}",
        &rolling[before_rolling..],
        fleet.nginx_log()
    );

    // Redis away: degraded, calls go on; back: shared again.
    fleet.redis.stop();
    load.wait_for_more(200);
    assert!(
        wait_for(Duration::from_secs(30), || (0..3)
            .any(|i| fleet.metric(i, "weir_redis_up") == Some(0.0))),
        "no replica reports weir_redis_up 0 with Redis stopped"
    );
    let degraded = (0..3)
        .find(|&i| fleet.metric(i, "weir_redis_up") == Some(0.0))
        .expect("a degraded replica");
    assert!(
        fleet
            .replica(degraded)
            .log()
            .contains("Redis is unreachable"),
        "{}",
        fleet.replica(degraded).log()
    );
    fleet.redis.restart();
    assert!(
        wait_for(Duration::from_secs(60), || fleet
            .metric(degraded, "weir_redis_up")
            == Some(1.0)),
        "replica {degraded} did not see Redis come back"
    );
    // While Redis was away, a legacy session was known to its own replica
    // only: a request nginx sent elsewhere got 404 (the spec's "open a new
    // session"). Nothing else failed, and 2026-07-28 clients not at all.
    load.wait_for_more(100);
    let outage = load.failures();
    for failure in &outage[before_rolling..] {
        let client: usize = failure
            .split(' ')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(
            client % 2 == 1 && failure.contains("Session terminated"),
            "a call failed while Redis was away: {failure}"
        );
    }
    // Redis back: every client's calls go through again.
    load.wait_for_more(200);
    assert_eq!(
        load.failures().len(),
        outage.len(),
        "calls failed after Redis came back: {:#?}",
        &load.failures()[outage.len()..]
    );

    std::fs::write(&stop_file, "").expect("stop the load");
    let report = load.finish(Duration::from_secs(120));
    assert_eq!(count(&report, "wrong"), 0, "{report}");
    assert!(report["ok"].as_u64().unwrap_or(0) >= 900, "{report}");
    // Each failed call was one the killed replica had in flight: the
    // client saw the connection go, not a wrong answer.
    for error in report["errors"].as_array().into_iter().flatten() {
        let what = error["error"].as_str().unwrap_or_default();
        assert!(!what.is_empty(), "{error}");
    }
}

/// A replica killed with calls in flight, then started again: each call
/// it had fails at once, on both revisions — none waits on a stream that
/// died with the replica, though the legacy session lives on in Redis and
/// a replica answers on the same address again.
#[test]
fn calls_in_flight_on_a_killed_replica_fail_at_once() {
    let mut fleet = Fleet::start("fleet-killed", 1, json!({}), json!({}));
    let load = Load::start(
        &fleet.replica(0).mcp_url(),
        &["--clients", "2", "--calls", "1", "--hang"],
    );
    let in_flight =
        |fleet: &Fleet| fleet.metric_with(0, "weir_plugin_runs_in_flight", "plugin=\"testbed\"");
    assert!(
        wait_for(Duration::from_secs(60), || in_flight(&fleet) == Some(2.0)),
        "the two calls never were in flight together: {:?}",
        in_flight(&fleet)
    );
    fleet.kill(0);
    fleet.replicas[0] = Some(fleet.launch(0));
    let report = load.finish(Duration::from_secs(60));
    assert_eq!(report["ok"], 0, "{report}");
    let errors = report["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 2, "{report}");
    let modes: std::collections::BTreeSet<_> =
        errors.iter().filter_map(|e| e["mode"].as_str()).collect();
    assert_eq!(modes.len(), 2, "one error per revision: {report}");
    // Each says the connection or its stream went (the SDK's words).
    for error in &errors {
        let what = error["error"].as_str().unwrap_or_default();
        assert!(
            what.contains("without sending a response") || what.contains("without a response"),
            "{error}"
        );
    }
}

/// A server dead for one replica is dead for all: its circuit opened on
/// one replica makes the others fail fast, naming who opened it.
#[test]
fn an_open_circuit_is_shared() {
    let fleet = Fleet::start(
        "fleet-circuit",
        2,
        json!({"circuit_threshold": 2, "backoff_base_secs": 0.05, "backoff_max_secs": 0.1,
               "circuit_cooldown_secs": 120}),
        json!({"dead": {"command": "/nonexistent/mcp-server"}}),
    );
    let call = |i: usize| {
        let mut session = Session::open(&fleet.replica(i).addr());
        session.request(
            "tools/call",
            json!({"name": "testbed", "arguments": {"input": "call:dead:anything:{}"}}),
        )
    };
    assert!(
        wait_for(Duration::from_secs(60), || call(0).contains("circuit open")),
        "replica 0's circuit never opened"
    );
    let other = call(1);
    assert!(
        other.contains("circuit open on replica `r0`"),
        "replica 1 tried the dead server itself: {other}"
    );
    // Replica 1 spawned nothing for it: its error is replica 0's.
    assert!(other.contains("/nonexistent/mcp-server"), "{other}");
}

/// `weir doctor` asks the fleet's Redis: its round trip when it answers;
/// when it does not, a failed check saying what a replica does meanwhile.
#[test]
fn doctor_checks_the_fleets_redis() {
    let scratch = Scratch::new("fleet-doctor");
    let mut redis = Redis::start(&scratch.dir);
    let config = scratch.config(json!({"redis": redis.url(), "builtin": false}), json!({}));
    let doctor = || {
        let out = Command::new(support::WEIR)
            .arg("doctor")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .output()
            .expect("weir doctor runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = doctor();
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("Shared state (weir.redis)"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains(&redis.url()))
        .unwrap_or_else(|| panic!("no line for Redis in:\n{text}"));
    assert!(line.contains("ok") && line.contains(" ms"), "{line}");

    redis.stop();
    let (code, text) = doctor();
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("FAIL"), "{text}");
    assert!(
        text.contains("start Redis there, or fix weir.redis"),
        "{text}"
    );
}
