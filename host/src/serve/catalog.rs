//! The plugins `weir serve` offers as tools, and how that set follows the
//! plugins directory.
//!
//! The set is an immutable map behind a lock that is held only to swap or
//! clone an `Arc`: a call takes the entry it finds and runs on it, so a
//! reload never disturbs a run in flight — it finishes on the version it
//! started with. A rescan compiles only what changed, and a broken new
//! version never replaces a working one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

use rmcp::model::{JsonObject, Tool};
use serde_json::{Value, json};

use crate::plugins::{self, Manifest, PluginError, PluginFile};
use crate::runtime::Host;
use crate::sandbox::Plugin;

/// How a tool call's arguments become the plugin's input text. MCP tools
/// take a JSON object; a plugin takes text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputStyle {
    /// The manifest's input schema is an object: the plugin receives the
    /// arguments object as JSON text.
    Arguments,
    /// No schema, or a string schema: the tool takes one string, `input`,
    /// handed over as is.
    Text,
    /// Another schema (a number, an array…): the tool takes it as `input`,
    /// and the plugin receives that value as JSON text.
    Value,
}

/// One plugin offered as a tool.
#[derive(Clone)]
pub struct Entry {
    pub plugin: Plugin,
    pub tool: Tool,
    pub input: InputStyle,
    /// What the entry was built from: a rescan rebuilds it only when the
    /// file or its manifest changed.
    sha256: String,
    manifest: Option<Manifest>,
}

/// What a rescan did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub added: Vec<String>,
    pub replaced: Vec<String>,
    pub removed: Vec<String>,
    /// Plugins that could not be loaded, with why. A rejected new version
    /// of a plugin leaves its old version serving.
    pub rejected: Vec<(String, String)>,
}

impl Changes {
    /// Whether the tool list a client sees is different now.
    pub fn changed_tools(&self) -> bool {
        !(self.added.is_empty() && self.replaced.is_empty() && self.removed.is_empty())
    }
}

/// The plugins being served.
pub struct Catalog {
    host: Arc<Host>,
    entries: RwLock<Arc<BTreeMap<String, Entry>>>,
    /// One rescan at a time: two racing would compile the same file twice
    /// and could apply their results out of order.
    rescanning: Mutex<()>,
}

impl Catalog {
    /// An empty catalog; [`Catalog::rescan`] fills it.
    pub fn new(host: Arc<Host>) -> Self {
        Self {
            host,
            entries: RwLock::new(Arc::default()),
            rescanning: Mutex::new(()),
        }
    }

    /// The entry serving `name` now.
    pub fn get(&self, name: &str) -> Option<Entry> {
        self.snapshot().get(name).cloned()
    }

