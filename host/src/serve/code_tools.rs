//! Code mode as MCP tools: a small fixed set instead of one tool per
//! upstream tool. The model searches the tools it is granted, reads the
//! TypeScript declarations of the few it needs, and runs a script that
//! calls them — so its context holds three short tool descriptions
//! whatever the number of upstream tools.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool};
use serde_json::{Value, json};

use crate::code::{CodeMode, declarations};
use crate::gate::Gate;
use crate::gateway::ToolInfo;
use crate::runtime::Host;

/// `search_tools`: find granted tools by what they do.
pub const SEARCH_TOOLS: &str = "search_tools";
/// `describe_tools`: the TypeScript API of named tools.
pub const DESCRIBE_TOOLS: &str = "describe_tools";
/// `execute_code`: run a script against the tools.
pub const EXECUTE_CODE: &str = "execute_code";

/// Matches `search_tools` answers with when no limit is given.
const DEFAULT_LIMIT: usize = 8;
/// The most it answers with.
const MAX_LIMIT: usize = 50;
/// A summary is the description's first sentence, at most this long.
const SUMMARY_CHARS: usize = 160;

/// The code-mode tools of one `weir serve`.
pub struct CodeTools {
    host: Arc<Host>,
    code: CodeMode,
}

impl CodeTools {
    pub fn new(host: Arc<Host>, code: CodeMode) -> Self {
        Self { host, code }
    }

    /// The three tools, as a client lists them.
    pub fn tools() -> Vec<Tool> {
        vec![
            tool(
                SEARCH_TOOLS,
                "Find the tools you can call from execute_code, by what they do. Give a few \
                 words (\"read a file\", \"current time\"); get the best matches: server, \
                 name, a one-line summary. Then call describe_tools for the exact API.",
                json!({
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "description": "What the tool should do, in a few words."},
                        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "description": "Most matches to return (default 8)."}
                    },
                    "required": ["query"]
                }),
            ),
            tool(
                DESCRIBE_TOOLS,
                "TypeScript declarations of tools (from search_tools), with their docs: \
                 exactly what a script calls, as `await tools.<server>.<tool>({...})`. Name \
                 tools as \"server.tool\" (or just \"tool\" when only one server has it).",
                json!({
                    "type": "object",
                    "properties": {
                        "names": {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "Tools as \"server.tool\"."}
                    },
                    "required": ["names"]
                }),
            ),
            tool(
                EXECUTE_CODE,
                "Run JavaScript in a fresh sandbox. The code is the body of an async \
                 function: `await` tool calls (`tools.<server>.<tool>(args)` or \
                 `callTool(server, tool, args)`), and `return` the result (JSON). Calls \
                 awaited together (`Promise.all`) run at once. A failed call throws a \
                 ToolError with `kind` and `message`. console.log output comes back too. No \
                 network, files, timers, fetch, require or import: only the tools.",
                json!({
                    "type": "object",
                    "properties": {
                        "code": {"type": "string", "description": "The script: the body of an async function."}
                    },
                    "required": ["code"]
                }),
            ),
        ]
    }

    /// Whether `name` is one of the three.
    pub fn has(name: &str) -> bool {
        [SEARCH_TOOLS, DESCRIBE_TOOLS, EXECUTE_CODE].contains(&name)
    }

    /// Handles a call of one of the three; `None` when `name` is not one.
    pub async fn call(&self, name: &str, arguments: Option<JsonObject>) -> Option<CallToolResult> {
        let args = arguments.unwrap_or_default();
        Some(match name {
            SEARCH_TOOLS => self.search(&args).await,
            DESCRIBE_TOOLS => self.describe(&args).await,
            EXECUTE_CODE => self.execute(&args).await,
            _ => return None,
        })
    }

    /// What scripts may call: code mode's grant, through the gate's list.
    pub(super) async fn granted(&self) -> Vec<ToolInfo> {
        Gate::new(self.code.runtime().rules().clone(), self.host.gateway())
            .list_tools()
            .await
    }

    async fn search(&self, args: &JsonObject) -> CallToolResult {
        let Some(query) = args.get("query").and_then(Value::as_str) else {
            return error("search_tools takes {\"query\": \"a few words\", \"limit\"?: n}");
        };
        let limit = match args.get("limit") {
            None => DEFAULT_LIMIT,
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => usize::try_from(n).unwrap_or(MAX_LIMIT).min(MAX_LIMIT),
                _ => return error("`limit` must be a whole number from 1 to 50"),
            },
        };
        let found = crate::search::rank(self.granted().await, query, limit);
        if found.is_empty() {
            return text(format!(
                "No granted tool matches {query:?}. Try other words (what the tool does, or \
                 the kind of thing it works on)."
            ));
        }
        let list: Vec<Value> = found
            .iter()
            .map(|t| {
                json!({
                    "server": t.server,
                    "name": t.name,
                    "call": format!(
                        "tools.{}.{}",
                        declarations::identifier(&t.server),
                        declarations::identifier(&t.name)
                    ),
                    "summary": summary(t.description.as_deref().unwrap_or("")),
                })
            })
            .collect();
        text(Value::Array(list).to_string())
    }

    async fn describe(&self, args: &JsonObject) -> CallToolResult {
        let names: Vec<&str> = match args.get("names").and_then(Value::as_array) {
            Some(names) => names.iter().filter_map(Value::as_str).collect(),
            None => Vec::new(),
        };
        if names.is_empty() {
            return error("describe_tools takes {\"names\": [\"server.tool\", …]}");
        }
        let granted = self.granted().await;
        let mut chosen: Vec<ToolInfo> = Vec::new();
        let mut unknown: Vec<&str> = Vec::new();
        for name in &names {
            match find(&granted, name) {
                Some(tool) if !chosen.contains(tool) => chosen.push(tool.clone()),
                Some(_) => {}
                None => unknown.push(name),
            }
        }
        if chosen.is_empty() {
            return error(&format!(
                "No granted tool is named {}; use search_tools to find names.",
                unknown.join(", ")
            ));
        }
        let mut out = declarations::declare(&chosen);
        if !unknown.is_empty() {
            out.push_str(&format!(
                "// Not found (or not granted): {}\n",
                unknown.join(", ")
            ));
        }
        text(out)
    }

    async fn execute(&self, args: &JsonObject) -> CallToolResult {
        let Some(code) = args.get("code").and_then(Value::as_str) else {
            return error("execute_code takes {\"code\": \"…JavaScript…\"}");
        };
        let execution = self.code.execute(&self.host, code).await;
        let console = execution.console_text();
        let mut blocks = Vec::new();
        let failed = match execution.value_text() {
            Some(value) => {
                blocks.push(ContentBlock::text(value));
                false
            }
            None => {
                if let Err(e) = &execution.result {
                    blocks.push(ContentBlock::text(format!("Error: {e}")));
                }
                true
            }
        };
        if !console.is_empty() {
            blocks.push(ContentBlock::text(format!("console:\n{console}")));
        }
        if failed {
            CallToolResult::error(blocks)
        } else {
            CallToolResult::success(blocks)
        }
    }
}

