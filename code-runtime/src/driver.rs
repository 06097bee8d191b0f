//! The engine and its event loop: runs a script, drains its jobs, sends
//! its queued tool calls to the host in batches, and reads its answer.

use std::cell::RefCell;
use std::io::Write;
use std::path::Path;

use boa_engine::builtins::promise::PromiseState;
use boa_engine::object::ObjectInitializer;
use boa_engine::object::builtins::{JsFunction, JsPromise};
use boa_engine::{
    Context, JsError, JsNativeError, JsNativeErrorKind, JsResult, JsString, JsValue,
    NativeFunction, Script, Source, js_string,
};
use serde_json::json;

use crate::weir::agent::{code, mcp};

/// The name the script goes by in positions (`script.js:3:7`).
const SCRIPT_PATH: &str = "script.js";
/// What goes before the script so that it is an async function's body;
/// one line, taken off the positions the engine reports.
const WRAP_BEFORE: &str = "(async () => {\n";
const WRAP_AFTER: &str = "\n})()";
/// Calls sent to the host in one `call-tools` batch at most; the rest go in
/// the next. The host caps how many of a batch are in flight.
const BATCH: usize = 256;
/// Bytes of `console` output the runtime passes on; the rest is counted.
const LOG_BYTES: usize = 1 << 20;
/// Nested calls before the engine throws a RangeError (far below where
/// the engine's own stack would overflow).
const RECURSION_LIMIT: usize = 400;

/// One queued tool call: what to call, where in the script it was made,
/// and how to settle its promise (`resolve(value)`,
/// `reject(kind, message, line, column)`).
struct Queued {
    call: mcp::Call,
    at: Option<Place>,
    resolve: JsFunction,
    reject: JsFunction,
}

/// A line and column in the script as its author wrote it.
type Place = (u64, u64);

/// The engine, set up once (before the snapshot).
struct Engine {
    context: Context,
    /// The prelude's `encode` and `explain`.
    encode: JsFunction,
    explain: JsFunction,
}

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    static QUEUE: RefCell<Vec<Queued>> = const { RefCell::new(Vec::new()) };
    static LOGGED: RefCell<(usize, usize)> = const { RefCell::new((0, 0)) };
    /// Where the script last called out (a tool call, `console.log`): what
    /// the model is told when the engine throws without saying where.
    static LAST_SEEN: std::cell::Cell<Option<Place>> = const { std::cell::Cell::new(None) };
    /// A function that only throws: its error's backtrace says where the
    /// script is (see `script_place`).
    static PROBE: RefCell<Option<JsFunction>> = const { RefCell::new(None) };
}

/// Sets up the engine: the context, the host's natives and the prelude.
pub fn initialize() {
    ENGINE.with(|engine| {
        let mut engine = engine.borrow_mut();
        if engine.is_none() {
            match Engine::new() {
                Ok(ready) => *engine = Some(ready),
                // The prelude is ours: failing here is a bug in the build.
                Err(error) => panic!("the code runtime's prelude failed: {error}"),
            }
        }
    });
}

/// Runs one script (`input` is `{"code": "…"}`): `Ok` is `{"value": …}`,
/// `Err` a JSON object saying what went wrong, for the host to word.
pub fn run(input: &str) -> Result<String, String> {
    initialize();
    let code = match serde_json::from_str::<serde_json::Value>(input) {
        Ok(serde_json::Value::Object(mut map)) => match map.remove("code") {
            Some(serde_json::Value::String(code)) => code,
            _ => return Err(failure("input", "the input has no `code` string")),
        },
        _ => return Err(failure("input", "the input is not a JSON object")),
    };
    ENGINE.with(|engine| {
        let mut engine = engine.borrow_mut();
        let Some(engine) = engine.as_mut() else {
            return Err(failure("runtime", "the engine is not set up"));
        };
        engine.execute(&code)
    })
}

fn failure(kind: &str, message: &str) -> String {
    json!({ "kind": kind, "message": message }).to_string()
}

