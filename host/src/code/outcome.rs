//! What a code-mode run gives back — its value, its console, or what went
//! wrong — worded for the model that wrote the script to fix it: where in
//! its code, which limit, which call.

use std::fmt;

use serde::Deserialize;

use crate::policy::Policy;
use crate::runtime::HostRunError;
use crate::sandbox::{Captured, RunError};

/// One run of a script.
#[derive(Debug, Clone)]
pub struct Execution {
    /// The value the script returned, as JSON text (shown up to the
    /// policy's output cap), or why there is none.
    pub result: Result<String, ScriptError>,
    /// What it wrote with `console.log`, kept even when it was stopped.
    pub console: String,
    /// Console bytes past the cap.
    pub console_dropped: u64,
    /// Tool calls it made.
    pub calls: u64,
    /// The most of the value's text shown.
    shown: usize,
}

/// Why a script gave no value.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptError {
    /// It does not parse.
    Syntax {
        message: String,
        line: Option<u64>,
        column: Option<u64>,
    },
    /// It threw (or rejected with) an Error and nothing caught it.
    Exception {
        name: String,
        message: String,
        line: Option<u64>,
        column: Option<u64>,
        /// Where the script last called out, when the engine does not say
        /// where it threw (errors it raises itself inside `async` code).
        after_line: Option<u64>,
        /// The message names what is wrong in the script (a tool that is
        /// not granted), so it needs no hint where to look.
        named: bool,
    },
    /// A tool call failed and nothing caught it; the place is the call's.
    Tool {
        kind: String,
        message: String,
        line: Option<u64>,
        column: Option<u64>,
    },
    /// Anything else the runtime reported: a thrown non-Error, a promise
    /// nothing settles, an answer that is not JSON.
    Script(String),
    /// A limit of the run stopped it (deadline, memory, budget…).
    Limit(String),
    /// weir could not run it (shutting down, the runtime failed).
    Host(String),
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |line: &Option<u64>, column: &Option<u64>| match (line, column) {
            (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
            (Some(l), None) => format!(" at line {l}"),
            _ => String::new(),
        };
        match self {
            Self::Syntax {
                message,
                line,
                column,
            } => write!(f, "SyntaxError{}: {message}", at(line, column)),
            Self::Exception {
                name,
                message,
                line,
                column,
                after_line,
                named,
            } => {
                write!(f, "{name}{}: {message}", at(line, column))?;
                if line.is_none() && !named {
                    // Errors the engine raises itself carry no position.
                    f.write_str(" (the engine does not say on which line it threw this")?;
                    if let Some(after) = after_line {
                        write!(
                            f,
                            "; the last tool call or console.log before it was at line {after}"
                        )?;
                    }
                    f.write_str(
                        "; look for a value that may be undefined or of another type than \
                         expected, such as a field a tool's result does not have)",
                    )?;
                }
                Ok(())
            }
            Self::Tool {
                kind,
                message,
                line,
                column,
            } => {
                write!(
                    f,
                    "uncaught ToolError ({kind}){}: {message}",
                    at(line, column)
                )
            }
            Self::Script(message) | Self::Limit(message) | Self::Host(message) => {
                f.write_str(message)
            }
        }
    }
}

impl std::error::Error for ScriptError {}

/// The runtime's report of a failure (its `Err` text).
#[derive(Deserialize)]
struct Reported {
    kind: String,
    #[serde(default)]
    message: String,
    name: Option<String>,
    line: Option<u64>,
    column: Option<u64>,
    after_line: Option<u64>,
    #[serde(default)]
    named: bool,
}

impl Execution {
    /// Reads a run of the runtime: its answer (`{"value": …}`) or its
    /// report, or the limit that stopped it.
    pub(crate) fn read(
        result: Result<String, HostRunError>,
        captured: Captured,
        policy: &Policy,
    ) -> Self {
        let result = match result {
            Ok(answer) => value_of(&answer),
            Err(HostRunError::Run(RunError::Failed(report))) => Err(reported(&report)),
            Err(HostRunError::Run(error)) => Err(limit(&error)),
            Err(error @ HostRunError::ShuttingDown) => Err(ScriptError::Host(error.to_string())),
        };
        Self {
            result,
            console: captured.stdout,
            console_dropped: captured.dropped,
            calls: captured.calls,
            shown: policy.output_bytes,
        }
    }

