//! Code mode's API as MCP resources and a prompt: the TypeScript
//! declarations of every tool a script may call (all of them, or one
//! server's), for clients that attach documents rather than call
//! `describe_tools`; and a `code_mode` prompt that starts a task the code
//! mode way. Everything here is generated from the granted tool list at
//! the time it is read, so it is never stale.

use rmcp::ErrorData;
use rmcp::model::{
    GetPromptResult, Prompt, PromptArgument, PromptMessage, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate, Role,
};

use super::code_tools::{CodeTools, DESCRIBE_TOOLS, EXECUTE_CODE, SEARCH_TOOLS};
use crate::code::declarations;

/// The declarations of every tool a script may call.
pub const ALL_TOOLS_URI: &str = "weir://code-mode/tools.d.ts";
/// One server's tools: `weir://code-mode/servers/{server}.d.ts`.
const SERVER_PREFIX: &str = "weir://code-mode/servers/";
const SERVER_SUFFIX: &str = ".d.ts";
/// The prompt that starts a task in code mode.
pub const PROMPT: &str = "code_mode";
const MIME: &str = "text/x-typescript";

/// The resources listed: the whole API.
pub fn resources() -> Vec<Resource> {
    vec![
        Resource::new(ALL_TOOLS_URI, "code-mode-api")
            .with_title("Code mode API")
            .with_description(
                "TypeScript declarations of every tool an execute_code script may call, \
                 as `tools.<server>.<tool>(args)`, with their docs.",
            )
            .with_mime_type(MIME),
    ]
}

/// The resource template: one server's part of the API.
pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(
            format!("{SERVER_PREFIX}{{server}}{SERVER_SUFFIX}"),
            "code-mode-server-api",
        )
        .with_title("Code mode API of one server")
        .with_description("TypeScript declarations of one server's tools, as scripts call them.")
        .with_mime_type(MIME),
    ]
}

/// Reads one of the resources above.
pub async fn read(code: &CodeTools, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let granted = code.granted().await;
    let tools = if uri == ALL_TOOLS_URI {
        granted
    } else if let Some(server) = uri
        .strip_prefix(SERVER_PREFIX)
        .and_then(|rest| rest.strip_suffix(SERVER_SUFFIX))
    {
        let tools: Vec<_> = granted
            .into_iter()
            .filter(|t| t.server == server || declarations::identifier(&t.server) == server)
            .collect();
        if tools.is_empty() {
            return Err(ErrorData::resource_not_found(
                format!("no server `{server}` with tools a script may call (see {ALL_TOOLS_URI})"),
                None,
            ));
        }
        tools
    } else {
        return Err(ErrorData::resource_not_found(
            format!(
                "weir has no resource `{uri}`; it has {ALL_TOOLS_URI} and {SERVER_PREFIX}{{server}}{SERVER_SUFFIX}"
            ),
            None,
        ));
    };
    let text = declarations::declare(&tools);
    Ok(ReadResourceResult::new(vec![
        ResourceContents::text(text, uri).with_mime_type(MIME),
    ]))
}

/// The prompts listed.
pub fn prompts() -> Vec<Prompt> {
    vec![Prompt::new(
        PROMPT,
        Some("Do a task by writing a short script against the tools (weir code mode)."),
        Some(vec![
            PromptArgument::new("task")
                .with_description("What to do, in plain words.")
                .with_required(true),
        ]),
    )]
}

/// The `code_mode` prompt for a task.
pub fn prompt(
    name: &str,
    arguments: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Result<GetPromptResult, ErrorData> {
    if name != PROMPT {
        return Err(ErrorData::invalid_params(
            format!("no prompt named `{name}`; weir has `{PROMPT}`"),
            None,
        ));
    }
    let task = arguments
        .and_then(|a| a.get("task"))
        .and_then(serde_json::Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ErrorData::invalid_params(
                format!("the `{PROMPT}` prompt needs a `task` argument: what to do"),
                None,
            )
        })?;
    let text = format!(
        "Do this task with code mode: {task}\n\n\
         1. Call {SEARCH_TOOLS} with a few words for each thing you need to do.\n\
         2. Call {DESCRIBE_TOOLS} with the names you found, to get their exact TypeScript API.\n\
         3. Call {EXECUTE_CODE} once with a script that does the whole task: await the tool \
         calls (Promise.all for those that can run at once), combine their results, and \
         return only what the answer needs.\n\
         If a call throws, read its `kind` and `message`, fix the script and run it again."
    );
    Ok(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description("A task for weir's code mode"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prompt needs its task, and says which tools to use in order.
    #[test]
    fn prompt_takes_a_task() {
        let mut args = serde_json::Map::new();
        assert!(prompt(PROMPT, None).is_err());
        args.insert("task".into(), "  ".into());
        assert!(prompt(PROMPT, Some(&args)).is_err());
        args.insert("task".into(), "find the time in Oslo".into());
        let result = prompt(PROMPT, Some(&args)).expect("a prompt");
        let text = serde_json::to_string(&result.messages).unwrap_or_default();
        for needle in [
            "find the time in Oslo",
            SEARCH_TOOLS,
            DESCRIBE_TOOLS,
            EXECUTE_CODE,
        ] {
            assert!(text.contains(needle), "{needle} in {text}");
        }
        assert!(prompt("other", Some(&args)).is_err());
    }
}