impl Engine {
    fn new() -> JsResult<Self> {
        let mut context = Context::default();
        context
            .runtime_limits_mut()
            .set_recursion_limit(RECURSION_LIMIT);
        let natives = ObjectInitializer::new(&mut context)
            .function(
                NativeFunction::from_fn_ptr(enqueue),
                js_string!("enqueue"),
                5,
            )
            .function(
                NativeFunction::from_fn_ptr(list_tools),
                js_string!("listTools"),
                0,
            )
            .function(
                NativeFunction::from_fn_ptr(search_tools),
                js_string!("searchTools"),
                2,
            )
            .function(NativeFunction::from_fn_ptr(print), js_string!("print"), 1)
            .function(NativeFunction::from_fn_ptr(place), js_string!("place"), 0)
            .build();
        let probe = context.eval(Source::from_bytes("(function probe() { throw 0; })"))?;
        PROBE.with(|p| *p.borrow_mut() = function(&probe, "the probe").ok());
        let prelude = context.eval(Source::from_bytes(include_str!("prelude.js")))?;
        let prelude = function(&prelude, "the prelude")?;
        let exports = prelude.call(&JsValue::undefined(), &[natives.into()], &mut context)?;
        let exports = exports
            .as_object()
            .ok_or_else(|| JsNativeError::typ().with_message("the prelude returned no object"))?;
        let encode = function(&exports.get(js_string!("encode"), &mut context)?, "encode")?;
        let explain = function(
            &exports.get(js_string!("explain"), &mut context)?,
            "explain",
        )?;
        // Nothing a script could reach to leave by: the engine has no
        // `fetch`, `require` or timers; `eval` stays (it runs in the same
        // sandbox).
        Ok(Self {
            context,
            encode,
            explain,
        })
    }

    fn execute(&mut self, code: &str) -> Result<String, String> {
        let context = &mut self.context;
        LAST_SEEN.set(None);
        let wrapped = format!("{WRAP_BEFORE}{code}{WRAP_AFTER}");
        let source = Source::from_bytes(wrapped.as_bytes()).with_path(Path::new(SCRIPT_PATH));
        let script = Script::parse(source, None, context).map_err(|e| syntax_error(&e))?;
        let value = script.evaluate(context).map_err(|e| self.thrown(e))?;
        let promise = value
            .as_object()
            .and_then(|o| JsPromise::from_object(o.clone()).ok())
            .ok_or_else(|| failure("runtime", "the script did not start"))?;
        loop {
            self.context.run_jobs().map_err(|e| self.thrown(e))?;
            match promise.state() {
                PromiseState::Fulfilled(value) => {
                    finish_log();
                    let text = self
                        .encode
                        .call(&JsValue::undefined(), &[value], &mut self.context)
                        .map_err(|e| self.thrown(e))?;
                    let text = text
                        .as_string()
                        .map(|s| s.to_std_string_escaped())
                        .unwrap_or_else(|| "null".into());
                    return Ok(format!("{{\"value\":{text}}}"));
                }
                PromiseState::Rejected(reason) => {
                    finish_log();
                    return Err(self.thrown(JsError::from_opaque(reason)));
                }
                PromiseState::Pending => {
                    if !flush(&mut self.context).map_err(|e| self.thrown(e))? {
                        finish_log();
                        return Err(failure(
                            "never_settled",
                            "the script is waiting for something that will never happen: it \
                             awaits a promise nothing resolves (there are no timers or events \
                             here; only tool calls settle)",
                        ));
                    }
                }
            }
        }
    }

    /// What a thrown value says, as the JSON the host words for the model:
    /// the prelude's reading of it, and where in the script it was made.
    fn thrown(&mut self, error: JsError) -> String {
        let native = error.try_native(&mut self.context).ok();
        // The engine's own limits cannot be caught, nor made JS values.
        if let Some(native) = &native
            && matches!(native.kind, JsNativeErrorKind::RuntimeLimit)
        {
            return failure(
                "limit",
                &format!(
                    "the script went too deep ({}; at most {RECURSION_LIMIT} nested calls): \
                     runaway recursion?",
                    native.message()
                ),
            );
        }
        let position = native.and_then(|native| position(&native.to_string()));
        let opaque = error.to_opaque(&mut self.context);
        let explained = self
            .explain
            .call(&JsValue::undefined(), &[opaque], &mut self.context)
            .ok()
            .and_then(|v| v.as_string().map(|s| s.to_std_string_escaped()))
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
        let mut explained = match explained {
            Some(serde_json::Value::Object(map)) => map,
            _ => {
                let mut map = serde_json::Map::new();
                map.insert("kind".into(), "exception".into());
                map.insert("message".into(), error.to_string().into());
                map
            }
        };
        if let Some((line, column)) = position {
            explained.insert("line".into(), line.into());
            explained.insert("column".into(), column.into());
        }
        if !explained.contains_key("line")
            && !explained.contains_key("named")
            && let Some((line, _)) = LAST_SEEN.get()
        {
            explained.insert("after_line".into(), line.into());
        }
        serde_json::Value::Object(explained).to_string()
    }
}

