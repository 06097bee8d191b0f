//! `weir serve` as the integration tests start it: a plugins directory, a
//! `weir serve --http` process on the scratch config, and raw HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use super::{Scratch, WEIR, plugin_path};

/// A plugins directory holding `names` (components and their manifests).
pub fn plugins_dir(scratch: &Scratch, names: &[&str]) -> PathBuf {
    let dir = scratch.dir.join("plugins");
    std::fs::create_dir_all(&dir).expect("plugins dir");
    for name in names {
        install(&dir, name);
    }
    dir
}

/// Copies plugin `name` (and its manifest, if it has one) into `dir`.
pub fn install(dir: &Path, name: &str) {
    let wasm = plugin_path(name);
    // Written beside, then renamed in: the watcher never sees half a file.
    let part = dir.join(format!(".{name}.part"));
    std::fs::copy(&wasm, &part).expect("copy plugin");
    std::fs::rename(&part, dir.join(format!("{name}.wasm"))).expect("place plugin");
    let manifest = wasm.with_extension("toml");
    if manifest.exists() {
        std::fs::copy(&manifest, dir.join(format!("{name}.toml"))).expect("copy manifest");
    }
}

/// The arguments of `weir serve` on the scratch's config and `plugins`.
pub fn serve_args(scratch: &Scratch, plugins: &Path) -> Vec<String> {
    serve_args_with(scratch, plugins, json!({}))
}

/// [`serve_args`] with these `weir` settings in the config.
pub fn serve_args_with(scratch: &Scratch, plugins: &Path, weir: Value) -> Vec<String> {
    let config = scratch.config(weir, json!({}));
    vec![
        "serve".into(),
        "--config".into(),
        config.display().to_string(),
        "--plugins".into(),
        plugins.display().to_string(),
    ]
}

/// A `weir serve --http` process, stopped (SIGKILL) if a test fails.
pub struct Served {
    pub child: Child,
    pub base: String,
    /// Every line weir wrote to stderr so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Served {
    pub fn start(scratch: &Scratch, plugins: &Path) -> Self {
        Self::start_with(scratch, plugins, json!({}))
    }

    /// [`Served::start`] with these `weir` settings in the config.
    pub fn start_with(scratch: &Scratch, plugins: &Path, weir: Value) -> Self {
        Self::start_with_env(scratch, plugins, weir, json!({}), &[])
    }

    /// [`Served::start_with`], with `extra` servers in the config and
    /// `env` set for weir.
    pub fn start_with_env(
        scratch: &Scratch,
        plugins: &Path,
        weir: Value,
        extra: Value,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Self {
        let config = scratch.config(weir, extra);
        let plugins = [std::ffi::OsStr::new("--plugins"), plugins.as_os_str()];
        Self::launch(&config, &plugins, env)
    }

    /// `weir serve --config CONFIG ARGS --http 127.0.0.1:0` with `env`
    /// set, once it says where it listens.
    pub fn launch(
        config: &Path,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Self {
        Self::launch_on(config, args, env, "127.0.0.1:0")
    }

    /// [`Served::launch`] on `addr` (a port chosen beforehand, for a
    /// config that names its own URL).
    pub fn launch_on(
        config: &Path,
        args: &[&std::ffi::OsStr],
        env: &[(&str, &std::ffi::OsStr)],
        addr: &str,
    ) -> Self {
        let mut child = Command::new(WEIR)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(args)
            .args(["--http", addr])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start weir serve");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let line = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.starts_with("weir serve:"))
            .expect("weir serve prints its start line");
        let log = std::sync::Arc::new(std::sync::Mutex::new(vec![line.clone()]));
        // Keep draining stderr so weir never blocks on it.
        std::thread::spawn({
            let log = log.clone();
            move || {
                for line in lines.map_while(Result::ok) {
                    log.lock().expect("log").push(line);
                }
            }
        });
        let at = line.find("MCP at http://").expect("an HTTP address") + "MCP at ".len();
        let url = line[at..].split([',', ' ']).next().expect("url");
        let base = url.trim_end_matches("/mcp").to_owned();
        Self { child, base, log }
    }

    /// What weir wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    pub fn mcp_url(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// `host:port` of the listener.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_owned()
    }

    pub fn metrics_url(&self) -> String {
        format!("{}/metrics", self.base)
    }

    /// Sends SIGTERM, without waiting for weir to stop.
    pub fn sigterm(&self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("signal");
    }

    /// Whether weir exited successfully within `limit` (a bound on the
    /// wait, not a timing).
    pub fn exits_cleanly_within(&mut self, limit: std::time::Duration) -> bool {
        super::wait_for(
            limit,
            || matches!(self.child.try_wait(), Ok(Some(status)) if status.success()),
        )
    }

    /// SIGTERM, then the exit status; fails if weir does not stop within
    /// a minute.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.sigterm();
        let stopped = super::wait_for(std::time::Duration::from_secs(60), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        });
        assert!(
            stopped,
            "weir serve did not stop within a minute of SIGTERM"
        );
        let status = self.child.wait().expect("wait for weir");
        std::mem::forget(self);
        status
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One plain HTTP/1.1 GET with one extra header; the whole reply.
pub fn raw_http(addr: &str, path: &str, header: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let host = if header.starts_with("Host:") {
        String::new()
    } else {
        format!("Host: {addr}\r\n")
    };
    write!(
        stream,
        "GET {path} HTTP/1.1\r\n{host}{header}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply
}

/// An `initialize` request of protocol 2025-11-25.
pub fn initialize(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "hardening", "version": "1"}}})
}

