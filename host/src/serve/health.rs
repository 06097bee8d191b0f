//! `/healthz` and `/readyz` of `weir serve --http`, for a load balancer or
//! Kubernetes' probes: alive (the process answers) and ready (it is not
//! stopping, its plugins are loaded — the listener opens only after the
//! first scan — and every upstream server is reachable).
//!
//! "Reachable" costs no more sessions than calls would open: a shared
//! server with a session open is reachable; one without is started (the
//! session calls will then use); a server whose sessions are per plugin is
//! judged by its circuit alone (starting one for the probe would be a
//! session no plugin uses).

use std::time::Duration;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::config::Scope;
use crate::gateway::Caller;
use crate::runtime::Host;

/// Who the probe's starts are made for.
const PROBE: &str = "weir-readyz";

/// Whether `host` is ready to serve, and per server why (not).
pub async fn readiness(host: &Host, stopping: bool) -> (bool, Value) {
    let sessions = host.sessions();
    let caller = Caller::new(PROBE);
    let stats = sessions.stats();
    let checks = stats.iter().map(|s| {
        let caller = &caller;
        async move {
            let scope = host.config().servers.get(&s.name).map(|c| c.scope);
            let verdict = if s.circuit_open {
                Err("its starts keep failing (circuit open)".to_owned())
            } else if !s.session_ages.is_empty() || scope == Some(Scope::Plugin) {
                Ok(())
            } else {
                let limit = host.config().sessions.startup_timeout + Duration::from_secs(1);
                match tokio::time::timeout(limit, sessions.server_tools(caller, &s.name)).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no session within {:.0} s", limit.as_secs_f64())),
                }
            };
            (s.name.clone(), verdict)
        }
    });
    let verdicts = join_all(checks).await;
    let ready = !stopping && verdicts.iter().all(|(_, v)| v.is_ok());
    let servers: serde_json::Map<String, Value> = verdicts
        .into_iter()
        .map(|(name, v)| (name, json!(v.err().unwrap_or_else(|| "ok".into()))))
        .collect();
    let mut report = json!({"ready": ready, "servers": servers});
    if stopping {
        report["stopping"] = json!(true);
    }
    (ready, report)
}