fn function(value: &JsValue, what: &str) -> JsResult<JsFunction> {
    value
        .as_object()
        .and_then(|o| JsFunction::from_object(o.clone()))
        .ok_or_else(|| {
            JsNativeError::typ()
                .with_message(format!("{what} is not a function"))
                .into()
        })
}

/// The script's own line and column in an engine position or backtrace
/// (`… (script.js:4:9)`), the wrapper's line taken off.
fn position(text: &str) -> Option<(u64, u64)> {
    // The innermost first: a backtrace lists the most recent frame first.
    let at = text.find(&format!("({SCRIPT_PATH}:"))?;
    let rest = &text[at + SCRIPT_PATH.len() + 2..];
    let end = rest.find(')')?;
    let (line, column) = rest[..end].split_once(':')?;
    let line: u64 = line.parse().ok()?;
    let column: u64 = column.parse().ok()?;
    let skipped = WRAP_BEFORE.matches('\n').count() as u64;
    Some((line.checked_sub(skipped).filter(|l| *l > 0)?, column))
}

/// Where the running script is: the innermost of its own frames (not the
/// prelude's), as the author numbers lines. Used where the engine itself
/// would not say — the place of a tool call whose promise is rejected
/// later, of a mistake the prelude reports, of the last call out. The
/// engine's backtrace is the one public record of where each frame is, and
/// it is taken when an error leaves a frame: the probe throws one. (It is
/// exact for a frame that called a function, as a tool call or `console.log`
/// does; a frame inside a property access — a Proxy trap — can be stale, so
/// the prelude does not place errors its traps throw.)
fn script_place(context: &mut Context) -> Option<Place> {
    let probe = PROBE.with(|p| p.borrow().clone())?;
    let error = probe.call(&JsValue::undefined(), &[], context).err()?;
    position(&error.to_string())
}

/// The script calls out (a tool call, `console.log`) from here: where it
/// is, kept as the last place known to have run.
fn calling_out(context: &mut Context) -> Option<Place> {
    let at = script_place(context);
    if at.is_some() {
        LAST_SEEN.set(at);
    }
    at
}

/// `place()`: `[line, column]` of the script's code that is running, or
/// `undefined` (the prelude marks the errors it throws with it).
fn place(_this: &JsValue, _args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    Ok(match script_place(context) {
        Some((line, column)) => {
            let pair = boa_engine::object::builtins::JsArray::from_iter(
                [JsValue::from(line as f64), JsValue::from(column as f64)],
                context,
            );
            pair.into()
        }
        None => JsValue::undefined(),
    })
}

/// A syntax error, with the script's line and column.
fn syntax_error(error: &JsError) -> String {
    let text = error.to_string();
    // The parser says "… at line L, col C".
    let mut message = text.clone();
    let mut place = None;
    if let Some(at) = text.rfind(" at line ") {
        let tail = &text[at + " at line ".len()..];
        if let Some((line, column)) = tail.split_once(", col ") {
            let column: String = column.chars().take_while(char::is_ascii_digit).collect();
            if let (Ok(line), Ok(column)) = (line.trim().parse::<u64>(), column.parse::<u64>()) {
                let skipped = WRAP_BEFORE.matches('\n').count() as u64;
                place = Some((line.saturating_sub(skipped).max(1), column));
                message = text[..at].to_owned();
            }
        }
    }
    let message = message
        .trim_start_matches("SyntaxError: ")
        .trim()
        .to_owned();
    let mut out = json!({ "kind": "syntax", "message": message });
    if let Some((line, column)) = place {
        out["line"] = line.into();
        out["column"] = column.into();
    }
    out.to_string()
}

