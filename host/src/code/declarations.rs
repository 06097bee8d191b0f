//! TypeScript declarations of tools, generated from their JSON Schemas:
//! exactly the API a code-mode script calls (`tools.<server>.<tool>`),
//! with the descriptions as doc comments. `$ref`s resolve inside the
//! schema (`#/$defs/…`, `#/definitions/…`); nothing is ever fetched.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::gateway::ToolInfo;

/// How deep a schema is followed before its type is `unknown`: enough for
/// real tools, bounded for recursive or hostile ones.
const MAX_DEPTH: usize = 12;

/// What every script can use, whatever its tools.
pub const PRELUDE: &str = r#"/** A tool call that gave no result. `kind` says why:
 * "denied" (not granted, or a budget spent), "not_found", "invalid_arguments",
 * "unavailable", "timeout", "protocol_error", or "tool_error" (the tool ran
 * and reported an error; `message` is its text). */
declare class ToolError extends Error {
  readonly kind: "denied" | "not_found" | "invalid_arguments" | "unavailable" | "timeout" | "protocol_error" | "tool_error";
  readonly server: string;
  readonly tool: string;
}
/** Calls a tool by its server's and its own name (as listed by search). */
declare function callTool(server: string, tool: string, args?: Record<string, unknown>): Promise<unknown>;
/** The granted tools that best match `query`, best first. */
declare function searchTools(query: string, limit?: number): Promise<{ server: string; name: string; description: string }[]>;
/** Lines of output returned beside the script's value. */
declare const console: { log(...values: unknown[]): void; info(...values: unknown[]): void; warn(...values: unknown[]): void; error(...values: unknown[]): void; debug(...values: unknown[]): void };
"#;

/// The identifier a server or tool name goes by in `tools.<server>.<tool>`
/// (the runtime maps names the same way; the bracketed name works too).
pub fn identifier(name: &str) -> String {
    let mut id: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty() || id.starts_with(|c: char| c.is_ascii_digit()) {
        id.insert(0, '_');
    }
    id
}

/// Declarations of `tools` as one self-contained TypeScript file: the
/// prelude, then `declare const tools` with each tool under its server.
pub fn declare(tools: &[ToolInfo]) -> String {
    let mut by_server: BTreeMap<&str, Vec<&ToolInfo>> = BTreeMap::new();
    for tool in tools {
        by_server.entry(&tool.server).or_default().push(tool);
    }
    let mut out = String::from(PRELUDE);
    out.push_str("declare const tools: {\n");
    for (server, tools) in by_server {
        let _ = writeln!(out, "  /** The tools of server {server:?}. */");
        let _ = writeln!(out, "  {}: {{", property_name(&identifier(server)));
        for tool in tools {
            declare_tool(&mut out, tool);
        }
        out.push_str("  };\n");
    }
    out.push_str("};\n");
    out
}

fn declare_tool(out: &mut String, tool: &ToolInfo) {
    let input: Value = serde_json::from_str(&tool.input_schema).unwrap_or(Value::Null);
    let output: Option<Value> = tool
        .output_schema
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    let mut doc = tool.description.clone().unwrap_or_default();
    let call = format!("callTool({:?}, {:?}, args)", tool.server, tool.name);
    if !doc.is_empty() {
        doc.push_str("\n\n");
    }
    doc.push_str(&format!("Same as `{call}`."));
    if output.is_none() {
        doc.push_str(" Resolves to the tool's text.");
    }
    write_doc(out, "    ", &doc);
    let args = Types::new(&input).of(&input, 3, 0);
    let optional = input.as_object().is_none_or(|o| required(o).is_empty());
    let result = match &output {
        Some(schema) => Types::new(schema).of(schema, 3, 0),
        None => "string".to_owned(),
    };
    let _ = writeln!(
        out,
        "    {}(args{}: {args}): Promise<{result}>;",
        property_name(&identifier(&tool.name)),
        if optional { "?" } else { "" },
    );
}

