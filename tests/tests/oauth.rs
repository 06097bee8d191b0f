//! weir as the OAuth client of a remote MCP server: the Python `mcp` SDK's
//! server behind its bearer check, and an authorization server of the
//! test suite's own (tests/py/oauth_server.py, loopback only). A headless
//! `$BROWSER` (tests/conformance/browser) stands in for the person.

mod support;

use std::io::{BufRead, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Scratch, WEIR, python, wait_for};

/// The fixture process, killed when dropped.
struct Fixture {
    child: std::process::Child,
    mcp: String,
    issuer: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Fixture {
    fn start(scratch: &Scratch) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("py/oauth_server.py");
        let mut child = Command::new(python())
            .arg(&script)
            .arg(&scratch.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the OAuth fixture");
        let urls = scratch.dir.join("urls.json");
        if !wait_for(Duration::from_secs(60), || urls.exists()) {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            panic!("the OAuth fixture did not start: {err}");
        }
        let urls: Value =
            serde_json::from_slice(&std::fs::read(&urls).expect("urls")).expect("json");
        let stderr = child.stderr.take().expect("stderr");
        // Drained, so a chatty server never blocks on a full pipe.
        std::thread::spawn(move || for _ in std::io::BufReader::new(stderr).lines() {});
        Self {
            child,
            mcp: urls["mcp"].as_str().expect("mcp").to_owned(),
            issuer: urls["issuer"].as_str().expect("issuer").to_owned(),
        }
    }

    /// One request to the authorization server's control endpoints.
    fn control(&self, method: &str, path: &str) -> Value {
        let authority = self.issuer.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(authority).expect("connect");
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Length: 0\r\n\r\n"
        )
        .expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        let body = answer.split("\r\n\r\n").nth(1).expect("a body");
        serde_json::from_str(body).expect("a JSON answer")
    }

    fn stats(&self) -> Value {
        self.control("GET", "/control/stats")
    }
}

/// A weir with the fixture as server `remote`, tokens in `state`.
struct Weir {
    config: PathBuf,
    state: PathBuf,
    scratch_dir: PathBuf,
}

impl Weir {
    fn new(scratch: &Scratch, fixture: &Fixture) -> Self {
        let config = scratch.dir.join("weir.json");
        let doc = json!({
            "mcpServers": {"remote": {"url": fixture.mcp}},
            "weir": {"builtin": false, "code_mode": {"allow": ["remote/*"]},
                     "startup_timeout_secs": 30, "call_timeout_secs": 30},
        });
        std::fs::write(&config, serde_json::to_vec(&doc).expect("json")).expect("config");
        Self {
            config,
            state: scratch.dir.join("state"),
            scratch_dir: scratch.dir.clone(),
        }
    }

    /// `weir ARGS` (with the config), a person at `$BROWSER` or nobody.
    fn run(&self, args: &[&str], person: bool) -> Output {
        let mut command = Command::new(WEIR);
        command
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .arg("-vvv")
            .env("WEIR_STATE_DIR", &self.state)
            .env_remove("BROWSER")
            .stdin(Stdio::null());
        if person {
            let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("conformance/browser");
            command.env("BROWSER", browser);
        }
        command.output().expect("weir runs")
    }

    /// Code mode's `code` (the body of an async function), run once.
    fn code(&self, code: &str, person: bool) -> Output {
        let file = self.scratch_dir.join("run.js");
        std::fs::write(&file, code).expect("write code");
        self.run(&["run", "--code", file.to_str().expect("utf-8")], person)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const FIFTY_ECHOES: &str = "return (await Promise.all([...Array(50)].map((_, i) => \
     tools.remote.echo({text: `n${i}`})))).map(r => r.result).join(',');";

/// The whole life of a sign-in: the first call signs in (dynamic
/// registration, PKCE, tokens stored 0600 in a 0700 directory); the next
/// run uses the stored token; 50 concurrent calls meeting a 401 at once
/// cost one refresh; a tool needing a scope the token lacks gets a
/// step-up (the union of scopes); a revoked refresh token with no person
/// to sign in again is one clear error naming `weir auth login`, asked
/// once; `weir auth status` shows scopes but no token; `logout` forgets.
/// No token ever appears in what weir writes or a plugin could read.
#[test]
fn a_remote_server_behind_oauth() {
    let scratch = Scratch::new("oauth");
    let fixture = Fixture::start(&scratch);
    let weir = Weir::new(&scratch, &fixture);
    let mut written = String::new();

    // Nobody to sign in: the call fails saying what to run.
    let out = weir.code("return await tools.remote.echo({text: 'hi'});", false);
    written += &(text(&out.stdout) + &text(&out.stderr));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("run `weir auth login remote`"),
        "{}",
        text(&out.stderr)
    );

    // `weir doctor` names the step.
    let out = weir.run(&["doctor"], false);
    let report = text(&out.stdout) + &text(&out.stderr);
    written += &report;
    assert!(
        report.contains("sign in: `weir auth login remote`"),
        "{report}"
    );

    // A person: signed in on the first call.
    let out = weir.code("return await tools.remote.echo({text: 'hi'});", true);
    written += &(text(&out.stdout) + &text(&out.stderr));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("hi"), "{}", text(&out.stdout));
    let stats = fixture.stats();
    assert_eq!(stats["registrations"], 1, "{stats}");
    assert_eq!(stats["authorizations"].as_array().map(Vec::len), Some(1));
    let first: Vec<&str> = stats["authorizations"][0]
        .as_array()
        .expect("scopes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        first.contains(&"read") && first.contains(&"offline_access"),
        "{first:?}"
    );
    let files: Vec<PathBuf> = std::fs::read_dir(weir.state.join("oauth"))
        .expect("token dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&files[0]), 0o600);
    assert_eq!(mode(&weir.state.join("oauth")), 0o700);

    // The next run (no person now) uses the stored token.
    let out = weir.code(FIFTY_ECHOES, false);
    written += &(text(&out.stdout) + &text(&out.stderr));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("n0,n1,") && text(&out.stdout).contains("n49"));
    assert_eq!(
        fixture.stats()["authorizations"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        fixture.stats()["token_requests"]["refresh_token"],
        Value::Null
    );

    // Mid-session every token dies; 50 calls in flight meet the 401 at
    // once: one refresh, every call answered.
    let out = weir.code(
        &format!("await tools.remote.expire_tokens({{}}); {FIFTY_ECHOES}"),
        false,
    );
    written += &(text(&out.stdout) + &text(&out.stderr));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("n49"), "{}", text(&out.stdout));
    let stats = fixture.stats();
    assert_eq!(stats["token_requests"]["refresh_token"], 1, "{stats}");
    assert!(
        stats["refused"].as_u64().unwrap_or_default() >= 1,
        "{stats}"
    );