    /// Every entry, in name order.
    pub fn snapshot(&self) -> Arc<BTreeMap<String, Entry>> {
        self.entries
            .read()
            .map(|e| e.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    /// Brings the catalog in line with the plugins directory. Blocking: it
    /// reads files and compiles components (run it off the async threads).
    pub fn rescan(&self) -> Result<Changes, PluginError> {
        let _one = self
            .rescanning
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = self
            .host
            .config()
            .plugins_dir
            .clone()
            .ok_or_else(|| PluginError::NoDirectory("*".into()))?;
        let listing = plugins::list(&dir)?;
        let current = self.snapshot();
        let mut next = BTreeMap::new();
        let mut changes = Changes::default();
        for (file, error) in listing.skipped_errors(&dir) {
            tracing::warn!(file = %file, %error, "plugin not served");
            changes.rejected.push((file, error.to_string()));
        }
        let names = listing.names;
        let mut lowercase: BTreeMap<String, String> = BTreeMap::new();
        for name in names {
            if let Some(first) = lowercase.insert(name.to_lowercase(), name.clone()) {
                let error = format!("its name differs only in case from `{first}`");
                tracing::warn!(plugin = %name, %error, "plugin not served");
                changes.rejected.push((name, error));
                continue;
            }
            let old = current.get(&name);
            let file = match self.host.read(&name) {
                Ok(file) => file,
                // Removed between the listing and now.
                Err(PluginError::NotFound { .. }) => continue,
                Err(e) => {
                    keep_old(&name, old, e.to_string(), &mut next, &mut changes);
                    continue;
                }
            };
            if let Some(old) = old
                && old.sha256 == file.sha256
                && old.manifest == file.manifest
            {
                next.insert(name, old.clone());
                continue;
            }
            match self.host.load_file(&file).map(|p| entry(p, &file)) {
                Ok(entry) => {
                    if old.is_some() {
                        tracing::info!(plugin = %name, sha256 = %file.sha256, "plugin reloaded");
                        changes.replaced.push(name.clone());
                    } else {
                        tracing::info!(plugin = %name, sha256 = %file.sha256, "plugin added");
                        changes.added.push(name.clone());
                    }
                    next.insert(name, entry);
                }
                Err(e) => keep_old(&name, old, e.to_string(), &mut next, &mut changes),
            }
        }
        for name in current.keys() {
            if !next.contains_key(name) {
                tracing::info!(plugin = %name, "plugin removed");
                changes.removed.push(name.clone());
            }
        }
        if let Ok(mut entries) = self.entries.write() {
            *entries = Arc::new(next);
        }
        Ok(changes)
    }
}

/// A plugin that failed to (re)load: its old version, if any, stays.
fn keep_old(
    name: &str,
    old: Option<&Entry>,
    error: String,
    next: &mut BTreeMap<String, Entry>,
    changes: &mut Changes,
) {
    match old {
        Some(old) => {
            tracing::error!(plugin = %name, %error, "new version rejected; the previous one keeps serving");
            next.insert(name.to_owned(), old.clone());
        }
        None => tracing::error!(plugin = %name, %error, "plugin not served"),
    }
    changes.rejected.push((name.to_owned(), error));
}

/// The tool a plugin is offered as: named after the plugin, described and
/// typed by its manifest where it has one.
fn entry(plugin: Plugin, file: &PluginFile) -> Entry {
    let manifest = file.manifest.as_ref();
    let declared = manifest
        .and_then(|m| m.input_schema.as_ref())
        .and_then(|t| serde_json::to_value(t).ok());
    let (input, schema) = tool_schema(declared);
    let description = manifest
        .and_then(|m| m.description.clone())
        .unwrap_or_else(|| {
            format!(
                "The weir agent `{}`, run in a sandbox. Its input is the text `input`.",
                file.name
            )
        });
    let mut tool = Tool::new(file.name.clone(), description, Arc::new(schema));
    if let Some(version) = manifest.and_then(|m| m.version.as_deref()) {
        tool.title = Some(format!("{} {version}", file.name));
    }
    Entry {
        plugin,
        tool,
        input,
        sha256: file.sha256.clone(),
        manifest: file.manifest.clone(),
    }
}

/// The tool's input schema (always an object, as MCP requires) for the
/// schema a manifest declares, and how arguments map to the input text.
fn tool_schema(declared: Option<Value>) -> (InputStyle, JsonObject) {
    let wrap = |inner: Value, required: bool| {
        let mut schema = json!({"type": "object", "properties": {"input": inner}});
        if required {
            schema["required"] = json!(["input"]);
        }
        match schema {
            Value::Object(map) => map,
            _ => JsonObject::new(),
        }
    };
    match declared {
        Some(Value::Object(mut map)) => match map.get("type").and_then(Value::as_str) {
            None | Some("object") => {
                map.insert("type".into(), json!("object"));
                (InputStyle::Arguments, map)
            }
            Some("string") => (InputStyle::Text, wrap(Value::Object(map), true)),
            Some(_) => (InputStyle::Value, wrap(Value::Object(map), true)),
        },
        _ => (
            InputStyle::Text,
            wrap(
                json!({"type": "string", "description": "Text handed to the agent as its input."}),
                false,
            ),
        ),
    }
}

/// The plugin input for a call with `arguments`, in the entry's style.
pub fn input_for(style: InputStyle, arguments: Option<JsonObject>) -> Result<String, String> {
    let arguments = arguments.unwrap_or_default();
    match style {
        InputStyle::Arguments => Ok(Value::Object(arguments).to_string()),
        InputStyle::Text => match arguments.get("input") {
            None if arguments.is_empty() => Ok(String::new()),
            Some(Value::String(text)) if arguments.len() == 1 => Ok(text.clone()),
            _ => Err("this agent takes one argument, `input`, a string".into()),
        },
        InputStyle::Value => match arguments.get("input") {
            Some(value) if arguments.len() == 1 => Ok(value.to_string()),
            _ => Err("this agent takes one argument, `input`".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text-style tools take `input` and nothing else; schema-style tools
    /// get the whole arguments object.
    #[test]
    fn maps_arguments_to_input() {
        let args = |v: Value| match v {
            Value::Object(m) => Some(m),
            _ => None,
        };
        assert_eq!(input_for(InputStyle::Text, None).unwrap(), "");
        assert_eq!(
            input_for(InputStyle::Text, args(json!({"input": "hi"}))).unwrap(),
            "hi"
        );
        assert!(input_for(InputStyle::Text, args(json!({"input": 3}))).is_err());
        assert!(input_for(InputStyle::Text, args(json!({"other": "x"}))).is_err());
        assert_eq!(
            input_for(InputStyle::Arguments, args(json!({"count": 2}))).unwrap(),
            r#"{"count":2}"#
        );
        assert_eq!(input_for(InputStyle::Arguments, None).unwrap(), "{}");
        assert_eq!(
            input_for(InputStyle::Value, args(json!({"input": [1, 2]}))).unwrap(),
            "[1,2]"
        );
    }

    /// Every declared schema becomes an object schema, as MCP requires.
    #[test]
    fn tool_schemas_are_objects() {
        let (style, schema) = tool_schema(None);
        assert_eq!(style, InputStyle::Text);
        assert_eq!(schema["properties"]["input"]["type"], "string");
        let (style, schema) = tool_schema(Some(json!({"properties": {"q": {}}})));
        assert_eq!(style, InputStyle::Arguments);
        assert_eq!(schema["type"], "object");
        let (style, schema) = tool_schema(Some(json!({"type": "string", "maxLength": 9})));
        assert_eq!(style, InputStyle::Text);
        assert_eq!(schema["properties"]["input"]["maxLength"], 9);
        assert_eq!(schema["required"], json!(["input"]));
        let (style, schema) = tool_schema(Some(json!({"type": "array"})));
        assert_eq!(style, InputStyle::Value);
        assert_eq!(schema["type"], "object");
    }
}
