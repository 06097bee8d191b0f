//! The names `weir serve` offers passed-through upstream tools under
//! (`weir.upstream_tool_names`): `server.tool`, or the tool's own name
//! where that is unambiguous. Listing and calling use the same naming, so
//! a name a client read always leads back to the tool it was read for.

use std::collections::HashMap;

use crate::config::UpstreamToolNames;
use crate::gateway::ToolInfo;

/// Each tool with the name a client sees it by. `taken`: names already
/// used by weir's own tools (plugins, code mode's), which a bare name
/// must not shadow.
pub fn name_tools(
    tools: Vec<ToolInfo>,
    mode: UpstreamToolNames,
    taken: impl Fn(&str) -> bool,
) -> Vec<(String, ToolInfo)> {
    let mut servers_with: HashMap<&str, usize> = HashMap::new();
    if mode == UpstreamToolNames::Bare {
        for tool in &tools {
            *servers_with.entry(tool.name.as_str()).or_default() += 1;
        }
    }
    let bare: Vec<bool> = tools
        .iter()
        .map(|t| servers_with.get(t.name.as_str()) == Some(&1) && !taken(&t.name))
        .collect();
    tools
        .into_iter()
        .zip(bare)
        .map(|(tool, bare)| {
            let name = if bare {
                tool.name.clone()
            } else {
                prefixed(&tool.server, &tool.name)
            };
            (name, tool)
        })
        .collect()
}

/// `server.tool`.
pub fn prefixed(server: &str, tool: &str) -> String {
    format!("{server}.{tool}")
}

/// The tool a client's name stands for, among `named` (from
/// [`name_tools`]): its server and its own name.
pub fn resolve<'a>(named: &'a [(String, ToolInfo)], name: &str) -> Option<&'a ToolInfo> {
    named.iter().find(|(n, _)| n == name).map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(server: &str, name: &str) -> ToolInfo {
        ToolInfo::named(server, name)
    }

    fn names(named: &[(String, ToolInfo)]) -> Vec<&str> {
        named.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Bare names where one server has the tool and nothing of weir's is
    /// called that; prefixed otherwise; and each name resolves back.
    #[test]
    fn bare_names_only_where_unambiguous() {
        let tools = vec![
            info("a", "echo"),
            info("b", "echo"),
            info("a", "time"),
            info("b", "hello"),
            info("b", "x.y"),
        ];
        let named = name_tools(tools.clone(), UpstreamToolNames::Bare, |n| n == "hello");
        assert_eq!(
            names(&named),
            ["a.echo", "b.echo", "time", "b.hello", "x.y"]
        );
        assert_eq!(resolve(&named, "b.echo").map(|t| &*t.server), Some("b"));
        assert_eq!(resolve(&named, "x.y").map(|t| &*t.server), Some("b"));
        assert_eq!(resolve(&named, "time").map(|t| &*t.server), Some("a"));
        assert!(resolve(&named, "echo").is_none());
        assert!(resolve(&named, "a.time").is_none());

        let named = name_tools(tools, UpstreamToolNames::Prefixed, |_| false);
        assert_eq!(
            names(&named),
            ["a.echo", "b.echo", "a.time", "b.hello", "b.x.y"]
        );
    }
}
