//! Debian's `redis-server` and `nginx`, started for one test or benchmark
//! on loopback, stopped when dropped.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port free on loopback now (for a config that must name it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A program of Debian's, wherever its package put it; `None` if it is
/// not installed.
pub fn program(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.exists())
}

fn required(name: &str) -> PathBuf {
    program(name).unwrap_or_else(|| {
        panic!(
            "{name} is not installed: scripts/test installs it (apt-get install nginx redis-server)"
        )
    })
}

/// Waits up to `limit` for `check`: a bound on a wait, not a timing.
pub fn within(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// A Redis server on loopback, nothing saved to disk.
pub struct Redis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    /// Starts one, its working files in `dir`.
    pub fn start(dir: &Path) -> Self {
        let mut redis = Self {
            child: None,
            port: free_port(),
            dir: dir.to_owned(),
        };
        redis.restart();
        redis
    }

    /// Starts it (again) on its port; returns once it answers `PING`.
    pub fn restart(&mut self) {
        let child = Command::new(required("redis-server"))
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--port", &self.port.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        assert!(
            within(Duration::from_secs(30), || self.ping()),
            "redis-server does not answer PING"
        );
    }

    /// Whether it answers `PING`.
    pub fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// Stops it (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), rustix::process::Signal::TERM);
            let _ = child.wait();
        }
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// nginx in front of `weir serve` replicas, as the README's "Running a
/// fleet" has it: round-robin, no affinity, streams unbuffered, the
/// client's Host passed on (weir checks it). A refused connection goes to
/// the next replica, and none is struck off for it (`max_fails=0`): a
/// restarted replica takes requests as soon as it listens.
pub struct Nginx {
    child: Child,
    port: u16,
    prefix: PathBuf,
}

impl Nginx {
    /// Starts one in `dir`, in front of the replicas on `replicas`'
    /// loopback ports; returns once it passes `/healthz` on.
    pub fn start(dir: &Path, replicas: &[u16]) -> Self {
        let port = free_port();
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(prefix.join("logs")).expect("nginx dir");
        let servers: String = replicas
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p} max_fails=0;\n"))
            .collect();
        let p = prefix.display();
        let conf = format!(
            "daemon off;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n\
             \x20 client_body_temp_path {p}/body;\n  proxy_temp_path {p}/proxy;\n\
             \x20 fastcgi_temp_path {p}/fastcgi;\n  uwsgi_temp_path {p}/uwsgi;\n  scgi_temp_path {p}/scgi;\n\
             \x20 upstream weir {{\n{servers}  }}\n\
             \x20 server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
             \x20     proxy_pass http://weir;\n      proxy_http_version 1.1;\n\
             \x20     proxy_set_header Connection \"\";\n      proxy_set_header Host $http_host;\n\
             \x20     proxy_buffering off;\n      proxy_read_timeout 300s;\n    }}\n  }}\n}}\n"
        );
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("nginx.conf");
        let child = Command::new(required("nginx"))
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nginx");
        let nginx = Self {
            child,
            port,
            prefix,
        };
        let addr = nginx.addr();
        assert!(
            within(Duration::from_secs(30), || healthz(&addr)),
            "nginx does not pass /healthz on"
        );
        nginx
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What nginx logged (upstreams refused, closed, timed out).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
    }
}

/// Whether `GET /healthz` at `addr` answers 200.
pub fn healthz(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut reply = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut reply).is_ok()
        && reply.starts_with("HTTP/1.1 200")
}

impl Drop for Nginx {
    fn drop(&mut self) {
        signal(self.child.id(), rustix::process::Signal::QUIT);
        if !within(Duration::from_secs(5), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