    /// The value's text as shown to the model: cut at the output cap, with
    /// a note saying so.
    pub fn value_text(&self) -> Option<String> {
        let text = self.result.as_ref().ok()?;
        if text.len() <= self.shown {
            return Some(text.clone());
        }
        let mut cut = self.shown;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        Some(format!(
            "{}\n[truncated: the value is {} bytes as JSON; the first {} are shown. Return less \
             — a summary, a count, or a slice]",
            &text[..cut],
            text.len(),
            cut
        ))
    }

    /// The console as shown: what was kept, and a note of what was not.
    pub fn console_text(&self) -> String {
        let mut text = self.console.clone();
        if self.console_dropped > 0 {
            text.push_str(&format!(
                "[truncated: {} more bytes of console output were dropped]\n",
                self.console_dropped
            ));
        }
        text
    }
}

/// `{"value": …}` → the value's JSON text.
fn value_of(answer: &str) -> Result<String, ScriptError> {
    #[derive(Deserialize)]
    struct Answer<'a> {
        #[serde(borrow)]
        value: &'a serde_json::value::RawValue,
    }
    serde_json::from_str::<Answer<'_>>(answer)
        .map(|a| a.value.get().to_owned())
        .map_err(|e| ScriptError::Host(format!("the runtime's answer is not readable: {e}")))
}

fn reported(report: &str) -> ScriptError {
    let Ok(r) = serde_json::from_str::<Reported>(report) else {
        return ScriptError::Script(report.to_owned());
    };
    match r.kind.as_str() {
        "syntax" => ScriptError::Syntax {
            message: r.message,
            line: r.line,
            column: r.column,
        },
        "exception" => ScriptError::Exception {
            name: r.name.unwrap_or_else(|| "Error".into()),
            message: r.message,
            line: r.line,
            column: r.column,
            after_line: r.after_line,
            named: r.named,
        },
        "denied" | "not_found" | "invalid_arguments" | "unavailable" | "timeout"
        | "protocol_error" | "tool_error" => ScriptError::Tool {
            kind: r.kind,
            message: r.message,
            line: r.line,
            column: r.column,
        },
        _ => ScriptError::Script(r.message),
    }
}

