//! One gate for every tool call: the same rules, and the same audit event,
//! whichever way a call comes in — a plugin's `call-tool`, or an MCP
//! client's call of a passed-through upstream tool. One `weir serve
//! --stdio` process, a real rmcp client, the real test server upstream.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};
use support::serve::{plugins_dir, raw_http};
use support::{Scratch, wait_for};

/// The same rules for the plugins' callers and for the clients' calls.
fn rules() -> Value {
    json!({
        "allow": ["test/*"],
        "calls_per_second": 2,
        "max_argument_bytes": 1000,
        "max_result_bytes": 300,
    })
}

async fn call(client: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> String {
    support::mcp::call_text(client.peer(), tool, args).await
}

/// A metric's value in OpenMetrics text (0 when the series is absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Audit events (`weir::audit`) in the log that came by `via` as `caller`.
fn audited(log: &Mutex<Vec<String>>, caller: &str, via: &str) -> usize {
    let lines = log.lock().expect("log");
    lines
        .iter()
        .filter(|l| {
            l.contains("weir::audit")
                && l.contains(&format!("plugin={caller}"))
                && l.contains(&format!("via=\"{via}\""))
        })
        .count()
}

/// Grant, argument cap, result cap, rate, denial count and audit event:
/// each holds for a passed-through call exactly as for a plugin's call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_through_and_plugin_calls_meet_the_same_rules() {
    let scratch = Scratch::new("gate-same-rules");
    let plugins = plugins_dir(&scratch, &["testbed"]);
    let config = scratch.config(
        json!({
            "expose_upstream_tools": true,
            "default_policy": rules(),
            "plugins": {"testbed": rules()},
        }),
        json!({}),
    );
    let args = ["serve", "--stdio", "--metrics", "127.0.0.1:0", "--config"]
        .map(std::ffi::OsStr::new)
        .into_iter()
        .chain([
            config.as_os_str(),
            "--plugins".as_ref(),
            plugins.as_os_str(),
        ])
        .collect::<Vec<_>>();
    let mut child = support::mcp::spawn_weir(&args, "weir::audit=info,weir=warn");
    let stdout = child.stdout.take().expect("stdout");
    let stdin = child.stdin.take().expect("stdin");
    let log = support::mcp::keep_lines(child.stderr.take().expect("stderr"));
    let client = ().serve((stdout, stdin)).await.expect("initialize");
    let metrics_at = |log: &Mutex<Vec<String>>| {
        log.lock().expect("log").iter().find_map(|l| {
            let at = l.find("metrics at http://")? + "metrics at http://".len();
            Some(l[at..].to_owned())
        })
    };
    assert!(
        wait_for(Duration::from_secs(30), || metrics_at(&log).is_some()),
        "weir serve names its metrics address"
    );
    let metrics_url = metrics_at(&log).expect("the metrics address");

    let long = "x".repeat(400);
    let huge = "y".repeat(2000);
    // Passed through, by an MCP client.
    assert_eq!(
        call(&client, "test.echo", json!({"message": "hi"})).await,
        "hi"
    );
    let over_result = call(&client, "test.echo", json!({"message": long})).await;
    assert!(
        over_result.starts_with("error: denied: the result is")
            && over_result.contains("more than the 300"),
        "{over_result}"
    );
    let over_args = call(&client, "test.echo", json!({"message": huge})).await;
    assert!(
        over_args.contains("denied: arguments are") && over_args.contains("more than the 1000"),
        "{over_args}"
    );
    let ungranted = call(&client, "builtin.echo", json!({"message": "x"})).await;
    assert!(
        ungranted.contains("`builtin/echo` is not granted"),
        "{ungranted}"
    );
    // Six at once, at 2 per second with a burst of 2: most must wait.
    let burst = futures::future::join_all(
        (0..6).map(|i| call(&client, "test.echo", json!({"message": format!("b{i}")}))),
    )
    .await;
    assert_eq!(burst, ["b0", "b1", "b2", "b3", "b4", "b5"]);

    // The same, by a plugin.
    let by_plugin = |input: String| {
        let client = &client;
        async move { call(client, "testbed", json!({"input": input})).await }
    };
    assert_eq!(
        by_plugin(r#"call:test:echo:{"message":"hi"}"#.into()).await,
        "ok:hi"
    );
    let over_result = by_plugin(format!(r#"call:test:echo:{{"message":"{long}"}}"#)).await;
    assert!(
        over_result.starts_with("denied:the result is")
            && over_result.contains("more than the 300"),
        "{over_result}"
    );
    let over_args = by_plugin(format!(r#"call:test:echo:{{"message":"{huge}"}}"#)).await;
    assert!(
        over_args.starts_with("denied:arguments are") && over_args.contains("more than the 1000"),
        "{over_args}"
    );
    let ungranted = by_plugin(r#"call:builtin:echo:{"message":"x"}"#.into()).await;
    assert!(
        ungranted.contains("`builtin/echo` is not granted"),
        "{ungranted}"
    );
    assert_eq!(by_plugin("flood:6".into()).await, "ok=6 denied=0 other=0");

    let (addr, path) = metrics_url.split_once('/').expect("url");
    let metrics = raw_http(addr, &format!("/{path}"), "Accept: */*");
    for caller in ["mcp-client", "testbed"] {
        assert_eq!(
            metric(
                &metrics,
                &format!("weir_plugin_denials_total{{plugin=\"{caller}\"}}")
            ),
            3.0,
            "{caller}: result, arguments, grant\n{metrics}"
        );
        // 8 calls took a turn at 2/s with a burst of 2: 6 waited, give or
        // take what a slow machine refilled meanwhile.
        let waits = metric(
            &metrics,
            &format!("weir_plugin_rate_waits_total{{plugin=\"{caller}\"}}"),
        );
        assert!(waits >= 3.0, "{caller}: {waits} calls waited\n{metrics}");
    }
    // One audit event per call, on either path.
    let all_audited = wait_for(Duration::from_secs(30), || {
        audited(&log, "mcp-client", "pass-through") == 10
            && audited(&log, "testbed", "call-tool") == 10
    });
    assert!(
        all_audited,
        "pass-through {} and plugin {} audit events, 10 each expected; the log:\n{}",
        audited(&log, "mcp-client", "pass-through"),
        audited(&log, "testbed", "call-tool"),
        log.lock().expect("log").join("\n")
    );
    client.cancel().await.expect("close");
}
