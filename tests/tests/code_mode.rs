//! Code mode: scripts a model writes, run as untrusted plugin runs on the
//! host's sessions. Each script is a real run of the shipped runtime
//! against the real test server; overlap is counted by the server, not
//! timed.

mod support;

use futures::future::join_all;
use serde_json::{Value, json};
use support::Scratch;
use support::serve::Served;
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
        (
            "const a = 1;\nreturn await callTool('test', 'pid', {})",
            "uncaught ToolError (denied) at line 2, column",
        ),
        (
            "\n\nreturn await tools.test.pid()",
            "TypeError: tools.test.pid: no such tool is granted; there are: echo, nap",
        ),
        (
            "\n\nreturn await callTool('test', 42)",
            "TypeError at line 3, column 22: callTool(server, tool, args) takes two strings",
        ),
        (
            "const r = await tools.test.echo({message: 'a'});\nconsole.log(r);\nreturn r.missing.deeper",
            "the last tool call or console.log before it was at line 2",
        ),
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
    // The ungranted `pid` never reached the server (it logs every call it
    // gets), and the server is the one process it always was.
    assert_eq!(
        scratch.events("call pid"),
        0,
        "a denied call reached the server"
    );
    assert!(scratch.events("call echo") >= 2, "the good runs' calls did");
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
             tools.test.echo = null; tools.test = null; tools.extra = 1;\n\
             console.log('bindings:', typeof tools.test.echo, 'extra' in tools);\n\
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
    assert_eq!(run.console, "bindings: function false\n");
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

/// Every process below `pid`, with its command line (arguments joined by
/// spaces), from /proc.
fn descendants(pid: u32) -> Vec<(u32, String)> {
    let mut parents: Vec<(u32, u32, String)> = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // The parent's pid is the second field after the parenthesised name.
        let Some(ppid) = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        parents.push((p, ppid, cmdline));
    }
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (p, ppid, cmdline) in &parents {
            if *ppid == parent && support::alive(*p) {
                found.push((*p, cmdline.clone()));
                frontier.push(*p);
            }
        }
    }
    found
}

