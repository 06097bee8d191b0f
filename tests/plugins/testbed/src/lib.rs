//! A plugin for weir's tests. Its input picks what it does: behave (make
//! verified calls), break (loop, allocate, panic) or probe the sandbox
//! (sockets, files, environment). Each probe reports what it saw, so a test
//! asserts on it.

use std::io::Write;

use serde_json::{Value, json};
use weir_guest::{Call, CallError, agent, call_tool, call_tool_json, call_tools, list_tools};

#[agent]
fn run(input: &str) -> Result<String, String> {
    let (mode, arg) = input.split_once(':').unwrap_or((input, ""));
    match mode {
        "echo" => echo(arg),
        "tolerant" => tolerant(arg),
        "call" => Ok(call(arg)),
        "sleep" => {
            let ms: u64 = arg.parse().map_err(|_| "sleep:<ms>")?;
            Ok(call_result(call_tool(
                "test",
                "sleep",
                &json!({ "ms": ms }),
            )))
        }
        "list" => {
            let names: Vec<String> = list_tools()
                .into_iter()
                .map(|t| format!("{}/{}", t.server, t.name))
                .collect();
            Ok(names.join(","))
        }
        "tcp" => Ok(tcp()),
        "raw-sockets" => Ok(raw_sockets()),
        "fs" => Ok(fs()),
        "env" => Ok(format!(
            "vars={} args={}",
            std::env::vars().count(),
            std::env::args().count()
        )),
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "panic" => panic!("boom on request"),
        "print" => {
            let n: usize = arg.parse().map_err(|_| "print:<bytes>")?;
            let mut chunk = "x".repeat(64 << 10);
            chunk.push('\n');
            let mut out = std::io::stdout();
            for _ in 0..n / chunk.len() {
                out.write_all(chunk.as_bytes()).map_err(|e| e.to_string())?;
            }
            Ok("printed".into())
        }
        "fail" => Err(format!("failing on request: {arg}")),
        "flood" => {
            let n: u64 = arg.parse().map_err(|_| "flood:<n>")?;
            let (mut ok, mut denied, mut other) = (0u64, 0u64, 0u64);
            for i in 0..n {
                match call_tool_json("test", "echo", &format!("{{\"message\":\"{i}\"}}")) {
                    Ok(_) => ok += 1,
                    Err(CallError::Denied(_)) => denied += 1,
                    Err(_) => other += 1,
                }
            }
            Ok(format!("ok={ok} denied={denied} other={other}"))
        }
        "bigargs" => {
            let mb: usize = arg.parse().map_err(|_| "bigargs:<mb>")?;
            let args = format!("{{\"message\":\"{}\"}}", "x".repeat(mb << 20));
            Ok(call_result(call_tool_json("test", "echo", &args)))
        }
        "badutf8" => {
            let bytes = std::hint::black_box(b"{\"message\":\"\xff\xfe\"}".to_vec());
            // Deliberately not UTF-8, breaking `str`'s contract on purpose:
            // the host must refuse what the SDK would never send.
            let text = unsafe { std::str::from_utf8_unchecked(&bytes) };
            Ok(call_result(call_tool_json("test", "echo", text)))
        }
        "scratch" => Ok(scratch()),
        "batch" => batch(arg),
        "recurse" => Ok(recurse(0).to_string()),
        "bigresult" => {
            let mb: usize = arg.parse().map_err(|_| "bigresult:<mb>")?;
            Ok("x".repeat(mb << 20))
        }
        "exercise" => exercise(arg),
        other => Err(format!("unknown mode `{other}`")),
    }
}

/// `exercise:<server>[:<calls>]`: what a generic client does with a server
/// — the conformance suite's client scenarios run it. With `calls` (a JSON
/// list of `{"name", "arguments"}`), makes those calls; without, calls every
/// tool `server` lists, with arguments made up from its schema (each
/// required property a value of its type). One line per call; fails if any
/// call did.
fn exercise(arg: &str) -> Result<String, String> {
    let (server, calls) = arg.split_once(':').unwrap_or((arg, ""));
    let calls: Vec<(String, Value)> = if calls.is_empty() {
        list_tools()
            .into_iter()
            .filter(|t| t.server == server)
            .map(|t| {
                let arguments = made_up_arguments(&t.input_schema);
                (t.name, arguments)
            })
            .collect()
    } else {
        let given: Vec<Value> =
            serde_json::from_str(calls).map_err(|e| format!("calls are not a JSON list: {e}"))?;
        given
            .into_iter()
            .map(|c| {
                let name = c["name"].as_str().unwrap_or_default().to_owned();
                (name, c.get("arguments").cloned().unwrap_or(json!({})))
            })
            .collect()
    };
    let mut lines = Vec::new();
    let mut failed = 0;
    for (name, arguments) in calls {
        let line = match call_tool(server, &name, &arguments) {
            Ok(r) if r.is_error => {
                failed += 1;
                format!("{name}: tool-error: {}", r.text())
            }
            Ok(r) => format!("{name}: ok: {}", r.text()),
            Err(e) => {
                failed += 1;
                format!("{name}: {e}")
            }
        };
        lines.push(line);
    }
    let report = lines.join("\n");
    if failed > 0 {
        Err(format!("{failed} call(s) failed:\n{report}"))
    } else {
        Ok(report)
    }
}

