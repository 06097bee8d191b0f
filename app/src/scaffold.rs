//! `weir new`: a plugin that builds as it stands — a short agent that lists
//! tools and calls one (a Rust crate, or an `agent.py` or `agent.ts`), its
//! manifest, a README.

use std::path::{Path, PathBuf};

/// The language of a new plugin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    #[default]
    Rust,
    Python,
    Typescript,
}

/// Why a plugin could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "`{0}` is not a plugin name: use lowercase letters, digits, '-' and '_', starting with a letter"
    )]
    BadName(String),
    #[error("{0} already exists; weir new does not overwrite anything")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where the SDK comes from: the weir checkout the crate is made in, else
/// the checkout this `weir` was built from (if it is still there), else
/// crates.io.
fn sdk_dependency(dir: &Path) -> String {
    let is_sdk = |sdk: &Path| {
        std::fs::read_to_string(sdk.join("Cargo.toml"))
            .is_ok_and(|t| t.contains("name = \"weir-guest\""))
    };
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
    let found = absolute
        .ancestors()
        .map(|a| a.join("guest-sdk"))
        .find(|sdk| is_sdk(sdk))
        .or_else(|| {
            is_sdk(&built_from).then(|| std::fs::canonicalize(&built_from).unwrap_or(built_from))
        });
    match found {
        Some(sdk) => format!("weir-guest = {{ path = {:?} }}", sdk.display().to_string()),
        None => format!("weir-guest = \"{}\"", env!("CARGO_PKG_VERSION")),
    }
}

