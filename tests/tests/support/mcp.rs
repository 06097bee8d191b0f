//! An MCP client's side of the tests: one `tools/call` as the text its
//! model would read, and a child's stderr kept line by line.

use std::sync::{Arc, Mutex};

use rmcp::model::CallToolRequestParams;
use rmcp::service::{Peer, RoleClient};
use serde_json::Value;

/// One `tools/call` of `tool` with `args`: its text, `error: TEXT` for a
/// result with `isError`, `protocol error: …` for an MCP error.
pub async fn call_text(peer: &Peer<RoleClient>, tool: &str, args: Value) -> String {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    match peer.call_tool(params).await {
        Ok(result) => {
            let text: String = result
                .content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect();
            if result.is_error == Some(true) {
                format!("error: {text}")
            } else {
                text
            }
        }
        Err(e) => format!("protocol error: {e}"),
    }
}

/// `weir ARGS` with `RUST_LOG=log` and its stdin, stdout and stderr
/// piped, for an MCP client to speak to over stdio; killed if the test
/// ends first.
pub fn spawn_weir(args: &[&std::ffi::OsStr], log: &str) -> tokio::process::Child {
    tokio::process::Command::new(super::WEIR)
        .args(args)
        .env("RUST_LOG", log)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start weir")
}

/// Lines a child wrote, kept as they come.
pub type Log = Arc<Mutex<Vec<String>>>;

/// Reads `stderr` to its end on a task of its own, keeping each line in
/// the returned log (and passing it on to the test's own stderr).
pub fn keep_lines(stderr: tokio::process::ChildStderr) -> Log {
    let log = Log::default();
    tokio::spawn({
        let log = log.clone();
        async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{line}");
                if let Ok(mut log) = log.lock() {
                    log.push(line);
                }
            }
        }
    });
    log
}
