//! Record and replay: a run's tool calls written as JSON lines, and
//! answered from them later with no server at all — so a plugin author
//! tests an agent offline and deterministically (`weir run --record`,
//! `weir run --replay`, `weir test`).
//!
//! A recording is one JSON object per line: the run (plugin, input), each
//! `list-tools` and `call-tool` with its outcome, in the order they
//! happened, and the run's output last.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::gateway::Alias;
use crate::gateway::{ArgumentMap, Arguments, CallError, Caller, ToolGateway, ToolInfo};

/// One line of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Entry {
    /// What was run: always the first line. It carries the grants and
    /// aliases the run was made under, so that a replay needs no config.
    Run {
        plugin: String,
        input: String,
        /// The plugin's granted `server/tool` patterns.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allow: Option<Vec<String>>,
        /// The aliases the host offered.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        aliases: BTreeMap<String, Alias>,
    },
    /// One `call-tool` and what it got.
    Call {
        server: String,
        tool: String,
        arguments: Option<ArgumentMap>,
        #[serde(flatten)]
        outcome: Outcome,
    },
    /// One `list-tools` answer.
    ListTools { tools: Vec<RecordedTool> },
    /// The run's answer (or its error): always the last line.
    Output {
        #[serde(flatten)]
        outcome: RunOutcome,
    },
}

/// What a call got: the `CallToolResult` JSON, or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Result(Value),
    Error(CallError),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    Output(String),
    Failed(String),
}

/// A tool as `list-tools` gave it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedTool {
    pub server: String,
    pub name: String,
    pub description: Option<String>,
    pub input_schema: String,
}

/// Why a recording could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot read recording {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write recording {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("recording {path}, line {line}: {message}")]
    Invalid {
        path: String,
        line: usize,
        message: String,
    },
}

/// Largest recording read: a run's calls and answers, each bounded by the
/// run's own limits; past this it is not a recording (or `/dev/zero`).
pub const MAX_RECORDING_BYTES: u64 = 256 << 20;

/// Reads a recording's lines, at most [`MAX_RECORDING_BYTES`] of them.
pub fn read(path: &Path) -> Result<Vec<Entry>, RecordingError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let read_error = |source| RecordingError::Read {
        path: shown.clone(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(read_error)?
        .take(MAX_RECORDING_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > MAX_RECORDING_BYTES {
        return Err(read_error(std::io::Error::other(format!(
            "it is over {} MiB, more than a recording can be",
            MAX_RECORDING_BYTES >> 20
        ))));
    }
    parse(&text, &shown)
}

/// A recording's lines from its text, apart from reading the file so that
/// the parse can be tested (and fuzzed) alone. `shown` names the recording
/// in errors.
pub fn parse(text: &str, shown: &str) -> Result<Vec<Entry>, RecordingError> {
    let entries = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| RecordingError::Invalid {
                path: shown.to_owned(),
                line: i + 1,
                message: e.to_string(),
            })
        })
        .collect::<Result<Vec<Entry>, _>>()?;
    match entries.first() {
        Some(Entry::Run { .. }) => Ok(entries),
        _ => Err(RecordingError::Invalid {
            path: shown.to_owned(),
            line: 1,
            message: "a recording starts with its `run` line".into(),
        }),
    }
}

fn outcome_of(result: &Result<String, CallError>) -> Outcome {
    match result {
        Ok(json) => {
            Outcome::Result(serde_json::from_str(json).unwrap_or(Value::String(json.clone())))
        }
        Err(e) => Outcome::Error(e.clone()),
    }
}

fn result_of(outcome: &Outcome) -> Result<String, CallError> {
    match outcome {
        Outcome::Result(v) => Ok(v.to_string()),
        Outcome::Error(e) => Err(e.clone()),
    }
}

/// A gateway that passes every call on and keeps a copy of it.
pub struct Recorder {
    inner: Arc<dyn ToolGateway>,
    entries: Mutex<Vec<Entry>>,
}

impl Recorder {
    /// Records the calls `plugin` makes on `input` through `inner`, noting
    /// the grants (`allow`) and aliases the run is made under.
    pub fn new(
        inner: Arc<dyn ToolGateway>,
        plugin: &str,
        input: &str,
        allow: &[crate::policy::ToolPattern],
        aliases: BTreeMap<String, Alias>,
    ) -> Self {
        Self {
            inner,
            entries: Mutex::new(vec![Entry::Run {
                plugin: plugin.to_owned(),
                input: input.to_owned(),
                allow: Some(allow.iter().map(ToString::to_string).collect()),
                aliases,
            }]),
        }
    }

    /// Writes what was recorded, with the run's `outcome` last.
    pub fn write(&self, path: &Path, outcome: RunOutcome) -> Result<(), RecordingError> {
        let mut text = String::new();
        let entries = self.entries.lock().map(|e| e.clone()).unwrap_or_default();
        for entry in entries.iter().chain([&Entry::Output { outcome }]) {
            // Serializing these plain types cannot fail.
            text.push_str(&serde_json::to_string(entry).unwrap_or_default());
            text.push('\n');
        }
        std::fs::write(path, text).map_err(|source| RecordingError::Write {
            path: path.display().to_string(),
            source,
        })
    }

