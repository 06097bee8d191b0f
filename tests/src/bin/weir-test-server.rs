//! An MCP server for weir's tests, built on rmcp: it records every session
//! it serves and misbehaves on demand.
//!
//! - `WEIR_TEST_SESSION_LOG=FILE`: one line `<pid>` is appended per
//!   initialized session, so a test counts the sessions weir opened and
//!   checks their processes are gone.
//! - tools: `echo`, `sleep` (ms), `fail` (an `isError` result), `crash`
//!   (the process exits mid-call), `pid`.

use std::io::Write;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::{NotificationContext, RoleServer};
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

#[derive(Clone)]
struct TestServer {
    tool_router: ToolRouter<Self>,
}

#[derive(Deserialize, JsonSchema)]
struct EchoArgs {
    message: String,
}

#[derive(Deserialize, JsonSchema)]
struct SleepArgs {
    ms: u64,
}

#[derive(Deserialize, JsonSchema)]
struct FailArgs {
    #[serde(default)]
    message: String,
}

fn text(t: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(t)])
}

#[tool_router]
impl TestServer {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Returns the message.")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> CallToolResult {
        text(args.message)
    }

    #[tool(description = "Sleeps `ms` milliseconds, then answers.")]
    async fn sleep(&self, Parameters(args): Parameters<SleepArgs>) -> CallToolResult {
        tokio::time::sleep(Duration::from_millis(args.ms)).await;
        text("slept")
    }

    #[tool(description = "Answers with an isError result.")]
    async fn fail(&self, Parameters(args): Parameters<FailArgs>) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(format!(
            "failed: {}",
            args.message
        ))])
    }

    #[tool(description = "Exits the server process in the middle of the call.")]
    async fn crash(&self) -> CallToolResult {
        eprintln!("weir-test-server: crashing on request");
        std::process::exit(3)
    }

    #[tool(description = "The server's process id.")]
    async fn pid(&self) -> CallToolResult {
        text(std::process::id().to_string())
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TestServer {
    async fn on_initialized(&self, _context: NotificationContext<RoleServer>) {
        if let Ok(path) = std::env::var("WEIR_TEST_SESSION_LOG") {
            let line = format!("{}\n", std::process::id());
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(line.as_bytes()));
            if let Err(e) = written {
                eprintln!("weir-test-server: cannot append to {path}: {e}");
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    eprintln!("weir-test-server: starting (pid {})", std::process::id());
    let service = TestServer::new().serve(rmcp::transport::stdio()).await?;
    service.waiting().await?;
    Ok(())
}
