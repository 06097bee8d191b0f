//! Code mode: scripts a model writes, run as untrusted plugin runs on the
//! host's sessions. Each script is a real run of the shipped runtime
//! against the real test server; overlap is counted by the server, not
//! timed.

mod support;

use futures::future::join_all;
use serde_json::json;
use support::Scratch;
use weir_host::code::CodeMode;

/// A host whose code mode may call the test server's `echo` and `nap`
/// only, with tight limits so hostile scripts end fast.
async fn code_host(scratch: &Scratch) -> (weir_host::Host, CodeMode) {
    let host = scratch.host(json!({
        "code_mode": {
            "allow": ["test/echo", "test/nap"],
            "deadline_secs": 5,
            "max_calls_per_run": 1000,
            "memory_limit_mb": 64,
        }
    }));
    let code = CodeMode::prepare(&host, weir_app::CODE_RUNTIME)
        .await
        .expect("the runtime prepares");
    (host, code)
}

/// `Promise.all` of calls goes out as one batch: all ten naps are in
/// flight at the server together, and the answers come back in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_awaited_together_run_at_once() {
    let scratch = Scratch::new("code-overlap");
    let (host, code) = code_host(&scratch).await;
    let run = code
        .execute(
            &host,
            "const naps = await Promise.all([...Array(10).keys()].map((i) => tools.test.nap({ms: 200 + i})));\n\
             console.log('done', naps.length);\n\
             return naps;",
        )
        .await;
    let expected: Vec<String> = (0..10).map(|i| format!("napped {}", 200 + i)).collect();
    assert_eq!(
        run.value_text().as_deref(),
        Some(json!(expected).to_string().as_str()),
        "{:?}",
        run.result
    );
    assert_eq!(run.console, "done 10\n");
    assert_eq!(run.calls, 10);
    assert_eq!(scratch.max_nap_concurrency(), 10, "all ten naps overlapped");
    host.shutdown().await;
}

/// Hostile scripts, all at once beside a good one: each ends with an error
/// a model can act on, the good one still answers right, and a call that
/// is not granted never reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_scripts_fail_clearly_and_alone() {
    let scratch = Scratch::new("code-hostile");
    let (host, code) = code_host(&scratch).await;
    let good = "const r = await tools.test.echo({message: 'still here'}); return {r};";
    let cases: &[(&str, &str)] = &[
        ("while (true) {}", "deadline of 5s"),
        (
            "const a = []; let i = 0; while (true) a.push('x'.repeat(1 << 20) + i++);",
            "memory limit of 64 MiB",
        ),
        (
            "function f(n) { return f(n + 1) + 1 } return f(0);",
            "too deep",
        ),
        ("return await fetch('http://127.0.0.1:9/')", "fetch"),
        ("return require('fs')", "require"),
        ("return await import('fs')", "module resolution is disabled"),
        ("throw 42", "threw 42, not an Error"),
        ("const o = {}; o.self = o; return o;", "cycle"),
        ("return 10n", "BigInt"),
        (
            "let n = 0; while (true) { callTool('test', 'echo', {message: 'x'}); if (++n % 100 === 0) await null; }",
            "call budget of 1000",
        ),
        ("return await callTool('test', 'pid', {})", "denied"),
        ("return await tools.test.pid()", "no such tool is granted"),
        ("await new Promise(() => {})", "never happen"),
        ("let x = ;", "SyntaxError at line 1"),
        (
            "const a = 1;\nthrow new RangeError('bad ' + a)",
            "RangeError at line 2",
        ),
    ];
    let mut scripts: Vec<&str> = vec![good];
    scripts.extend(cases.iter().map(|(s, _)| *s));
    scripts.push(good);
    let runs = join_all(scripts.iter().map(|s| code.execute(&host, s))).await;
    for (run, expected) in [&runs[0], &runs[runs.len() - 1]].into_iter().zip([0, 1]) {
        assert_eq!(
            run.value_text().as_deref(),
            Some(r#"{"r":"still here"}"#),
            "good run {expected}: {:?}",
            run.result
        );
    }
    for ((script, expected), run) in cases.iter().zip(&runs[1..]) {
        let error = match &run.result {
            Err(e) => e.to_string(),
            Ok(v) => panic!("{script:?} gave a value: {v}"),
        };
        assert!(
            error.contains(expected),
            "{script:?}: expected {expected:?} in {error:?}"
        );
    }
    // The ungranted `pid` never reached the server: it logged no session
    // for it, and the server is the one process it always was.
    assert_eq!(
        scratch.sessions().len(),
        1,
        "one session to the test server"
    );
    host.shutdown().await;
}

/// Tampering with the script's globals changes its own view only: its
/// calls still go out and come back right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampering_with_globals_does_not_break_the_bindings() {
    let scratch = Scratch::new("code-tamper");
    let (host, code) = code_host(&scratch).await;
    let run = code
        .execute(
            &host,
            "JSON.parse = () => 'forged'; JSON.stringify = () => '{}';\n\
             Object.prototype.then = undefined; Promise.prototype.then = function () { return this; };\n\
             try { tools.test.echo = null } catch (e) { console.log('refused:', e.message) }\n\
             globalThis.callTool = null;\n\
             const r = tools.test.echo({message: 'genuine'});\n\
             return typeof r;",
        )
        .await;
    assert_eq!(
        run.value_text().as_deref(),
        Some("\"object\""),
        "{:?}",
        run.result
    );
    assert!(
        run.console
            .contains("refused: tools.test cannot be changed"),
        "{}",
        run.console
    );
    host.shutdown().await;
}

/// Big answers are cut with a note; a flood of console output is kept up
/// to the cap and the rest counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_values_and_console_floods_are_truncated_with_a_note() {
    let scratch = Scratch::new("code-big");
    let (host, code) = code_host(&scratch).await;
    let run = code.execute(&host, "return 'x'.repeat(1 << 20)").await;
    let shown = run.value_text().unwrap_or_default();
    assert!(
        shown.contains("[truncated: the value is 1048578 bytes"),
        "{}",
        &shown[shown.len().saturating_sub(200)..]
    );
    let run = code
        .execute(&host, "const line = 'y'.repeat(1000); for (let i = 0; i < 10000; i++) console.log(line); return 'ok'")
        .await;
    assert_eq!(run.value_text().as_deref(), Some("\"ok\""));
    assert!(
        run.console_text().contains("[truncated:"),
        "console kept whole?"
    );
    assert!(
        run.console.len() <= 64 << 10,
        "{} bytes kept",
        run.console.len()
    );
    host.shutdown().await;
}
