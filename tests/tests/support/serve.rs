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
}

impl Served {
    pub fn start(scratch: &Scratch, plugins: &Path) -> Self {
        Self::start_with(scratch, plugins, json!({}))
    }

    /// [`Served::start`] with these `weir` settings in the config.
    pub fn start_with(scratch: &Scratch, plugins: &Path, weir: Value) -> Self {
        let mut child = Command::new(WEIR)
            .args(serve_args_with(scratch, plugins, weir))
            .args(["--http", "127.0.0.1:0"])
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
        // Keep draining stderr so weir never blocks on it.
        std::thread::spawn(move || lines.for_each(drop));
        let at = line.find("MCP at http://").expect("an HTTP address") + "MCP at ".len();
        let url = line[at..].split([',', ' ']).next().expect("url");
        let base = url.trim_end_matches("/mcp").to_owned();
        Self { child, base }
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

    /// SIGTERM, then the exit status; fails if weir does not stop within
    /// a minute.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("signal");
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