    fn push(&self, entry: Entry) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.push(entry);
        }
    }
}

impl ToolGateway for Recorder {
    fn call_tool<'a>(
        &'a self,
        caller: &'a Caller,
        server: &'a str,
        tool: &'a str,
        arguments: Option<Arguments>,
    ) -> BoxFuture<'a, Result<String, CallError>> {
        async move {
            let result = self
                .inner
                .call_tool(caller, server, tool, arguments.clone())
                .await;
            self.push(Entry::Call {
                server: server.to_owned(),
                tool: tool.to_owned(),
                arguments: arguments.as_ref().map(Arguments::to_map),
                outcome: outcome_of(&result),
            });
            result
        }
        .boxed()
    }

    fn list_tools<'a>(&'a self, caller: &'a Caller) -> BoxFuture<'a, Vec<ToolInfo>> {
        async move {
            let tools = self.inner.list_tools(caller).await;
            self.push(Entry::ListTools {
                tools: tools
                    .iter()
                    .map(|t| RecordedTool {
                        server: t.server.clone(),
                        name: t.name.clone(),
                        description: t.description.clone(),
                        input_schema: t.input_schema.clone(),
                    })
                    .collect(),
            });
            tools
        }
        .boxed()
    }

    fn alias(&self, name: &str) -> Option<Alias> {
        self.inner.alias(name)
    }
}

/// A gateway that answers from a recording: each call gets the first
/// unused recorded answer to the same server, tool and arguments.
pub struct Replayer {
    calls: Mutex<Vec<(Entry, bool)>>,
    tools: Vec<ToolInfo>,
    aliases: BTreeMap<String, Alias>,
}

impl Replayer {
    /// `aliases` resolve as they did when recording (the calls were
    /// recorded with the tools they stood for).
    pub fn new(entries: &[Entry], aliases: BTreeMap<String, Alias>) -> Self {
        let tools = entries
            .iter()
            .find_map(|e| match e {
                Entry::ListTools { tools } => Some(
                    tools
                        .iter()
                        .map(|t| ToolInfo {
                            server: t.server.clone(),
                            name: t.name.clone(),
                            description: t.description.clone(),
                            input_schema: t.input_schema.clone(),
                            output_schema: None,
                        })
                        .collect(),
                ),
                _ => None,
            })
            .unwrap_or_default();
        Self {
            calls: Mutex::new(
                entries
                    .iter()
                    .filter(|e| matches!(e, Entry::Call { .. }))
                    .map(|e| (e.clone(), false))
                    .collect(),
            ),
            tools,
            aliases,
        }
    }
}

impl ToolGateway for Replayer {
    fn call_tool<'a>(
        &'a self,
        _caller: &'a Caller,
        server: &'a str,
        tool: &'a str,
        arguments: Option<Arguments>,
    ) -> BoxFuture<'a, Result<String, CallError>> {
        let arguments = arguments.as_ref().map(Arguments::to_map);
        let found = self.calls.lock().ok().and_then(|mut calls| {
            calls.iter_mut().find_map(|(entry, used)| match entry {
                Entry::Call {
                    server: s,
                    tool: t,
                    arguments: a,
                    outcome,
                } if !*used && s == server && t == tool && *a == arguments => {
                    *used = true;
                    Some(result_of(outcome))
                }
                _ => None,
            })
        });
        let result = found.unwrap_or_else(|| {
            Err(CallError::NotFound(format!(
                "replay: the recording has no call of `{server}/{tool}` with arguments {}",
                arguments.map_or_else(|| "(none)".to_owned(), |a| Value::Object(a).to_string())
            )))
        });
        async move { result }.boxed()
    }

    fn list_tools<'a>(&'a self, _caller: &'a Caller) -> BoxFuture<'a, Vec<ToolInfo>> {
        let tools = self.tools.clone();
        async move { tools }.boxed()
    }

    fn alias(&self, name: &str) -> Option<Alias> {
        self.aliases.get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries survive a write and a read; results and errors both.
    #[test]
    fn entries_round_trip() {
        let entries = vec![
            Entry::Run {
                plugin: "p".into(),
                input: "x".into(),
                allow: Some(vec!["s/*".into()]),
                aliases: BTreeMap::new(),
            },
            Entry::Call {
                server: "s".into(),
                tool: "t".into(),
                arguments: serde_json::json!({"a": 1}).as_object().cloned(),
                outcome: outcome_of(&Ok(r#"{"content":[]}"#.into())),
            },
            Entry::Call {
                server: "s".into(),
                tool: "t".into(),
                arguments: None,
                outcome: outcome_of(&Err(CallError::Timeout)),
            },
            Entry::Output {
                outcome: RunOutcome::Output("done".into()),
            },
        ];
        let text: Vec<String> = entries
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        let back: Vec<Entry> = text
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(back, entries);
        assert_eq!(
            result_of(&outcome_of(&Err(CallError::Timeout))),
            Err(CallError::Timeout)
        );
    }
}
