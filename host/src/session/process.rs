//! A stdio MCP server as an operating-system process: how it is started,
//! where its stderr goes, and how it is made to go away.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::config::INHERITED_ENV;

/// Longest stderr line logged as is; the rest of a longer line is dropped,
/// so a server printing a megabyte without a newline costs no memory.
const MAX_STDERR_LINE: usize = 2048;

/// Stderr lines kept per process for error messages ("it said: …").
const STDERR_TAIL_LINES: usize = 12;
/// How long `terminate` waits for the last of a server's stderr.
const STDERR_DRAIN: Duration = Duration::from_millis(500);

/// A resolved way to start a server process.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
}

/// The last lines a server wrote to stderr, shared with its stderr pump.
#[derive(Debug, Clone, Default)]
pub(crate) struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    fn push(&self, line: String) {
        if let Ok(mut lines) = self.0.lock() {
            if lines.len() == STDERR_TAIL_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    }

    /// `"; its stderr ended with: …"`, or nothing if it wrote nothing.
    pub fn describe(&self) -> String {
        let lines = match self.0.lock() {
            Ok(lines) => lines.iter().cloned().collect::<Vec<_>>(),
            Err(_) => return String::new(),
        };
        if lines.is_empty() {
            String::new()
        } else {
            format!("; its stderr ended with: {}", lines.join(" | "))
        }
    }
}

/// A running server process. Owned by its session; [`terminate`] is the
/// only way it should end.
///
/// [`terminate`]: ServerProcess::terminate
#[derive(Debug)]
pub(crate) struct ServerProcess {
    child: Child,
    /// Also the process-group id: each server leads its own group, so that
    /// whatever it spawns (npx → node, a shell → the real server) is
    /// signalled with it and nothing is orphaned.
    pid: Option<u32>,
    pub stderr: StderrTail,
    /// The task copying its stderr into `stderr`: `terminate` lets it
    /// finish, so a server that died at once has its last words read.
    pump: Option<tokio::task::JoinHandle<()>>,
}

impl ServerProcess {
    /// Starts the process with piped stdio; its stderr is logged under the
    /// server's name, line by line, bounded.
    pub fn spawn(
        server: &Arc<str>,
        launch: &Launch,
    ) -> Result<(Self, ChildStdout, ChildStdin), String> {
        let mut cmd = Command::new(&launch.program);
        cmd.args(&launch.args)
            .env_clear()
            .envs(
                INHERITED_ENV
                    .iter()
                    .filter_map(|k| std::env::var(k).ok().map(|v| (*k, v))),
            )
            .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A backstop only: shutdown terminates servers explicitly.
            .kill_on_drop(true)
            // Own process group: a Ctrl-C at the terminal reaches weir, which
            // then shuts servers down in order, rather than killing them
            // mid-reply.
            .process_group(0);
        if let Some(cwd) = &launch.cwd {
            cmd.current_dir(cwd);
        }
        let mut child = cmd.spawn().map_err(|e| describe_spawn_error(launch, &e))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("the process started without piped stdio".into());
        };
        let tail = StderrTail::default();
        let pump = tokio::spawn(pump_stderr(server.clone(), stderr, tail.clone()));
        let pid = child.id();
        tracing::debug!(server = %server, pid, program = %launch.program.display(), "server process started");
        Ok((
            Self {
                child,
                pid,
                stderr: tail,
                pump: Some(pump),
            },
            stdout,
            stdin,
        ))
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Ends the process the way the MCP stdio transport asks: its stdin is
    /// already closed (the session is gone), so wait `grace` for it to exit;
    /// then SIGTERM and wait again; then SIGKILL. Finally sweep its process
    /// group, so children it left behind go too. Returns once reaped.
    pub async fn terminate(mut self, server: &str, grace: Duration) {
        let exited = tokio::time::timeout(grace, self.child.wait()).await.is_ok();
        if !exited {
            tracing::debug!(
                server,
                "server did not exit after stdin closed; sending SIGTERM"
            );
            self.signal_group(rustix::process::Signal::TERM);
            if tokio::time::timeout(grace, self.child.wait())
                .await
                .is_err()
            {
                tracing::warn!(server, "server ignored SIGTERM; killing it");
                self.signal_group(rustix::process::Signal::KILL);
                let _ = self.child.wait().await;
            }
        }
        // The leader is reaped; anything still in its group is an orphan.
        self.signal_group(rustix::process::Signal::KILL);
        // Its stderr is closed now (unless something outside its group
        // holds it): read what is left, within a bound.
        if let Some(pump) = self.pump.take() {
            let _ = tokio::time::timeout(STDERR_DRAIN, pump).await;
        }
        tracing::debug!(server, pid = self.pid, "server process ended");
    }

    fn signal_group(&self, signal: rustix::process::Signal) {
        let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) else {
            return;
        };
        if let Some(pgid) = rustix::process::Pid::from_raw(pid) {
            // ESRCH (already gone) is the common, good case.
            let _ = rustix::process::kill_process_group(pgid, signal);
        }
    }
}

fn describe_spawn_error(launch: &Launch, e: &std::io::Error) -> String {
    let program = launch.program.display();
    // A missing working directory fails the spawn with the same error as a
    // missing program: tell them apart.
    if let Some(cwd) = &launch.cwd {
        match std::fs::metadata(cwd) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return format!("working directory {} is not a directory", cwd.display()),
            Err(error) => {
                return format!("cannot use working directory {}: {error}", cwd.display());
            }
        }
    }
    match e.kind() {
        std::io::ErrorKind::NotFound if launch.program.components().count() == 1 => {
            format!("command `{program}` not found on PATH")
        }
        std::io::ErrorKind::NotFound => format!("command `{program}` not found"),
        std::io::ErrorKind::PermissionDenied => {
            format!("command `{program}` is not executable (permission denied)")
        }
        _ => format!("cannot start `{program}`: {e}"),
    }
}

async fn pump_stderr(server: Arc<str>, stderr: tokio::process::ChildStderr, tail: StderrTail) {
    let mut reader = BufReader::with_capacity(8192, stderr);
    let mut line: Vec<u8> = Vec::new();
    let mut truncated = false;
    loop {
        let (consumed, newline) = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(buf) => {
                let (chunk, newline) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (&buf[..i], Some(i)),
                    None => (buf, None),
                };
                let room = MAX_STDERR_LINE.saturating_sub(line.len());
                truncated |= chunk.len() > room;
                line.extend_from_slice(&chunk[..chunk.len().min(room)]);
                (newline.map_or(buf.len(), |i| i + 1), newline.is_some())
            }
        };
        reader.consume(consumed);
        if newline {
            emit(&server, &tail, &line, truncated);
            line.clear();
            truncated = false;
        }
    }
    if !line.is_empty() {
        emit(&server, &tail, &line, truncated);
    }
}

fn emit(server: &str, tail: &StderrTail, line: &[u8], truncated: bool) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end();
    if text.is_empty() {
        return;
    }
    let text = if truncated {
        format!("{text}… [line truncated]")
    } else {
        text.to_owned()
    };
    tracing::info!(target: "weir::server", server, "{text}");
    tail.push(text);
}