/// A real client, as a model uses code mode: the Python `mcp` SDK against
/// `weir serve --code-mode` with server-filesystem and mcp-server-time
/// upstream. Search finds `read_text_file`; the declarations type-check
/// with `tsc` (with a use of them); one script lists a directory, reads
/// its 20 files with `Promise.all` — the reads in flight together at the
/// server, counted on its pipe — and returns their sizes, right; one
/// process per upstream server.
#[test]
fn a_python_client_searches_describes_and_runs_a_script() {
    let scratch = Scratch::new("code-serve");
    let docs = scratch.dir.join("docs");
    std::fs::create_dir_all(docs.join("nested")).expect("docs");
    let mut sizes = serde_json::Map::new();
    for i in 0..20 {
        let name = format!("note-{i:02}.txt");
        let text = format!("note {i}\n{}", "storm ".repeat(10 + 7 * i));
        std::fs::write(docs.join(&name), &text).expect("write");
        sizes.insert(name, text.len().into());
    }
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = tests.join("py/.venv/bin/python");
    let filesystem =
        tests.join("npm/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js");
    for needed in [&python, &filesystem] {
        assert!(
            needed.exists(),
            "{} is missing: run scripts/test (it installs tests/npm and tests/py)",
            needed.display()
        );
    }
    let wire = scratch.dir.join("fs-wire.log");
    let config = scratch.config(
        json!({"code_mode": {"allow": ["fs/*", "time/*"]}}),
        json!({
            "fs": {"command": python, "args": [tests.join("py/wire_tap.py"), &wire, "--", "node", filesystem, &docs]},
            "time": {"command": tests.join("py/.venv/bin/mcp-server-time"), "args": ["--local-timezone", "UTC"]},
        }),
    );
    let served = Served::launch(&config, &[std::ffi::OsStr::new("--code-mode")], &[]);
    let client = std::process::Command::new(&python)
        .arg(tests.join("py/code_mode_client.py"))
        .arg(served.mcp_url())
        .arg(&docs)
        .output()
        .expect("the client runs");
    assert!(
        client.status.success(),
        "client failed: {}\nweir: {}",
        String::from_utf8_lossy(&client.stderr),
        served.log()
    );
    let report: Value = serde_json::from_slice(&client.stdout).expect("the client's report");

    // The listing is code mode's three tools, small whatever is upstream.
    assert_eq!(
        report["tools"],
        json!(["describe_tools", "execute_code", "search_tools"])
    );
    let list_bytes = report["list_bytes"].as_u64().unwrap_or(u64::MAX);
    assert!(list_bytes <= 2048, "tools/list is {list_bytes} bytes");

    // Search finds the tool and only granted ones.
    assert_eq!(report["search"]["is_error"], false, "{report}");
    let found: Value = serde_json::from_str(report["search"]["texts"][0].as_str().unwrap_or(""))
        .expect("search answers JSON");
    let found = found.as_array().cloned().unwrap_or_default();
    assert!(
        found
            .iter()
            .any(|t| t["server"] == "fs" && t["name"] == "read_text_file"),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .all(|t| t["server"] == "fs" || t["server"] == "time"),
        "search found an ungranted tool: {found:?}"
    );

    // The declarations type-check, and so does a script using them.
    assert_eq!(report["describe"]["is_error"], false, "{report}");
    let declarations = report["describe"]["texts"][0].as_str().unwrap_or("");
    let checked = scratch.dir.join("tsc");
    std::fs::create_dir_all(&checked).expect("dir");
    std::fs::write(checked.join("tools.d.ts"), declarations).expect("write");
    std::fs::write(
        checked.join("use.ts"),
        "async function script(): Promise<number> {\n\
         \x20 const listing = await tools.fs.list_directory({ path: \"/docs\" });\n\
         \x20 const text = await tools.fs.read_text_file({ path: \"/docs/a\", head: 2 });\n\
         \x20 const now = await tools.time.get_current_time({ timezone: \"UTC\" });\n\
         \x20 return listing.content.length + text.content.length + String(now).length;\n\
         }\n\
         script();\n",
    )
    .expect("write");
    std::fs::write(
        checked.join("tsconfig.json"),
        json!({"compilerOptions": {"strict": true, "noEmit": true, "target": "es2022",
                                   "lib": ["es2022"], "types": []},
               "files": ["tools.d.ts", "use.ts"]})
        .to_string(),
    )
    .expect("write");
    let tsc = tests.join("../guest-sdk/js/node_modules/typescript/bin/tsc");
    let typed = std::process::Command::new("node")
        .arg(&tsc)
        .arg("-p")
        .arg(&checked)
        .output()
        .expect("tsc runs");
    assert!(
        typed.status.success(),
        "tsc: {}{}\n{declarations}",
        String::from_utf8_lossy(&typed.stdout),
        String::from_utf8_lossy(&typed.stderr)
    );

    // The script read every file, right, the reads overlapping.
    assert_eq!(report["execute"]["is_error"], false, "{report}");
    let value: Value = serde_json::from_str(report["execute"]["texts"][0].as_str().unwrap_or(""))
        .expect("the script's value is JSON");
    assert_eq!(value, json!({"sizes": sizes, "timezone": "UTC"}));
    assert_eq!(report["execute"]["texts"][1], "console:\nread 20 files\n");
    let in_flight = std::fs::read_to_string(&wire)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("in-flight ")?.parse::<usize>().ok())
        .max()
        .unwrap_or(0);
    eprintln!("reads in flight together at server-filesystem: {in_flight}");
    assert!(
        in_flight >= 2,
        "the reads went to server-filesystem one at a time (at most {in_flight} in flight)"
    );

    // One process per upstream server, all children of this one weir.
    let below = descendants(served.child.id());
    let count = |what: &str, not: &str| {
        below
            .iter()
            .filter(|(_, c)| c.contains(what) && !c.contains(not))
            .count()
    };
    assert_eq!(count("server-filesystem", "wire_tap"), 1, "{below:?}");
    assert_eq!(count("mcp-server-time", "wire_tap"), 1, "{below:?}");
    let status = served.stop();
    assert!(status.success(), "weir serve exited {status:?}");
}

/// `weir run --code FILE.js` (and `-` for stdin): the value on stdout, the
/// console on stderr, a broken script a failure naming the line.
#[test]
fn weir_run_code_runs_a_script_from_the_command_line() {
    let scratch = Scratch::new("code-cli");
    let config = scratch.config(json!({"code_mode": {"allow": ["test/echo"]}}), json!({}));
    let script = scratch.dir.join("hello.js");
    std::fs::write(
        &script,
        "const r = await tools.test.echo({message: 'from a file'});\nconsole.log('got', r);\nreturn {r};\n",
    )
    .expect("write");
    let config = config.display().to_string();
    let ran = support::weir(&[
        "run",
        "--config",
        &config,
        "--code",
        &script.display().to_string(),
    ]);
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(ran.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), r#"{"r":"from a file"}"#);
    assert!(stderr.contains("got from a file"), "{stderr}");

    let mut child = std::process::Command::new(support::WEIR)
        .args(["run", "--config", &config, "--code", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("weir runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(b"const a = 1;\nreturn a +;\n")
            .expect("write the script");
    }
    let broken = child.wait_with_output().expect("weir ends");
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(!broken.status.success(), "a broken script succeeded");
    assert!(stderr.contains("SyntaxError at line 2"), "{stderr}");
}