/// Arguments for a schema: each required property a value of its type.
fn made_up_arguments(schema: &Value) -> Value {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut arguments = serde_json::Map::new();
    for name in required {
        let property = &schema["properties"][name];
        let value = if let Some(first) = property["enum"].as_array().and_then(|e| e.first()) {
            first.clone()
        } else {
            match property["type"].as_str().unwrap_or("string") {
                "number" | "integer" => json!(1),
                "boolean" => json!(true),
                "array" => json!([]),
                "object" => made_up_arguments(property),
                "null" => Value::Null,
                _ => json!("x"),
            }
        };
        arguments.insert(name.to_owned(), value);
    }
    Value::Object(arguments)
}

/// `echo:<tag>:<n>`: n calls to `test/echo`, each reply checked.
fn echo(arg: &str) -> Result<String, String> {
    let (tag, n) = arg.split_once(':').ok_or("echo:<tag>:<n>")?;
    let n: u32 = n.parse().map_err(|_| "echo:<tag>:<n>")?;
    for i in 0..n {
        let message = format!("{tag}-{i}");
        let reply =
            call_tool("test", "echo", &json!({ "message": message })).map_err(|e| e.to_string())?;
        if reply.text() != message {
            return Err(format!(
                "call {i}: sent {message:?}, got {:?}",
                reply.text()
            ));
        }
    }
    Ok(format!("{n} ok"))
}

/// `tolerant:<tag>:<n>`: n calls to `test/echo` while the server may be
/// dying: each reply must be right or an `unavailable` error; anything else
/// fails the run. Returns `ok=K unavailable=U`.
fn tolerant(arg: &str) -> Result<String, String> {
    let (tag, n) = arg.split_once(':').ok_or("tolerant:<tag>:<n>")?;
    let n: u32 = n.parse().map_err(|_| "tolerant:<tag>:<n>")?;
    let (mut ok, mut unavailable) = (0, 0);
    for i in 0..n {
        let message = format!("{tag}-{i}");
        match call_tool("test", "echo", &json!({ "message": message })) {
            Ok(reply) if !reply.is_error && reply.text() == message => ok += 1,
            Ok(reply) => return Err(format!("call {i}: sent {message:?}, got {reply:?}")),
            Err(CallError::Unavailable(_)) => unavailable += 1,
            Err(other) => return Err(format!("call {i}: {other}")),
        }
    }
    Ok(format!("ok={ok} unavailable={unavailable}"))
}

/// `call:<server>:<tool>:<arguments as raw text>`.
fn call(arg: &str) -> String {
    let mut parts = arg.splitn(3, ':');
    let server = parts.next().unwrap_or("");
    let tool = parts.next().unwrap_or("");
    let arguments = parts.next().unwrap_or("");
    call_result(call_tool_json(server, tool, arguments))
}

fn call_result(result: Result<weir_guest::ToolResult, CallError>) -> String {
    match result {
        Ok(r) if r.is_error => format!("tool-error:{}", r.text()),
        Ok(r) => format!("ok:{}", r.text()),
        Err(CallError::Denied(m)) => format!("denied:{m}"),
        Err(CallError::NotFound(m)) => format!("not-found:{m}"),
        Err(CallError::InvalidArguments(m)) => format!("invalid-arguments:{m}"),
        Err(CallError::Unavailable(m)) => format!("unavailable:{m}"),
        Err(CallError::Timeout) => "timeout".to_owned(),
        Err(CallError::Protocol(m)) => format!("protocol-error:{m}"),
    }
}

fn tcp() -> String {
    use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
    let tcp = match TcpStream::connect("127.0.0.1:80") {
        Ok(_) => "CONNECTED".to_owned(),
        Err(e) => format!("error({e})"),
    };
    let udp = match UdpSocket::bind("127.0.0.1:0").and_then(|s| s.send_to(b"x", "127.0.0.1:53")) {
        Ok(_) => "SENT".to_owned(),
        Err(e) => format!("error({e})"),
    };
    let dns = match ("localhost", 80).to_socket_addrs() {
        Ok(addrs) => format!("RESOLVED({})", addrs.count()),
        Err(e) => format!("error({e})"),
    };
    json_string(json!({ "tcp": tcp, "udp": udp, "dns": dns }))
}