    // A scope the token lacks: a step-up asking for old and new scopes.
    let out = weir.code("return await tools.remote.write({text: 'x'});", true);
    written += &(text(&out.stdout) + &text(&out.stderr));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("wrote x"),
        "{}",
        text(&out.stdout)
    );
    let stats = fixture.stats();
    let step_up: Vec<&str> = stats["authorizations"][1]
        .as_array()
        .expect("a second authorization")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        step_up.contains(&"read") && step_up.contains(&"write"),
        "{step_up:?}"
    );

    // Status: who, scopes, expiry; never a token.
    let out = weir.run(&["auth", "status"], false);
    let status = text(&out.stdout);
    written += &(status.clone() + &text(&out.stderr));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        status.contains("remote") && status.contains("scopes") && status.contains("write"),
        "{status}"
    );
    assert!(status.contains("expires in"), "{status}");

    // Revoked: one clear error, the refresh tried once for all 50 calls.
    fixture.control("POST", "/control/revoke");
    fixture.control("POST", "/control/expire");
    let refreshes = fixture.stats()["token_requests"]["refresh_token"]
        .as_u64()
        .unwrap_or_default();
    let out = weir.code(FIFTY_ECHOES, false);
    written += &(text(&out.stdout) + &text(&out.stderr));
    assert!(!out.status.success());
    let error = text(&out.stderr);
    assert!(
        error.contains("expired or was revoked") && error.contains("weir auth login remote"),
        "{error}"
    );
    let stats = fixture.stats();
    assert_eq!(
        stats["token_requests"]["refresh_token"].as_u64(),
        Some(refreshes + 1),
        "one refresh try, not a storm: {stats}"
    );

    // A plugin sees the server's tools, not its tokens.
    let list = weir.run(
        &[
            "run",
            support::plugin_path("testbed").to_str().expect("utf-8"),
            "--input",
            "list",
            "--allow",
            "remote/*",
        ],
        false,
    );
    written += &(text(&list.stdout) + &text(&list.stderr));

    // Logout forgets.
    let out = weir.run(&["auth", "logout", "remote"], false);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("signed out of remote"));
    let out = weir.run(&["auth", "status"], false);
    assert!(
        text(&out.stdout).contains("not signed in"),
        "{}",
        text(&out.stdout)
    );

    let tokens = fixture.stats()["tokens"].clone();
    let tokens: Vec<&str> = tokens
        .as_array()
        .expect("tokens")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(tokens.len() >= 4, "{tokens:?}");
    for token in tokens {
        assert!(
            !written.contains(token),
            "a token leaked into weir's output: {token}"
        );
    }
}

/// A token file other users could read is refused, with what to do.
#[test]
fn a_loose_token_file_is_refused() {
    let scratch = Scratch::new("oauth-loose");
    let fixture = Fixture::start(&scratch);
    let weir = Weir::new(&scratch, &fixture);
    let out = weir.code("return await tools.remote.echo({text: 'hi'});", true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dir = weir.state.join("oauth");
    let file = std::fs::read_dir(&dir)
        .expect("token dir")
        .next()
        .expect("a token file")
        .expect("entry")
        .path();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = weir.run(&["auth", "status"], false);
    let status = text(&out.stdout);
    assert!(
        status.contains("refusing to use OAuth tokens") && status.contains("chmod 600"),
        "{status}"
    );
    let out = weir.code("return await tools.remote.echo({text: 'hi'});", false);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("chmod 600"),
        "{}",
        text(&out.stderr)
    );
}

/// A token about to expire is refreshed before it is sent: with tokens
/// lasting six seconds, runs go on past several lifetimes and the server
/// never has to refuse one.
#[test]
fn a_token_is_refreshed_before_it_expires() {
    let scratch = Scratch::new("oauth-ahead");
    let fixture = Fixture::start(&scratch);
    let weir = Weir::new(&scratch, &fixture);
    fixture.control("POST", "/control/lifetime?secs=6");
    let out = weir.code("return await tools.remote.echo({text: 'hi'});", true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let refused_at_sign_in = fixture.stats()["refused"].as_u64().unwrap_or_default();
    let refreshed = wait_for(Duration::from_secs(120), || {
        let out = weir.code("return await tools.remote.echo({text: 'hi'});", false);
        assert!(out.status.success(), "{}", text(&out.stderr));
        fixture.stats()["token_requests"]["refresh_token"]
            .as_u64()
            .is_some_and(|n| n >= 2)
    });
    assert!(refreshed, "no refreshes: {}", fixture.stats());
    let stats = fixture.stats();
    assert_eq!(
        stats["refused"].as_u64().unwrap_or_default(),
        refused_at_sign_in,
        "an expired token was sent: {stats}"
    );
}
