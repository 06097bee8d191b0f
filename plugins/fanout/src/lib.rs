//! `fanout`: calls one tool N times and counts the outcomes — a diagnostic
//! and load plugin.
//!
//! Input: `{"server": S, "tool": T, "arguments": {...}, "count": N}`.
//! Output: `{"calls": N, "ok": K, "errors": E}`, where `errors` counts both
//! failed calls and results flagged `isError`; the first error's text is
//! included as `first_error`.

use serde::Deserialize;
use serde_json::{Map, Value, json};
use weir_guest::{agent, call_tool_json};

/// Calls per run at most; a typo of a few zeros should not run for hours.
const MAX_COUNT: u64 = 1_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Job {
    server: String,
    tool: String,
    #[serde(default)]
    arguments: Map<String, Value>,
    #[serde(default = "one")]
    count: u64,
}

fn one() -> u64 {
    1
}

#[agent]
fn run(input: &str) -> Result<Value, String> {
    let job: Job = serde_json::from_str(input).map_err(|e| {
        format!("input must be {{\"server\", \"tool\", \"arguments\", \"count\"}}: {e}")
    })?;
    if job.count > MAX_COUNT {
        return Err(format!("count {} is more than {MAX_COUNT}", job.count));
    }
    let arguments = Value::Object(job.arguments).to_string();
    let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
    for _ in 0..job.count {
        let outcome = match call_tool_json(&job.server, &job.tool, &arguments) {
            Ok(result) if !result.is_error => Ok(()),
            Ok(result) => Err(format!("tool error: {}", result.text())),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => ok += 1,
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    let mut out = json!({ "calls": job.count, "ok": ok, "errors": errors });
    if let Some(e) = first_error {
        out["first_error"] = Value::String(e);
    }
    Ok(out)
}