/// A legacy MCP session over raw HTTP/1.1, a connection per request.
pub struct Session {
    addr: String,
    id: String,
    next: u64,
}

impl Session {
    /// `initialize` and `notifications/initialized`.
    pub fn open(addr: &str) -> Self {
        let reply = post(addr, None, &initialize(0).to_string());
        let id = header(&reply, "mcp-session-id")
            .unwrap_or_else(|| panic!("no session id in:\n{reply}"));
        let session = Self {
            addr: addr.to_owned(),
            id,
            next: 1,
        };
        let done = post(
            addr,
            Some(&session.id),
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        );
        assert!(status(&done) < 300, "{done}");
        session
    }

    /// The same session, its requests sent to `addr` from now on (another
    /// replica of a fleet).
    pub fn retarget(&mut self, addr: &str) {
        self.addr = addr.to_owned();
    }

    /// One request; the whole reply (headers and event stream).
    pub fn request(&mut self, method: &str, params: Value) -> String {
        self.next += 1;
        let body = json!({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params});
        post(&self.addr, Some(&self.id), &body.to_string())
    }

    /// The text of the request, to send by hand.
    pub fn raw(&mut self, method: &str, params: Value) -> String {
        self.next += 1;
        let body = json!({"jsonrpc": "2.0", "id": self.next, "method": method, "params": params})
            .to_string();
        request_text(&self.addr, Some(&self.id), &body)
    }
}

/// A POST of `body` to `/mcp`, as text.
pub fn request_text(addr: &str, session: Option<&str>, body: &str) -> String {
    let session = session
        .map(|s| format!("Mcp-Session-Id: {s}\r\nMCP-Protocol-Version: 2025-11-25\r\n"))
        .unwrap_or_default();
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json, text/event-stream\r\n\
         Content-Type: application/json\r\n{session}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A 2026-07-28 request to `/mcp`, as text: `method` with `params` and
/// the `_meta` that revision puts on every request, its standard headers
/// (`Mcp-Name` naming `name`, where given) and `extra` ones (each ending
/// in CRLF).
pub fn request_text_2026(
    addr: &str,
    method: &str,
    name: Option<&str>,
    params: Value,
    extra: &str,
) -> String {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}});
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string();
    let name = name
        .map(|n| format!("Mcp-Name: {n}\r\n"))
        .unwrap_or_default();
    request_text(addr, None, &body).replacen(
        "POST /mcp HTTP/1.1\r\n",
        &format!(
            "POST /mcp HTTP/1.1\r\n{extra}MCP-Protocol-Version: 2026-07-28\r\n\
             Mcp-Method: {method}\r\n{name}"
        ),
        1,
    )
}

/// One POST to `/mcp`; the whole reply.
pub fn post(addr: &str, session: Option<&str>, body: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .expect("timeout");
    stream
        .write_all(request_text(addr, session, body).as_bytes())
        .expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("reply");
    reply
}

/// The status code of a raw reply.
pub fn status(reply: &str) -> u16 {
    reply
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A header of a raw reply.
pub fn header(reply: &str, name: &str) -> Option<String> {
    reply.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}