/// A limit that stopped the run, in the script's terms.
fn limit(error: &RunError) -> ScriptError {
    let secs = |d: std::time::Duration| humantime::format_duration(d).to_string();
    ScriptError::Limit(match error {
        RunError::Deadline(d) => format!(
            "the script passed its deadline of {} and was stopped (an endless loop, or calls \
             that take too long?)",
            secs(*d)
        ),
        RunError::MemoryLimit(bytes) => format!(
            "the script reached the memory limit of {} MiB and was stopped (a runaway \
             allocation? keep less in memory)",
            bytes >> 20
        ),
        RunError::CpuBudget(d) => format!(
            "the script used its CPU budget of {} and was stopped",
            secs(*d)
        ),
        RunError::CallBudget(n) => format!(
            "the script spent its call budget of {n} tool calls and was stopped (make fewer \
             calls: filter first, or batch what you need)"
        ),
        RunError::OutputTooLarge { bytes, max } => format!(
            "the returned value is {bytes} bytes as JSON, more than the limit of {max}; return \
             less (a summary, a count, or a slice)"
        ),
        RunError::Trap(what) if what.contains("stack overflow") => {
            "the script overflowed the stack and was stopped (runaway recursion?)".to_owned()
        }
        RunError::Trap(what) if what.contains("out of bounds") => {
            "the script overflowed the engine's stack and was stopped (runaway recursion, or \
             a value nested too deeply?)"
                .to_owned()
        }
        other => format!("the script was stopped: {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(result: Result<String, HostRunError>) -> Execution {
        Execution::read(result, Captured::default(), &Policy::default())
    }

    #[test]
    fn value_and_truncation() {
        let e = run(Ok(r#"{"value":{"a":[1,2]}}"#.into()));
        assert_eq!(e.value_text().as_deref(), Some(r#"{"a":[1,2]}"#));
        let policy = Policy {
            output_bytes: 10,
            ..Policy::default()
        };
        let long = format!(r#"{{"value":"{}"}}"#, "é".repeat(20));
        let e = Execution::read(Ok(long), Captured::default(), &policy);
        let shown = e.value_text().unwrap_or_default();
        assert!(
            shown.contains("[truncated: the value is 42 bytes"),
            "{shown}"
        );
    }

    #[test]
    fn reports_are_worded_with_positions() {
        let e = run(Err(HostRunError::Run(RunError::Failed(
            r#"{"kind":"syntax","message":"unexpected token","line":3,"column":7}"#.into(),
        ))));
        assert_eq!(
            e.result.unwrap_err().to_string(),
            "SyntaxError at line 3, column 7: unexpected token"
        );
        let e = run(Err(HostRunError::Run(RunError::Failed(
            r#"{"kind":"exception","name":"TypeError","message":"x is undefined","line":2,"column":1}"#.into(),
        ))));
        assert_eq!(
            e.result.unwrap_err().to_string(),
            "TypeError at line 2, column 1: x is undefined"
        );
        let e = run(Err(HostRunError::Run(RunError::Failed(
            r#"{"kind":"exception","name":"TypeError","message":"cannot convert 'null' or 'undefined' to object"}"#.into(),
        ))));
        let said = e.result.unwrap_err().to_string();
        assert!(
            said.starts_with("TypeError: cannot convert 'null' or 'undefined' to object (the engine does not say on which line"),
            "{said}"
        );
        let e = run(Err(HostRunError::Run(RunError::Failed(
            r#"{"kind":"exception","name":"TypeError","message":"not a callable function","after_line":4}"#.into(),
        ))));
        let said = e.result.unwrap_err().to_string();
        assert!(
            said.contains("; the last tool call or console.log before it was at line 4; look for"),
            "{said}"
        );
        let e = run(Err(HostRunError::Run(RunError::Failed(
            r#"{"kind":"exception","name":"TypeError","message":"tools.fs.nope: no such tool is granted","named":true}"#.into(),
        ))));
        assert_eq!(
            e.result.unwrap_err().to_string(),
            "TypeError: tools.fs.nope: no such tool is granted"
        );
        let e = run(Err(HostRunError::Run(RunError::Failed(
            r#"{"kind":"denied","message":"fs.write_file: not granted"}"#.into(),
        ))));
        assert_eq!(
            e.result.unwrap_err().to_string(),
            "uncaught ToolError (denied): fs.write_file: not granted"
        );
        let e = run(Err(HostRunError::Run(RunError::Failed(
            r#"{"kind":"not_found","message":"fs.nope: no such tool","line":3,"column":9}"#.into(),
        ))));
        assert_eq!(
            e.result.unwrap_err().to_string(),
            "uncaught ToolError (not_found) at line 3, column 9: fs.nope: no such tool"
        );
    }

    #[test]
    fn limits_name_the_limit() {
        let e = run(Err(HostRunError::Run(RunError::Deadline(
            std::time::Duration::from_secs(30),
        ))));
        assert!(
            e.result
                .unwrap_err()
                .to_string()
                .starts_with("the script passed its deadline of 30s")
        );
        let e = run(Err(HostRunError::Run(RunError::MemoryLimit(64 << 20))));
        assert!(
            e.result
                .unwrap_err()
                .to_string()
                .contains("memory limit of 64 MiB")
        );
        let e = run(Err(HostRunError::Run(RunError::CallBudget(1000))));
        assert!(
            e.result
                .unwrap_err()
                .to_string()
                .contains("call budget of 1000")
        );
    }
}
