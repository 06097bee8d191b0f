//! The edges of weir made to wait or to eat memory, each pinned: FIFOs and
//! huge files where plugins are read, unbounded input, clients that hang
//! up, send slowly or never end their sessions, oversized stdio lines,
//! configs that used to be accepted silently, and small protocol slips.
//! Every wait is bounded, so a regression fails instead of hanging CI.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::serve::{Served, Session, initialize, install, plugins_dir, post, raw_http, status};
use support::{Scratch, WEIR, alive, wait_for};

/// Longest any one command here may take; past it the test fails.
const BOUND: Duration = Duration::from_secs(60);

/// Runs `weir` with `args` and stdin from `stdin` (closed if `None`),
/// killing it and failing if it does not finish within [`BOUND`].
fn weir_bounded(args: &[&str], stdin: Option<std::fs::File>) -> Output {
    let mut child = Command::new(WEIR)
        .args(args)
        .stdin(stdin.map_or_else(Stdio::null, Stdio::from))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir starts");
    let finished = wait_for(BOUND, || matches!(child.try_wait(), Ok(Some(_))));
    if !finished {
        let _ = child.kill();
        let _ = child.wait();
        panic!("weir {args:?} did not finish within {BOUND:?}");
    }
    child.wait_with_output().expect("weir's output")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
}

/// A FIFO named like a plugin, or like a manifest, blocks nothing: `list`,
/// `run`, `inspect` answer at once naming it; `serve` opens its port, hot
/// reload goes on after one is dropped into its directory, and SIGTERM
/// still stops it with no server process left.
#[test]
fn fifos_in_the_plugins_directory_block_nothing() {
    let scratch = Scratch::new("harden-fifo");
    let plugins = plugins_dir(&scratch, &["testbed"]);
    mkfifo(&plugins.join("x.wasm"));
    let dir = plugins.display().to_string();

    let listed = weir_bounded(&["list", "--plugins", &dir], None);
    let out = text(&listed);
    assert!(out.contains("testbed"), "{out}");
    assert!(out.contains("x.wasm") && out.contains("FIFO"), "{out}");
    let ran = weir_bounded(&["run", "x", "--plugins", &dir, "--input", "hi"], None);
    assert!(!ran.status.success());
    assert!(text(&ran).contains("FIFO"), "{}", text(&ran));
    let fifo = plugins.join("x.wasm").display().to_string();
    let inspected = weir_bounded(&["inspect", &fifo], None);
    assert!(!inspected.status.success());
    assert!(text(&inspected).contains("FIFO"), "{}", text(&inspected));

    // The manifest beside a good plugin is a FIFO: that plugin is refused,
    // the others load.
    install(&plugins, "hello");
    std::fs::remove_file(plugins.join("hello.toml")).ok();
    mkfifo(&plugins.join("hello.toml"));
    let listed = text(&weir_bounded(&["list", "--plugins", &dir], None));
    assert!(listed.contains("hello.toml"), "{listed}");

    std::fs::remove_file(plugins.join("hello.toml")).expect("remove fifo");
    let served = Served::start(&scratch, &plugins);
    mkfifo(&plugins.join("late.wasm"));
    install(&plugins, "fanout");
    let addr = served.addr();
    let mut session = Session::open(&addr);
    assert!(
        wait_for(BOUND, || session
            .request("tools/list", json!({}))
            .contains("\"fanout\"")),
        "hot reload still works after a FIFO was dropped in"
    );
    let server_pids = scratch.sessions();
    assert!(served.stop().success());
    for pid in server_pids {
        assert!(wait_for(BOUND, || !alive(pid)), "server {pid} left behind");
    }
}

/// A run's input is read with a bound (the memory limit): `/dev/zero` as
/// `--input-file` or as stdin fails at once, naming the limit.
#[test]
fn run_input_is_bounded() {
    let scratch = Scratch::new("harden-input");
    let config = scratch.config(json!({"memory_limit_mb": 8}), json!({}));
    let config = config.display().to_string();
    let plugin = support::plugin_path("testbed").display().to_string();
    let from_file = weir_bounded(
        &[
            "run",
            &plugin,
            "--config",
            &config,
            "--input-file",
            "/dev/zero",
        ],
        None,
    );
    let from_stdin = weir_bounded(
        &["run", &plugin, "--config", &config],
        Some(std::fs::File::open("/dev/zero").expect("/dev/zero")),
    );
    for output in [from_file, from_stdin] {
        assert!(!output.status.success());
        let out = text(&output);
        assert!(
            out.contains("over 8 MiB") && out.contains("weir.memory_limit_mb"),
            "{out}"
        );
    }
}