/// The names an object schema lists as `required`.
fn required(object: &serde_json::Map<String, Value>) -> Vec<&str> {
    object
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A doc comment, indented; `*/` in the text cannot end it early.
fn write_doc(out: &mut String, indent: &str, text: &str) {
    let text = text.trim().replace("*/", "*\\/");
    if text.is_empty() {
        return;
    }
    let _ = writeln!(out, "{indent}/**");
    for line in text.lines() {
        let _ = writeln!(out, "{indent} * {}", line.trim_end());
    }
    let _ = writeln!(out, "{indent} */");
}

/// A property name as TypeScript accepts it: bare when an identifier,
/// else quoted.
fn property_name(name: &str) -> String {
    let bare = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if bare {
        name.to_owned()
    } else {
        serde_json::to_string(name).unwrap_or_else(|_| "\"?\"".into())
    }
}

/// Turns one schema (and its local `$ref`s) into TypeScript types.
struct Types<'a> {
    root: &'a Value,
}

impl<'a> Types<'a> {
    fn new(root: &'a Value) -> Self {
        Self { root }
    }

    /// The type of `schema`, as text, indented for `level` nesting.
    fn of(&self, schema: &'a Value, level: usize, depth: usize) -> String {
        if depth > MAX_DEPTH {
            return "unknown".into();
        }
        let Some(object) = schema.as_object() else {
            // `true` (anything) and `false` (nothing) are schemas too.
            return match schema {
                Value::Bool(false) => "never".into(),
                _ => "unknown".into(),
            };
        };
        if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
            return match self.resolve(reference) {
                Some(target) => self.of(target, level, depth + 1),
                None => "unknown".into(),
            };
        }
        if let Some(value) = object.get("const") {
            return literal(value);
        }
        if let Some(values) = object.get("enum").and_then(Value::as_array) {
            let parts: Vec<String> = values.iter().map(literal).collect();
            return if parts.is_empty() {
                "never".into()
            } else {
                parts.join(" | ")
            };
        }
        for (key, joiner) in [("anyOf", " | "), ("oneOf", " | "), ("allOf", " & ")] {
            if let Some(options) = object.get(key).and_then(Value::as_array) {
                let parts: Vec<String> = options
                    .iter()
                    .map(|o| format!("({})", self.of(o, level, depth + 1)))
                    .collect();
                if !parts.is_empty() {
                    return parts.join(joiner);
                }
            }
        }
        match object.get("type") {
            Some(Value::String(t)) => self.of_type(t, object, level, depth),
            Some(Value::Array(types)) => {
                let parts: Vec<String> = types
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|t| self.of_type(t, object, level, depth))
                    .collect();
                if parts.is_empty() {
                    "unknown".into()
                } else {
                    parts.join(" | ")
                }
            }
            _ if object.contains_key("properties") => self.object(object, level, depth),
            _ => "unknown".into(),
        }
    }

    fn of_type(
        &self,
        name: &str,
        object: &'a serde_json::Map<String, Value>,
        level: usize,
        depth: usize,
    ) -> String {
        match name {
            "string" => "string".into(),
            "number" | "integer" => "number".into(),
            "boolean" => "boolean".into(),
            "null" => "null".into(),
            "array" => match object.get("items") {
                Some(items) => format!("({})[]", self.of(items, level, depth + 1)),
                None => "unknown[]".into(),
            },
            "object" => self.object(object, level, depth),
            _ => "unknown".into(),
        }
    }

    fn object(
        &self,
        object: &'a serde_json::Map<String, Value>,
        level: usize,
        depth: usize,
    ) -> String {
        let properties = object.get("properties").and_then(Value::as_object);
        let extra = match object.get("additionalProperties") {
            Some(Value::Bool(false)) => None,
            Some(schema @ Value::Object(_)) => Some(self.of(schema, level + 1, depth + 1)),
            _ if properties.is_none_or(|p| p.is_empty()) => Some("unknown".to_owned()),
            _ => None,
        };
        let Some(properties) = properties.filter(|p| !p.is_empty()) else {
            return match extra {
                Some(t) => format!("Record<string, {t}>"),
                None => "Record<string, never>".into(),
            };
        };
        let required = required(object);
        let indent = "  ".repeat(level + 1);
        let mut out = String::from("{\n");
        for (name, property) in properties {
            if let Some(doc) = property.get("description").and_then(Value::as_str) {
                write_doc(&mut out, &indent, doc);
            }
            let _ = writeln!(
                out,
                "{indent}{}{}: {};",
                property_name(name),
                if required.contains(&name.as_str()) {
                    ""
                } else {
                    "?"
                },
                self.of(property, level + 1, depth + 1)
            );
        }
        if let Some(t) = extra {
            let _ = writeln!(out, "{indent}[key: string]: unknown; // more: {t}");
        }
        out.push_str(&"  ".repeat(level));
        out.push('}');
        out
    }

    /// A local reference (`#/…`, a JSON pointer into the root schema).
    fn resolve(&self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        self.root.pointer(pointer)
    }
}

