//! Secrets stay secret: a token planted in a `${VAR}`, a URL's query and
//! userinfo, a header and a server's environment appears in no output of
//! weir — doctor, list, run (its errors, its `-vv` log, its recording),
//! inspect, the status page and the metrics of `weir serve`.

mod support;

use std::ffi::OsStr;
use std::path::Path;

use serde_json::json;
use support::serve::{Served, Session, plugins_dir, raw_http};
use support::{Scratch, plugin_path, weir_env};

const TOKEN: &str = "planted-token-123";
const URL_KEY: &str = "SECRETKEY99";
const PASSWORD: &str = "hunter2pass";
const ENV_VALUE: &str = "written-out-api-key-777";

/// The servers holding the planted secrets: a remote one nothing answers
/// (its URL carries a key and a password, its header the token) and a
/// stdio one that cannot start (the token in its args, a key in its env).
fn secret_servers() -> serde_json::Value {
    json!({
        "remote": {
            "url": format!("http://user:{PASSWORD}@127.0.0.1:9/mcp/?tavilyApiKey={URL_KEY}"),
            "headers": {"Authorization": "Bearer ${TOK}"},
        },
        "local": {
            "command": "/nonexistent/mcp-server",
            "args": ["--token", "${TOK}"],
            "env": {"API_KEY": ENV_VALUE},
        },
    })
}

/// No planted secret in `text`.
fn assert_clean(what: &str, text: &str) {
    for secret in [TOKEN, URL_KEY, PASSWORD, ENV_VALUE] {
        assert!(
            !text.contains(secret),
            "{what} shows the planted secret {secret}:\n{text}"
        );
    }
}

/// [`assert_clean`], and no Rust type names either: what a person reads
/// without asking for the debug log.
fn assert_plain(what: &str, text: &str) {
    assert_clean(what, text);
    assert!(
        !text.contains("rmcp::"),
        "{what} names rmcp's types:\n{text}"
    );
}

fn output_of(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn planted_secrets_appear_in_no_output() {
    let scratch = Scratch::new("secrets");
    let config = scratch.config(json!({}), secret_servers());
    let plugins = plugins_dir(&scratch, &["testbed"]);
    let env: &[(&str, &OsStr)] = &[("TOK", OsStr::new(TOKEN))];

    // doctor: the table shows the command line as written and the URL
    // with its secrets masked; the failure is a sentence.
    let doctor = output_of(&weir_env(&["doctor", "--config", s(&config)], env));
    assert_plain("weir doctor", &doctor);
    assert!(doctor.contains("--token ${TOK}"), "{doctor}");
    assert!(
        doctor.contains("http://***:***@127.0.0.1:9/mcp/?tavilyApiKey=***"),
        "{doctor}"
    );
    assert!(
        doctor.contains("cannot connect to 127.0.0.1:9: connection refused"),
        "{doctor}"
    );

    let list = output_of(&weir_env(&["list", "--config", s(&config)], env));
    assert_plain("weir list", &list);
    assert!(list.contains("remote"), "{list}");
    let list = output_of(&weir_env(&["-vv", "list", "--config", s(&config)], env));
    assert_clean("weir -vv list", &list);

    // A run whose calls fail on both servers, recorded, with the debug log.
    let recording = scratch.dir.join("secrets.replay.jsonl");
    for server in ["remote", "local"] {
        let run = output_of(&weir_env(
            &[
                "-vv",
                "run",
                "testbed",
                "--config",
                s(&config),
                "--plugins",
                s(&plugins),
                "--input",
                &format!("call:{server}:any:{{}}"),
                "--record",
                s(&recording),
            ],
            env,
        ));
        assert_clean(&format!("weir -vv run (a call to {server})"), &run);
        assert!(run.contains("unavailable:"), "{run}");
        let recorded = std::fs::read_to_string(&recording).expect("recording");
        assert_clean("the recording", &recorded);
    }

    let testbed = plugin_path("testbed");
    let inspect = output_of(&weir_env(
        &["inspect", s(&testbed), "--config", s(&config)],
        env,
    ));
    assert_clean("weir inspect", &inspect);

    // weir serve: its log, its status page, its metrics, after calls that
    // reached (and failed on) both servers.
    let served = Served::start_with_env(&scratch, &plugins, json!({}), secret_servers(), env);
    let mut session = Session::open(&served.addr());
    for server in ["remote", "local"] {
        let reply = session.request(
            "tools/call",
            json!({"name": "testbed", "arguments": {"input": format!("call:{server}:any:{{}}")}}),
        );
        assert!(reply.contains("unavailable:"), "{reply}");
        assert_plain("a tools/call answer", &reply);
    }
    let page = raw_http(&served.addr(), "/", "Accept: text/html");
    assert_plain("the status page", &page);
    let metrics = raw_http(&served.addr(), "/metrics", "Accept: */*");
    assert_clean("/metrics", &metrics);
    let log = served.log();
    assert_clean("weir serve's log", &log);
    served.stop();
}