/// Plugin files that cannot be plugins by name are named, never silently
/// left out; a file of zeros is refused by its first bytes.
#[test]
fn skipped_plugins_are_named() {
    let scratch = Scratch::new("harden-names");
    let plugins = plugins_dir(&scratch, &["hello"]);
    for name in ["sp ace.wasm", "ünï.wasm", ".hidden.wasm"] {
        std::fs::copy(support::plugin_path("hello"), plugins.join(name)).expect("copy");
    }
    let zeros = std::fs::File::create(plugins.join("zeros.wasm")).expect("zeros");
    zeros.set_len(100 << 20).expect("100 MB of zeros");
    let out = text(&weir_bounded(
        &["list", "--plugins", &plugins.display().to_string()],
        None,
    ));
    for name in ["sp ace.wasm", "ünï.wasm", ".hidden.wasm"] {
        assert!(out.contains(name), "{name} in:\n{out}");
    }
    assert!(out.contains("not a plugin name"), "{out}");
    assert!(
        out.contains("zeros") && out.contains("not a WebAssembly file"),
        "{out}"
    );
}

/// Configs that used to be accepted silently are errors naming the place;
/// a missing working directory is named as such, not as a missing command.
#[test]
fn config_mistakes_are_errors() {
    let scratch = Scratch::new("harden-config");
    let cases = [
        (
            r#"{"mcpServers": {"a": {"command": "x"}, "a": {"command": "y"}}}"#,
            "the key `a` is given twice",
        ),
        (
            r#"{"mcpServers": {"builtin": {"command": "/bin/true"}}}"#,
            "`builtin` is the name of weir's embedded server",
        ),
        (
            r#"{"mcpServers": {"a": {"url": "http://[::1"}}}"#,
            "mcpServers.a.url: not a valid URL",
        ),
    ];
    for (i, (doc, want)) in cases.iter().enumerate() {
        let path = scratch.dir.join(format!("c{i}.json"));
        std::fs::write(&path, doc).expect("config");
        let out = weir_bounded(&["list", "--config", &path.display().to_string()], None);
        assert!(!out.status.success(), "{doc}");
        assert!(text(&out).contains(want), "{doc}: {}", text(&out));
    }
    let path = scratch.dir.join("cwd.json");
    std::fs::write(
        &path,
        json!({"mcpServers": {"a": {"command": "/bin/true", "cwd": "/nonexistent/dir"}}})
            .to_string(),
    )
    .expect("config");
    let out = text(&weir_bounded(
        &["list", "--config", &path.display().to_string()],
        None,
    ));
    assert!(
        out.contains("working directory /nonexistent/dir") && !out.contains("not found on PATH"),
        "{out}"
    );
}

/// A 20 MB `tools/call` line on `weir serve --stdio` is answered with an
/// error for its id, and the session goes on.
#[test]
fn an_oversized_stdio_line_is_answered() {
    let scratch = Scratch::new("harden-stdio");
    let plugins = plugins_dir(&scratch, &["testbed"]);
    let mut child = Command::new(WEIR)
        .args(support::serve::serve_args(&scratch, &plugins))
        .arg("--stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("weir serve --stdio");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let writer = std::thread::spawn(move || {
        let send = |stdin: &mut std::process::ChildStdin, v: Value| {
            writeln!(stdin, "{v}").expect("write");
        };
        send(&mut stdin, initialize(1));
        send(
            &mut stdin,
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        );
        let big = "x".repeat(20 << 20);
        send(
            &mut stdin,
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                   "params": {"name": "testbed", "arguments": {"input": big}}}),
        );
        send(
            &mut stdin,
            json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                   "params": {"name": "testbed", "arguments": [1, 2]}}),
        );
        send(
            &mut stdin,
            json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}),
        );
        stdin
    });
    let mut answers = std::collections::BTreeMap::new();
    while answers.len() < 4 {
        let line = rx.recv_timeout(BOUND).expect("weir answers every request");
        let message: Value = serde_json::from_str(&line).expect("JSON-RPC");
        if let Some(id) = message["id"].as_u64() {
            answers.insert(id, message);
        }
    }
    let too_big = &answers[&7]["error"];
    assert_eq!(too_big["code"], -32600, "{too_big}");
    assert!(
        too_big["message"]
            .as_str()
            .is_some_and(|m| m.contains("16 MiB")),
        "{too_big}"
    );
    let array = &answers[&8]["error"];
    assert_eq!(array["code"], -32602, "array arguments: {array}");
    assert!(answers[&9]["result"].is_object(), "{}", answers[&9]);
    drop(writer.join().expect("writer"));
    assert!(wait_for(BOUND, || matches!(child.try_wait(), Ok(Some(_)))));
}