/// A JSON value as a TypeScript literal type.
fn literal(value: &Value) -> String {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => value.to_string(),
        _ => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(server: &str, name: &str, input: &str, output: Option<&str>) -> ToolInfo {
        ToolInfo {
            server: server.into(),
            name: name.into(),
            description: Some("Reads a file. */ not the end".into()),
            input_schema: input.into(),
            output_schema: output.map(Into::into),
        }
    }

    #[test]
    fn declares_arguments_results_and_docs() {
        let text = declare(&[tool(
            "server-filesystem",
            "read_text_file",
            r#"{"type":"object","properties":{"path":{"type":"string","description":"Where"},"head":{"type":"integer"}},"required":["path"]}"#,
            None,
        )]);
        assert!(text.contains("server_filesystem: {"), "{text}");
        assert!(text.contains("read_text_file(args: {"), "{text}");
        assert!(text.contains("path: string;"), "{text}");
        assert!(text.contains("head?: number;"), "{text}");
        assert!(text.contains("* Where"), "{text}");
        assert!(text.contains("): Promise<string>;"), "{text}");
        assert!(text.contains("*\\/ not the end"), "{text}");
    }

    #[test]
    fn resolves_local_refs_and_unions() {
        let input = r##"{"type":"object","$defs":{"Unit":{"enum":["c","f"]}},"properties":{"unit":{"$ref":"#/$defs/Unit"},"n":{"type":["number","null"]},"x":{"anyOf":[{"type":"string"},{"type":"boolean"}]},"remote":{"$ref":"https://example.invalid/s.json"}}}"##;
        let output = r#"{"type":"object","properties":{"ok":{"type":"boolean"},"items":{"type":"array","items":{"type":"string"}}},"required":["ok"]}"#;
        let text = declare(&[tool("t", "get-temp", input, Some(output))]);
        assert!(text.contains("unit?: \"c\" | \"f\";"), "{text}");
        assert!(text.contains("n?: number | null;"), "{text}");
        assert!(text.contains("x?: (string) | (boolean);"), "{text}");
        assert!(text.contains("remote?: unknown;"), "{text}");
        assert!(text.contains("get_temp(args?: {"), "{text}");
        assert!(text.contains("ok: boolean;"), "{text}");
        assert!(text.contains("items?: (string)[];"), "{text}");
    }

    /// A schema that refers to itself ends in `unknown`, not a hang.
    #[test]
    fn recursive_schema_is_bounded() {
        let input = r##"{"type":"object","properties":{"next":{"$ref":"#"}}}"##;
        let text = declare(&[tool("s", "t", input, None)]);
        assert!(text.contains("unknown"), "{text}");
        assert!(text.len() < 100_000);
    }

    #[test]
    fn identifiers() {
        assert_eq!(identifier("server-filesystem"), "server_filesystem");
        assert_eq!(identifier("9lives"), "_9lives");
        assert_eq!(identifier(""), "_");
        assert_eq!(identifier("a.b c"), "a_b_c");
    }
}