fn valid(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// Creates the plugin `NAME` in `parent`; returns its directory.
pub fn new_plugin(name: &str, parent: &Path, lang: Lang) -> Result<PathBuf, ScaffoldError> {
    if !valid(name) {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let manifest_file = format!("{name}.toml");
    let mut files = vec![
        (manifest_file.as_str(), manifest(name)),
        ("README.md", readme(name, lang)),
    ];
    match lang {
        Lang::Rust => {
            files.push(("Cargo.toml", cargo_toml(name, &dir)));
            files.push(("src/lib.rs", LIB_RS.to_owned()));
        }
        Lang::Python => files.push(("agent.py", AGENT_PY.to_owned())),
        Lang::Typescript => {
            files.push(("agent.ts", AGENT_TS.to_owned()));
            if let Some(types) = js_types(parent) {
                files.push(("tsconfig.json", tsconfig(&types)));
            }
        }
    }
    for (file, text) in files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ScaffoldError::Write {
                path: parent.to_owned(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| ScaffoldError::Write { path, source })?;
    }
    Ok(dir)
}

fn cargo_toml(name: &str, dir: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
{sdk}
serde_json = "1"

# A workspace of its own, even when created inside another one.
[workspace]

[profile.release]
opt-level = "s"
strip = "debuginfo"
"#,
        sdk = sdk_dependency(dir)
    )
}

const LIB_RS: &str = r#"//! A weir agent: it runs sandboxed, and its only way out is a tool call
//! that weir makes for it on the session it keeps to each MCP server.

use weir_guest::{agent, call_tool, list_tools};

#[agent]
fn run(input: &str) -> Result<String, String> {
    let name = match input.trim() {
        "" => "world",
        name => name,
    };
    // What this agent may call (its policy decides), e.g. builtin/echo.
    let tools = list_tools();
    let echo = tools
        .iter()
        .find(|t| t.name == "echo")
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
    Ok(format!("{} ({} tools visible)", reply.text(), tools.len()))
}
"#;

const AGENT_PY: &str = r##""""A weir agent: it runs sandboxed, and its only way out is a tool call
that weir makes for it on the session it keeps to each MCP server.

Import what it needs here, at the top: modules are imported when
`weir build` makes the component, not when it runs.
"""

from weir_guest import AgentError, agent, call_tool, list_tools


@agent
def run(input: str) -> str:
    name = input.strip() or "world"
    # What this agent may call (its policy decides), e.g. builtin/echo.
    tools = list_tools()
    echo = next((t for t in tools if t.name == "echo"), None)
    if echo is None:
        raise AgentError("no server offers an `echo` tool")
    reply = call_tool(echo.server, "echo", message=f"Hello, {name}!")
    if reply.is_error:
        raise AgentError(f"echo failed: {reply.text}")
    return f"{reply.text} ({len(tools)} tools visible)"
"##;

const AGENT_TS: &str = r#"// A weir agent: it runs sandboxed, and its only way out is a tool call
// that weir makes for it on the session it keeps to each MCP server.
import { AgentError, agent, callTool, listTools } from 'weir-guest';

export const run = agent((input: string): string => {
  const name = input.trim() || 'world';
  // What this agent may call (its policy decides), e.g. builtin/echo.
  const tools = listTools();
  const echo = tools.find((t) => t.name === 'echo');
  if (!echo) throw new AgentError('no server offers an `echo` tool');
  const reply = callTool(echo.server, 'echo', { message: `Hello, ${name}!` });
  if (reply.isError) throw new AgentError(`echo failed: ${reply.text}`);
  return `${reply.text} (${tools.length} tools visible)`;
});
"#;

/// The JS SDK's type declarations, for the editor's tsconfig: where
/// `weir build` will find the SDK when building the plugin in `parent`.
fn js_types(parent: &Path) -> Option<PathBuf> {
    let sdk = crate::plugin_build::locate_js_sdk(parent).ok()?;
    let types = sdk.join("weir.d.ts");
    types
        .is_file()
        .then(|| std::fs::canonicalize(&types).unwrap_or(types))
}

fn tsconfig(types: &Path) -> String {
    format!(
        r#"{{
  "//": "For editors: weir build type-checks with the same settings.",
  "compilerOptions": {{
    "strict": true,
    "noEmit": true,
    "target": "ES2022",
    "module": "ESNext",
    "moduleResolution": "Bundler",
    "lib": ["ES2022"],
    "types": [],
    "paths": {{ "weir-guest": [{types:?}] }}
  }},
  "files": ["agent.ts"]
}}
"#,
        types = types.display().to_string()
    )
}

fn manifest(name: &str) -> String {
    format!(
        r#"# What `{name}` says about itself: `weir list` and `weir inspect` show it,
# `weir serve` offers it as a tool with this description and input.
name = "{name}"
version = "0.1.0"
description = "Greets `input` through an MCP echo tool."

[input_schema]
type = "string"
description = "Who to greet."

# What it asks for: it can only narrow what the operator grants.
[policy]
allow = ["builtin/echo"]
"#
    )
}

fn readme(name: &str, lang: Lang) -> String {
    let (source, needs) = match lang {
        Lang::Rust => ("src/lib.rs", ""),
        Lang::Python => (
            "agent.py",
            "\nBuilding needs componentize-py: `pip install componentize-py==0.25.1`.\n",
        ),
        Lang::Typescript => (
            "agent.ts",
            "\nBuilding needs weir's JS guest SDK with its tools: `npm ci` in a weir\n\
             checkout's `guest-sdk/js` (or set `WEIR_JS_SDK` to it).\n",
        ),
    };
    format!(
        r#"# {name}

A [weir](https://example.invalid/weir) agent plugin.

```sh
weir build            # → {name}.wasm beside {name}.toml
weir run {name}.wasm --input you
weir run {name}.wasm --input you --record greet.replay.jsonl   # then: weir test .
```
{needs}
`{source}` is the agent; `{name}.toml` is its manifest (description, input
schema, the tools it asks to call).
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names, and no overwriting.
    #[test]
    fn refuses_bad_names_and_existing_dirs() {
        assert!(valid("my-agent_2"));
        assert!(!valid("My"));
        assert!(!valid("2go"));
        assert!(!valid("a/b"));
        let dir = std::env::temp_dir().join(format!("weir-scaffold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let made = new_plugin("demo", &dir, Lang::Rust).unwrap();
        assert!(made.join("src/lib.rs").is_file());
        assert!(made.join("demo.toml").is_file());
        assert!(matches!(
            new_plugin("demo", &dir, Lang::Python),
            Err(ScaffoldError::Exists(_))
        ));
        let py = new_plugin("demo-py", &dir, Lang::Python).unwrap();
        assert!(py.join("agent.py").is_file() && !py.join("Cargo.toml").exists());
        let ts = new_plugin("demo-ts", &dir, Lang::Typescript).unwrap();
        assert!(ts.join("agent.ts").is_file());
        let tsconfig = std::fs::read_to_string(ts.join("tsconfig.json")).unwrap();
        assert!(tsconfig.contains("weir.d.ts"), "{tsconfig}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
