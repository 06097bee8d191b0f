//! `call-tools`: one plugin submitting several calls at once. The test
//! server's `nap` logs how many naps were in flight as each started, so
//! the overlap (and the cap on it) is counted, not timed.

mod support;

use serde_json::json;
use support::{Scratch, load};
use weir_host::{HostRunError, RunError};

fn expected(n: u64, ms: u64) -> String {
    (0..n)
        .map(|i| format!("ok:napped {}", ms + i))
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_at_once_and_answers_in_order() {
    let scratch = Scratch::new("batch");
    let host = scratch.host(json!({}));
    let testbed = load(&host, "testbed");
    let out = host.run(&testbed, "batch:10:300").await.expect("runs");
    assert_eq!(out, expected(10, 300), "results in request order");
    assert_eq!(
        scratch.max_nap_concurrency(),
        10,
        "all ten calls were in flight together"
    );
    assert_eq!(scratch.sessions().len(), 1, "on the one shared session");
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_respects_the_policy_concurrency_cap() {
    let scratch = Scratch::new("batch-cap");
    let host = scratch.host(json!({
        "default_policy": {"allow": ["*/*"], "max_parallel_calls": 3}
    }));
    let testbed = load(&host, "testbed");
    let out = host.run(&testbed, "batch:10:200").await.expect("runs");
    assert_eq!(out, expected(10, 200));
    assert_eq!(
        scratch.max_nap_concurrency(),
        3,
        "overlapping, but never more than max_parallel_calls"
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_of_a_batch_counts_against_the_budget() {
    let scratch = Scratch::new("batch-budget");
    let host = scratch.host(json!({
        "default_policy": {"allow": ["*/*"], "max_calls_per_run": 5}
    }));
    let testbed = load(&host, "testbed");
    // Five allowed, the sixth denied, the seventh is flooding: the run ends.
    let err = host
        .run(&testbed, "batch:10:10")
        .await
        .expect_err("the run is stopped");
    assert_eq!(err, HostRunError::Run(RunError::CallBudget(5)));
    assert_eq!(
        scratch.max_nap_concurrency(),
        0,
        "nothing was sent: the batch is checked before any call goes out"
    );
    // Within the budget, a denied call is an error in its slot, in order.
    let scratch2 = Scratch::new("batch-budget-2");
    let host2 = scratch2.host(json!({
        "default_policy": {"allow": ["*/*"], "max_calls_per_run": 2}
    }));
    let testbed2 = load(&host2, "testbed");
    let out = host2.run(&testbed2, "batch:3:10").await.expect("runs");
    let parts: Vec<&str> = out.split(',').collect();
    assert_eq!(parts[..2], ["ok:napped 10", "ok:napped 11"]);
    assert!(parts[2].starts_with("denied:"), "{out}");
    host.shutdown().await;
    host2.shutdown().await;
}
