//! Tool aliases: a logical name in the config standing for a server's
//! tool, with default arguments; policy applies to the alias and to the
//! tool behind it; a dangling alias is named wherever it shows.

mod support;

use serde_json::json;
use support::{Scratch, load};
use weir_host::Config;
use weir_host::gateway::Caller;

fn aliases() -> serde_json::Value {
    json!({
        "shout": {"tool": "test/echo", "arguments": {"message": "default"}},
        "say": "test/echo",
        "ghost": "test/no_such_tool",
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_is_callable_with_its_default_arguments() {
    let scratch = Scratch::new("alias-call");
    let host = scratch.host(json!({"aliases": aliases()}));
    let testbed = load(&host, "testbed");
    let run = |input: &'static str| {
        let (host, testbed) = (&host, &testbed);
        async move { host.run(testbed, input).await.expect("runs") }
    };
    assert_eq!(run("call:alias:shout:{}").await, "ok:default");
    assert_eq!(
        run(r#"call:alias:shout:{"message":"mine"}"#).await,
        "ok:mine",
        "the caller's arguments win over the defaults"
    );
    assert_eq!(run(r#"call:alias:say:{"message":"hi"}"#).await, "ok:hi");
    let listed = run("list").await;
    assert!(listed.contains("alias/shout"), "{listed}");
    assert!(
        !listed.contains("alias/ghost"),
        "a dangling alias is not listed: {listed}"
    );
    let ghost = run("call:alias:ghost:{}").await;
    assert!(
        ghost.starts_with("not-found:alias `ghost`:") && ghost.contains("no_such_tool"),
        "{ghost}"
    );
    let unknown = run("call:alias:nope:{}").await;
    assert!(
        unknown.starts_with("not-found:no alias `nope`"),
        "{unknown}"
    );
    assert_eq!(
        scratch.sessions().len(),
        1,
        "aliases use the server's one session"
    );

    let dangling = host.sessions().dangling_aliases(&Caller::new("test")).await;
    assert_eq!(dangling.len(), 1, "{dangling:?}");
    assert_eq!(dangling[0].0, "ghost");
    assert!(
        dangling[0].1.contains("has no tool `no_such_tool`"),
        "{dangling:?}"
    );

    let report = weir_app::doctor::check(&host).await;
    let verdicts: Vec<(String, bool)> = report
        .aliases
        .iter()
        .map(|a| (a.name.clone(), a.ok))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("ghost".to_owned(), false),
            ("say".to_owned(), true),
            ("shout".to_owned(), true)
        ]
    );
    assert!(!report.ok());
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_applies_to_the_alias_and_to_the_tool_behind_it() {
    let scratch = Scratch::new("alias-policy");
    // The alias is granted, the tool behind it is not.
    let host = scratch.host(json!({
        "aliases": aliases(),
        "default_policy": {"allow": ["alias/*"]},
    }));
    let testbed = load(&host, "testbed");
    let out = host
        .run(&testbed, "call:alias:shout:{}")
        .await
        .expect("runs");
    assert!(out.starts_with("denied:alias `shout`:"), "{out}");
    let listed = host.run(&testbed, "list").await.expect("runs");
    assert!(!listed.contains("alias/shout"), "{listed}");
    // The tool granted, the alias not.
    let scratch2 = Scratch::new("alias-policy-2");
    let host2 = scratch2.host(json!({
        "aliases": aliases(),
        "default_policy": {"allow": ["test/*"]},
    }));
    let testbed2 = load(&host2, "testbed");
    let out = host2
        .run(&testbed2, "call:alias:shout:{}")
        .await
        .expect("runs");
    assert!(out.starts_with("denied:"), "{out}");
    host.shutdown().await;
    host2.shutdown().await;
}

#[test]
fn an_alias_to_an_unknown_server_is_a_config_error_naming_it() {
    let dir = std::env::temp_dir();
    let err = Config::from_json(
        &dir.join("weir.json"),
        r#"{"mcpServers": {}, "weir": {"aliases": {"search": "tavily/search"}}}"#,
        |_| None,
    )
    .expect_err("refused");
    let message = err.to_string();
    assert!(
        message.contains("weir.aliases.search")
            && message.contains("server `tavily`, which is not configured"),
        "{message}"
    );
    let err = Config::from_json(
        &dir.join("weir.json"),
        r#"{"mcpServers": {"alias": {"command": "x"}}}"#,
        |_| None,
    )
    .expect_err("refused");
    assert!(err.to_string().contains("reserved"), "{err}");
}
