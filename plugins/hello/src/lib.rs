//! `hello`: greets through an MCP `echo` tool — the smallest useful agent.
//!
//! Input: a name (empty means "world"). It finds a server offering `echo`
//! (weir's built-in one first), sends the greeting through it and returns
//! what came back.

use weir_guest::{agent, call_tool, list_tools};

#[agent]
fn run(input: &str) -> Result<String, String> {
    let name = match input.trim() {
        "" => "world",
        name => name,
    };
    let tools = list_tools();
    let echo = tools
        .iter()
        .filter(|t| t.name == "echo")
        .min_by_key(|t| t.server != "builtin")
        .ok_or("no server offers an `echo` tool")?;
    let reply = call_tool(
        &echo.server,
        "echo",
        &serde_json::json!({ "message": format!("Hello, {name}!") }),
    )
    .map_err(|e| e.to_string())?;
    if reply.is_error {
        return Err(format!("echo failed: {}", reply.text()));
    }
    Ok(reply.text())
}