/// A closed connection: the next read ends (or is reset), within the bound.
fn closed_by_weir(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(BOUND)).expect("timeout");
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Eight clients that hang up with a slow run in flight: every run is
/// cancelled, and so is each run's upstream call.
#[test]
fn http_clients_hanging_up_cancel_their_runs() {
    let scratch = Scratch::new("harden-hangup");
    let plugins = plugins_dir(&scratch, &["testbed"]);
    let served = Served::start(&scratch, &plugins);
    let addr = served.addr();
    let mut session = Session::open(&addr);
    let mut streams: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut stream = TcpStream::connect(&addr).expect("connect");
            let request = session.raw(
                "tools/call",
                json!({"name": "testbed", "arguments": {"input": "sleep:20000"}}),
            );
            stream.write_all(request.as_bytes()).expect("send");
            stream
        })
        .collect();
    assert!(
        wait_for(BOUND, || scratch.events("call sleep") == 8),
        "eight runs reached the server"
    );
    streams.clear();
    assert!(
        wait_for(BOUND, || scratch.events("cancelled") == 8),
        "every upstream call was cancelled ({} of 8)",
        scratch.events("cancelled")
    );
    assert!(
        wait_for(BOUND, || raw_http(&addr, "/metrics", "Accept: */*")
            .lines()
            .any(
                |l| l == "weir_plugin_runs_total{plugin=\"testbed\",outcome=\"cancelled\"} 8"
            )),
        "the runs are counted cancelled"
    );
    assert!(served.stop().success());
}

/// Idle connections, headers sent a byte at a time and bodies that never
/// end are let go; past the session cap the session idle longest is ended.
#[test]
fn slow_and_idle_http_clients_are_bounded() {
    let scratch = Scratch::new("harden-slow");
    let plugins = plugins_dir(&scratch, &["hello"]);
    let served = Served::start_with(
        &scratch,
        &plugins,
        json!({
            "http_header_timeout_secs": 1,
            "http_idle_timeout_secs": 1,
            "http_body_timeout_secs": 1,
            "http_max_sessions": 3,
        }),
    );
    let addr = served.addr();

    let mut idle = TcpStream::connect(&addr).expect("connect");
    assert!(closed_by_weir(&mut idle), "an idle connection is closed");

    let mut slow = TcpStream::connect(&addr).expect("connect");
    let dripping = std::thread::spawn(move || {
        for b in b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaa" {
            if slow.write_all(&[*b]).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        closed_by_weir(&mut slow)
    });
    assert!(
        dripping.join().expect("dripper"),
        "a header sent a byte at a time is cut off"
    );

    let mut body = TcpStream::connect(&addr).expect("connect");
    body.write_all(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json, text/event-stream\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"jsonrpc\""
        )
        .as_bytes(),
    )
    .expect("send");
    let mut reply = String::new();
    body.set_read_timeout(Some(BOUND)).expect("timeout");
    let _ = body.read_to_string(&mut reply);
    assert_eq!(status(&reply), 408, "{reply}");

    let mut sessions: Vec<Session> = (0..5).map(|_| Session::open(&addr)).collect();
    let alive: Vec<u16> = sessions
        .iter_mut()
        .map(|s| status(&s.request("tools/list", json!({}))))
        .collect();
    assert_eq!(
        alive,
        [404, 404, 200, 200, 200],
        "the two oldest were ended"
    );
    assert!(served.stop().success());
}