/// Sends the queued calls to the host (one batch, or a few) and settles
/// their promises. `false` when nothing was queued.
fn flush(context: &mut Context) -> JsResult<bool> {
    let batch: Vec<Queued> = QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        let n = q.len().min(BATCH);
        q.drain(..n).collect()
    });
    if batch.is_empty() {
        return Ok(false);
    }
    let calls: Vec<mcp::Call> = batch.iter().map(|q| q.call.clone()).collect();
    let results = mcp::call_tools(&calls);
    for (queued, result) in batch.into_iter().zip(results) {
        match result.map_err(call_error).and_then(|text| shape(&text)) {
            Ok(value) => {
                let value = JsValue::from_json(&value, context)?;
                queued
                    .resolve
                    .call(&JsValue::undefined(), &[value], context)?;
            }
            Err((kind, message)) => {
                let (line, column) = match queued.at {
                    Some((line, column)) => {
                        (JsValue::from(line as f64), JsValue::from(column as f64))
                    }
                    None => (JsValue::undefined(), JsValue::undefined()),
                };
                let args = [
                    js_string!(kind).into(),
                    JsString::from(message.as_str()).into(),
                    line,
                    column,
                ];
                queued.reject.call(&JsValue::undefined(), &args, context)?;
            }
        }
    }
    Ok(true)
}

/// What a tool result is to the script: its structured content when it
/// gave one, else its text blocks joined (a block that is not text, an
/// image say, a placeholder line naming it); `isError` is a `tool_error`.
/// Read here rather than by the script's engine: parsing JSON in Rust is
/// many times cheaper than in the interpreter.
fn shape(text: &str) -> Result<serde_json::Value, (&'static str, String)> {
    use serde_json::Value;
    let mut reply: Value = serde_json::from_str(text)
        .map_err(|e| ("protocol_error", format!("the answer is not JSON: {e}")))?;
    let joined = |reply: &Value| {
        let blocks = reply.get("content").and_then(Value::as_array);
        let texts: Vec<String> = blocks.into_iter().flatten().map(block_text).collect();
        texts.join("\n")
    };
    if reply.get("isError").and_then(Value::as_bool) == Some(true) {
        let text = joined(&reply);
        return Err((
            "tool_error",
            if text.is_empty() {
                "the tool reported an error".into()
            } else {
                text
            },
        ));
    }
    match reply.get_mut("structuredContent").map(Value::take) {
        Some(structured) if !structured.is_null() => Ok(structured),
        _ => Ok(Value::String(joined(&reply))),
    }
}

/// One content block as text.
fn block_text(block: &serde_json::Value) -> String {
    use serde_json::Value;
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let kind = field(block, "type").unwrap_or_else(|| "block".into());
    if kind == "text" {
        return field(block, "text").unwrap_or_default();
    }
    let resource = block.get("resource").cloned().unwrap_or(Value::Null);
    if kind == "resource"
        && let Some(text) = field(&resource, "text")
    {
        return text;
    }
    let what = field(block, "mimeType")
        .or_else(|| field(&resource, "mimeType"))
        .map(|m| format!(" {m}"))
        .unwrap_or_default();
    let size = block
        .get("data")
        .and_then(Value::as_str)
        .map(|d| format!(", {} base64 characters", d.len()))
        .unwrap_or_default();
    format!("[{kind}{what}{size}]")
}

fn call_error(error: mcp::CallError) -> (&'static str, String) {
    match error {
        mcp::CallError::Denied(m) => ("denied", m),
        mcp::CallError::NotFound(m) => ("not_found", m),
        mcp::CallError::InvalidArguments(m) => ("invalid_arguments", m),
        mcp::CallError::Unavailable(m) => ("unavailable", m),
        mcp::CallError::Timeout => ("timeout", "the server did not answer in time".into()),
        mcp::CallError::ProtocolError(m) => ("protocol_error", m),
    }
}

fn string_arg(args: &[JsValue], i: usize, context: &mut Context) -> JsResult<String> {
    Ok(args
        .get(i)
        .cloned()
        .unwrap_or_default()
        .to_string(context)?
        .to_std_string_escaped())
}