fn fs() -> String {
    let read = match std::fs::read("/etc/passwd") {
        Ok(bytes) => format!("READ({} bytes)", bytes.len()),
        Err(e) => format!("error({e})"),
    };
    let list = match std::fs::read_dir("/") {
        Ok(entries) => format!("LISTED({})", entries.count()),
        Err(e) => format!("error({e})"),
    };
    let write = match std::fs::write("/tmp/weir-escape", b"x") {
        Ok(()) => "WROTE".to_owned(),
        Err(e) => format!("error({e})"),
    };
    let cwd = match std::env::current_dir() {
        Ok(p) => format!("CWD({})", p.display()),
        Err(e) => format!("error({e})"),
    };
    json_string(json!({ "read": read, "list": list, "write": write, "cwd": cwd }))
}

fn json_string(v: Value) -> String {
    v.to_string()
}

/// Recurses until the stack overflows.
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    let frame = std::hint::black_box([depth; 64]);
    recurse(depth + 1) + frame[0]
}

/// Uses `/scratch` and tries to leave it.
fn scratch() -> String {
    let outcome = |r: std::io::Result<String>| match r {
        Ok(v) => v,
        Err(e) => format!("error({e})"),
    };
    let write = outcome(std::fs::write("/scratch/note.txt", b"kept").map(|()| "ok".into()));
    let read = outcome(std::fs::read_to_string("/scratch/note.txt"));
    let up = outcome(
        std::fs::read_to_string("/scratch/../etc/passwd").map(|t| format!("READ({})", t.len())),
    );
    let environ =
        outcome(std::fs::read("/proc/self/environ").map(|t| format!("READ({})", t.len())));
    let dotdot =
        outcome(std::fs::read_dir("/scratch/..").map(|d| format!("LISTED({})", d.count())));
    json_string(
        json!({ "write": write, "read": read, "up": up, "environ": environ, "dotdot": dotdot }),
    )
}

/// Knocks on `wasi:sockets` directly, as code that skips `std` would.
#[cfg(target_arch = "wasm32")]
fn raw_sockets() -> String {
    use wasip2::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    use wasip2::sockets::{instance_network, ip_name_lookup, tcp_create_socket, udp_create_socket};
    let net = instance_network::instance_network();
    let loopback = |port| {
        IpSocketAddress::Ipv4(Ipv4SocketAddress {
            port,
            address: (127, 0, 0, 1),
        })
    };
    let tcp = match tcp_create_socket::create_tcp_socket(IpAddressFamily::Ipv4) {
        Err(e) => format!("error({e:?})"),
        Ok(socket) => match socket.start_connect(&net, loopback(80)) {
            Err(e) => format!("error({e:?})"),
            Ok(()) => {
                socket.subscribe().block();
                match socket.finish_connect() {
                    Ok(_) => "CONNECTED".to_owned(),
                    Err(e) => format!("error({e:?})"),
                }
            }
        },
    };
    let udp = match udp_create_socket::create_udp_socket(IpAddressFamily::Ipv4) {
        Err(e) => format!("error({e:?})"),
        Ok(socket) => match socket.start_bind(&net, loopback(0)) {
            Err(e) => format!("error({e:?})"),
            Ok(()) => "BOUND".to_owned(),
        },
    };
    let dns = match ip_name_lookup::resolve_addresses(&net, "localhost") {
        Err(e) => format!("error({e:?})"),
        Ok(stream) => {
            stream.subscribe().block();
            match stream.resolve_next_address() {
                Ok(Some(_)) => "RESOLVED".to_owned(),
                Ok(None) => "error(no address)".to_owned(),
                Err(e) => format!("error({e:?})"),
            }
        }
    };
    json_string(json!({ "tcp": tcp, "udp": udp, "dns": dns }))
}

#[cfg(not(target_arch = "wasm32"))]
fn raw_sockets() -> String {
    "only meaningful in wasm".to_owned()
}

/// `batch:N:MS`: N calls of the test server's `nap` (MS ms each, the
/// i-th asking for MS + i so results are told apart), in one `call-tools`;
/// the outcomes in order, comma-separated.
fn batch(arg: &str) -> Result<String, String> {
    let (n, ms) = arg.split_once(':').ok_or("batch:<n>:<ms>")?;
    let n: u64 = n.parse().map_err(|_| "batch:<n>:<ms>")?;
    let ms: u64 = ms.parse().map_err(|_| "batch:<n>:<ms>")?;
    let calls = (0..n)
        .map(|i| Call::new("test", "nap", &json!({ "ms": ms + i })))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let outcomes: Vec<String> = call_tools(&calls).into_iter().map(call_result).collect();
    Ok(outcomes.join(","))
}