/// Past the connection limit a new client is answered 503 at once, and
/// served again once a connection is free.
#[test]
fn connections_past_the_limit_are_refused() {
    let scratch = Scratch::new("harden-conns");
    let plugins = plugins_dir(&scratch, &["hello"]);
    let served = Served::start_with(&scratch, &plugins, json!({"http_max_connections": 2}));
    let addr = served.addr();
    // Two connections held mid-header (the header timeout is 10 s, far
    // more than this takes; a refusal below proves they were held).
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.write_all(b"GET / HTTP/1.1\r\n").expect("send");
            s
        })
        .collect();
    let mut refused = TcpStream::connect(&addr).expect("connect");
    let mut reply = String::new();
    refused.set_read_timeout(Some(BOUND)).expect("timeout");
    let _ = refused.read_to_string(&mut reply);
    assert_eq!(status(&reply), 503, "{reply}");
    assert!(reply.contains("limit of connections"), "{reply}");
    drop(held);
    assert!(
        wait_for(BOUND, || status(&raw_http(
            &addr,
            "/metrics",
            "Accept: */*"
        )) == 200),
        "served again once connections are free"
    );
    assert!(served.stop().success());
}

/// Small protocol slips: a body that is not JSON is 400 with JSON-RPC's
/// parse error; two Host headers are refused; array arguments are invalid
/// params.
#[test]
fn http_protocol_slips_get_the_right_answers() {
    let scratch = Scratch::new("harden-protocol");
    let plugins = plugins_dir(&scratch, &["testbed"]);
    let served = Served::start(&scratch, &plugins);
    let addr = served.addr();

    let reply = post(&addr, None, "{not json");
    assert_eq!(status(&reply), 400, "{reply}");
    assert!(reply.contains("-32700"), "{reply}");

    let mut stream = TcpStream::connect(&addr).expect("connect");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nHost: evil.example\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    assert_eq!(status(&reply), 400, "{reply}");
    assert!(reply.contains("more than one Host"), "{reply}");

    let mut session = Session::open(&addr);
    let reply = session.request("tools/call", json!({"name": "testbed", "arguments": [1]}));
    assert!(reply.contains("-32602"), "{reply}");
    assert!(!reply.contains("-32601"), "{reply}");
    assert!(served.stop().success());
}

/// A compiled entry of one plugin, with its valid checksum, copied over
/// another plugin's entry is not run: the other plugin runs its own code
/// (the entry is rebuilt), and a pin on it means what it says.
#[test]
fn a_moved_compile_cache_entry_is_rebuilt() {
    let scratch = Scratch::new("harden-cache");
    let cache = scratch.dir.join("cache");
    let config = scratch.config(json!({"cache_dir": cache}), json!({}));
    let config = config.display().to_string();
    let run = |plugin: &str, input: &str| {
        let path = support::plugin_path(plugin).display().to_string();
        weir_bounded(&["run", &path, "--config", &config, "--input", input], None)
    };
    let job = r#"{"server": "builtin", "tool": "echo", "arguments": {"message": "x"}, "count": 2}"#;
    assert!(run("hello", "a").status.success());
    let entries = |dir: &Path| -> Vec<std::path::PathBuf> {
        let mut found: Vec<_> = std::fs::read_dir(dir)
            .expect("cache dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .collect();
        found.sort();
        found
    };
    let hello_entry = entries(&cache).pop().expect("hello's entry");
    let fanout = run("fanout", job);
    assert!(fanout.status.success(), "{}", text(&fanout));
    let fanout_entry = entries(&cache)
        .into_iter()
        .find(|p| *p != hello_entry)
        .expect("fanout's entry");
    let sum = |p: &Path| p.with_extension("cwasm.sum");
    std::fs::copy(&hello_entry, &fanout_entry).expect("copy entry");
    std::fs::copy(sum(&hello_entry), sum(&fanout_entry)).expect("copy checksum");

    let after = run("fanout", job);
    let out = text(&after);
    assert!(after.status.success(), "{out}");
    assert!(
        String::from_utf8_lossy(&after.stdout).contains("\"ok\":2"),
        "fanout ran its own code: {out}"
    );
    assert!(!out.contains("Hello,"), "{out}");
    assert!(out.contains("ignoring compile cache entry"), "{out}");
}