/// A granted tool by `server.tool`, `server/tool`, the identifiers of
/// either, or a bare name only one server has.
fn find<'a>(granted: &'a [ToolInfo], name: &str) -> Option<&'a ToolInfo> {
    let split = name.split_once('/').or_else(|| name.split_once('.'));
    if let Some((server, tool)) = split {
        let hit = granted.iter().find(|t| {
            (t.server == server || declarations::identifier(&t.server) == server)
                && (t.name == tool || declarations::identifier(&t.name) == tool)
        });
        if hit.is_some() {
            return hit;
        }
    }
    let mut bare = granted
        .iter()
        .filter(|t| t.name == name || declarations::identifier(&t.name) == name);
    match (bare.next(), bare.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

/// The first sentence (or line) of a description, bounded.
fn summary(description: &str) -> String {
    let first = description.trim().lines().next().unwrap_or("");
    let sentence = match first.find(". ") {
        Some(at) => &first[..=at],
        None => first,
    };
    if sentence.chars().count() <= SUMMARY_CHARS {
        return sentence.to_owned();
    }
    let cut: String = sentence.chars().take(SUMMARY_CHARS - 1).collect();
    format!("{cut}…")
}

fn tool(name: &'static str, description: &'static str, schema: Value) -> Tool {
    let schema = match schema {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    };
    Tool::new(name, description, Arc::new(schema))
}

fn text(body: String) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(body)])
}

fn error(message: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.to_owned())])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(server: &str, name: &str) -> ToolInfo {
        ToolInfo::named(server, name)
    }

    #[test]
    fn finds_tools_by_any_spelling() {
        let granted = [
            info("server-fs", "read_file"),
            info("a", "echo"),
            info("b", "echo"),
        ];
        assert_eq!(
            find(&granted, "server-fs.read_file").map(|t| &*t.name),
            Some("read_file")
        );
        assert_eq!(
            find(&granted, "server_fs/read_file").map(|t| &*t.name),
            Some("read_file")
        );
        assert_eq!(
            find(&granted, "read_file").map(|t| &*t.server),
            Some("server-fs")
        );
        // Two servers have it: the bare name is ambiguous.
        assert!(find(&granted, "echo").is_none());
        assert_eq!(find(&granted, "b.echo").map(|t| &*t.server), Some("b"));
        assert!(find(&granted, "nope").is_none());
    }

    #[test]
    fn summaries_are_first_sentences() {
        assert_eq!(summary("Reads a file. Use it for text."), "Reads a file.");
        assert_eq!(summary("One line\nmore"), "One line");
        assert_eq!(summary(&"x".repeat(400)).chars().count(), SUMMARY_CHARS);
    }

    /// The listing a model reads stays small: under 2 KB of JSON.
    #[test]
    fn listing_is_small() {
        let bytes = serde_json::to_string(&CodeTools::tools())
            .map(|s| s.len())
            .unwrap_or(0);
        assert!(bytes > 0 && bytes <= 2048, "{bytes} bytes");
    }
}