/// `enqueue(server, tool, argumentsText, resolve, reject)`: queues the
/// call, settled at the next flush.
fn enqueue(_this: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let call = mcp::Call {
        server: string_arg(args, 0, context)?,
        tool: string_arg(args, 1, context)?,
        arguments: string_arg(args, 2, context)?,
    };
    let settle = |i: usize, what: &str| {
        args.get(i)
            .cloned()
            .ok_or_else(|| {
                JsNativeError::typ()
                    .with_message(format!("enqueue: no {what}"))
                    .into()
            })
            .and_then(|f| function(&f, what))
    };
    let (resolve, reject) = (settle(3, "resolve")?, settle(4, "reject")?);
    let at = calling_out(context);
    let queued = QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        q.push(Queued {
            call,
            at,
            resolve,
            reject,
        });
        q.len()
    });
    // A script that calls without ever waiting still sends its calls (and
    // meets its call budget), a batch at a time, instead of piling them up.
    if queued >= BATCH {
        flush(context)?;
    }
    Ok(JsValue::undefined())
}

fn tools_json(tools: Vec<mcp::Tool>) -> JsValue {
    let list: Vec<serde_json::Value> = tools
        .into_iter()
        .map(|t| {
            json!({
                "server": t.server,
                "name": t.name,
                "description": t.description,
            })
        })
        .collect();
    JsString::from(serde_json::Value::Array(list).to_string().as_str()).into()
}

/// `listTools()`: the granted tools, as JSON text.
fn list_tools(_this: &JsValue, _args: &[JsValue], _context: &mut Context) -> JsResult<JsValue> {
    Ok(tools_json(mcp::list_tools()))
}

/// `searchTools(query, limit)`: the host's best matches, as JSON text.
fn search_tools(_this: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let query = string_arg(args, 0, context)?;
    let limit = args
        .get(1)
        .cloned()
        .unwrap_or_default()
        .to_u32(context)?
        .clamp(1, 100);
    Ok(tools_json(code::search_tools(&query, limit)))
}

/// `print(line)`: one line of console output, up to the runtime's cap.
fn print(_this: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let line = string_arg(args, 0, context)?;
    calling_out(context);
    LOGGED.with(|logged| {
        let (kept, dropped) = &mut *logged.borrow_mut();
        if *kept + line.len() < LOG_BYTES {
            *kept += line.len() + 1;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.write_all(b"\n");
        } else {
            *dropped += line.len() + 1;
        }
    });
    Ok(JsValue::undefined())
}

/// Says how much console output was dropped, if any.
fn finish_log() {
    LOGGED.with(|logged| {
        let (_, dropped) = *logged.borrow();
        if dropped > 0 {
            let _ = writeln!(
                std::io::stdout().lock(),
                "[weir: {dropped} more bytes of console output were dropped (the cap is {} MiB)]",
                LOG_BYTES >> 20
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_result_is_its_structured_content_else_its_text() {
        let structured = json!({"content": [{"type": "text", "text": "{\"a\":1}"}],
                                "structuredContent": {"a": 1}});
        assert_eq!(shape(&structured.to_string()), Ok(json!({"a": 1})));
        let text = json!({"content": [{"type": "text", "text": "one"},
                                      {"type": "image", "mimeType": "image/png", "data": "AAAA"},
                                      {"type": "resource", "resource": {"uri": "x:", "text": "two"}},
                                      {"type": "resource", "resource": {"uri": "y:", "mimeType": "application/pdf", "blob": "AA"}}]});
        assert_eq!(
            shape(&text.to_string()),
            Ok(json!(
                "one\n[image image/png, 4 base64 characters]\ntwo\n[resource application/pdf]"
            ))
        );
        assert_eq!(shape(r#"{"content": []}"#), Ok(json!("")));
    }

    #[test]
    fn an_error_result_is_a_tool_error_with_its_text() {
        let failed =
            json!({"content": [{"type": "text", "text": "no such file"}], "isError": true});
        assert_eq!(
            shape(&failed.to_string()),
            Err(("tool_error", "no such file".into()))
        );
        assert_eq!(
            shape(r#"{"content": [], "isError": true}"#),
            Err(("tool_error", "the tool reported an error".into()))
        );
        assert!(matches!(shape("not json"), Err(("protocol_error", _))));
    }
}
