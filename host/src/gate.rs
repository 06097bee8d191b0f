//! One gate for every tool call. However a call comes in — a plugin's
//! `call-tool`, one call of a `call-tools` batch, an MCP client's call of a
//! passed-through upstream tool — it passes here, under the caller's
//! [`Policy`]:
//!
//! 1. [`Gate::admit`]: grant, call budget, argument size and shape, alias
//!    (whose real tool must be granted too), then the caller's rate;
//! 2. [`Gate::send`]: the call on the gateway, its result capped;
//! 3. [`Gate::audit`]: the one audit event, and the denial count.
//!
//! The decisions are [`policy`](crate::policy)'s pure functions; this is
//! the one place that applies them, so a rule holds on every path or on
//! none. Knows nothing of wasm or of rmcp.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::fleet::Fleet;
use crate::gateway::{ALIAS_SERVER, Arguments, CallError, Caller, ToolGateway, ToolInfo};
use crate::metrics::{GateTallies, Metrics};
use crate::policy::{Policy, RateLimiter};

/// The standing rules of one caller (a plugin, or the MCP clients of
/// `weir serve`), shared by all its runs: its policy, its call-rate bucket
/// and its counters. The rate is the caller's, not a run's.
pub struct Rules {
    caller: Caller,
    policy: Arc<Policy>,
    rate: Option<Mutex<RateLimiter>>,
    /// Where the rate is kept fleet-wide, when it is (`weir.redis`).
    fleet: Fleet,
    tallies: GateTallies,
}

impl Rules {
    /// The rules `name`'s calls go through, counted in `metrics`, its rate
    /// this process's alone.
    pub fn new(name: &str, policy: Policy, metrics: &Metrics) -> Arc<Self> {
        Self::shared(name, policy, metrics, Fleet::local())
    }

    /// [`Rules::new`], the rate kept across `fleet` (falling back to this
    /// process's own bucket while the fleet cannot say).
    pub fn shared(name: &str, policy: Policy, metrics: &Metrics, fleet: Fleet) -> Arc<Self> {
        let rate = policy
            .calls_per_second
            .map(|r| Mutex::new(RateLimiter::new(r, now())));
        Arc::new(Self {
            caller: Caller {
                plugin: Arc::from(name),
                call_timeout: policy.call_timeout,
            },
            tallies: metrics.gate_tallies(name),
            policy: Arc::new(policy),
            rate,
            fleet,
        })
    }

    /// The policy the caller's calls are checked against.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// The caller, as the session manager sees it (name, call timeout).
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Waits for the caller's turn under its `calls_per_second`: over the
    /// rate a call waits rather than fails (the caller's deadline bounds
    /// the wait).
    async fn take_turn(&self) {
        let Some(rate) = &self.rate else { return };
        if let Some(per_second) = self.policy.calls_per_second
            && let Some(wait) = self
                .fleet
                .reserve_call(&self.caller.plugin, per_second)
                .await
        {
            if !wait.is_zero() {
                self.tallies.rate_waits.inc();
                tokio::time::sleep(wait).await;
            }
            return;
        }
        let mut waited = false;
        loop {
            let wait = match rate.lock() {
                Ok(mut bucket) => bucket.take(now()),
                Err(_) => Ok(()),
            };
            match wait {
                Ok(()) => break,
                Err(pause) => {
                    waited = true;
                    tokio::time::sleep(pause).await;
                }
            }
        }
        if waited {
            self.tallies.rate_waits.inc();
        }
    }
}

/// The rate's clock: tokio's, so that paused time in tests moves it too.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// How a call came in: the `via` of its audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A plugin's `call-tool`.
    CallTool,
    /// One call of a plugin's `call-tools` batch.
    CallTools,
    /// An MCP client's call of a passed-through upstream tool.
    PassThrough,
    /// An MCP client's call of a `weir serve` tool its token's scopes do
    /// not grant (refused before anything runs).
    Client,
}

impl Via {
    /// The name the audit trail records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CallTool => "call-tool",
            Self::CallTools => "call-tools",
            Self::PassThrough => "pass-through",
            Self::Client => "client",
        }
    }
}

/// A call the gate let through, ready to go out.
pub struct Admitted {
    server: String,
    tool: String,
    arguments: Option<Arguments>,
    /// The alias it was called by, if any (for error messages).
    alias: Option<String>,
}

/// A caller's rules in front of the gateway its calls go to. Cheap to
/// clone.
#[derive(Clone)]
pub struct Gate {
    rules: Arc<Rules>,
    gateway: Arc<dyn ToolGateway>,
}

impl Gate {
    /// `rules` applied to calls bound for `gateway`.
    pub fn new(rules: Arc<Rules>, gateway: Arc<dyn ToolGateway>) -> Self {
        Self { rules, gateway }
    }

    /// The rules applied.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Admits the `made`-th call of a run (a pass-through call is a run of
    /// one) to `server/tool` with `arguments` (JSON text): grant, budget,
    /// argument size, alias, argument shape, then the caller's turn under
    /// its rate. A refusal says why, in words a model can act on.
    pub async fn admit(
        &self,
        made: u64,
        server: &str,
        tool: &str,
        arguments: &str,
    ) -> Result<Admitted, CallError> {
        let policy = &self.rules.policy;
        policy
            .check_call(server, tool, made, arguments.len())
            .map_err(CallError::Denied)?;
        // An alias: the real tool must be granted too, and its default
        // arguments fill in what the caller left out.
        let alias = if server == ALIAS_SERVER {
            let alias = self.gateway.alias(tool).ok_or_else(|| {
                CallError::NotFound(format!("no alias `{tool}` is configured (weir.aliases)"))
            })?;
            policy
                .check_tool(&alias.server, &alias.tool)
                .map_err(|why| CallError::Denied(format!("alias `{tool}`: {why}")))?;
            Some(alias)
        } else {
            None
        };
        let arguments = Arguments::parse(arguments)?;
        self.rules.take_turn().await;
        Ok(match alias {
            // Only an alias with defaults reads the arguments, to merge
            // them over its defaults; every other call carries the text.
            Some(alias) if !alias.arguments.is_empty() => {
                let mut merged = alias.arguments;
                merged.extend(
                    arguments
                        .as_ref()
                        .map(Arguments::to_map)
                        .unwrap_or_default(),
                );
                Admitted {
                    server: alias.server,
                    tool: alias.tool,
                    arguments: Some(Arguments::from_map(&merged)?),
                    alias: Some(tool.to_owned()),
                }
            }
            Some(alias) => Admitted {
                server: alias.server,
                tool: alias.tool,
                arguments,
                alias: Some(tool.to_owned()),
            },
            None => Admitted {
                server: server.to_owned(),
                tool: tool.to_owned(),
                arguments,
                alias: None,
            },
        })
    }

    /// Makes an admitted call; its result comes back only within the
    /// caller's `max_result_bytes`.
    pub async fn send(&self, call: Admitted) -> Result<String, CallError> {
        let result = self
            .gateway
            .call_tool(&self.rules.caller, &call.server, &call.tool, call.arguments)
            .await
            .map_err(|e| match (&call.alias, e) {
                (Some(alias), CallError::NotFound(m)) => {
                    CallError::NotFound(format!("alias `{alias}`: {m}"))
                }
                (_, e) => e,
            })?;
        let max = self.rules.policy.max_result_bytes;
        if result.len() > max {
            return Err(CallError::Denied(format!(
                "the result is {} bytes, more than the {max} allowed (max_result_bytes)",
                result.len()
            )));
        }
        Ok(result)
    }

    /// [`admit`](Gate::admit), [`send`](Gate::send) and
    /// [`audit`](Gate::audit): one call, start to end.
    pub async fn call(
        &self,
        via: Via,
        made: u64,
        server: &str,
        tool: &str,
        arguments: &str,
    ) -> Result<String, CallError> {
        self.call_within(None, via, made, server, tool, arguments)
            .await
    }

    /// [`call`](Gate::call), the whole of it (the wait for the rate
    /// included) bounded by `deadline`: a call that is a run of its own
    /// (a pass-through call) has its deadline here, and a call cut off by
    /// it is audited as `timeout`.
    pub async fn call_within(
        &self,
        deadline: Option<std::time::Duration>,
        via: Via,
        made: u64,
        server: &str,
        tool: &str,
        arguments: &str,
    ) -> Result<String, CallError> {
        let started = Instant::now();
        let call = async {
            match self.admit(made, server, tool, arguments).await {
                Ok(call) => self.send(call).await,
                Err(e) => Err(e),
            }
        };
        let result = match deadline {
            Some(deadline) => tokio::time::timeout(deadline, call)
                .await
                .unwrap_or(Err(CallError::Timeout)),
            None => call.await,
        };
        self.audit(via, server, tool, arguments.len(), &result, started);
        result
    }

    /// The audit trail and the denial count: every call, allowed or not.
    /// Sizes only, never the arguments themselves: they may hold secrets.
    pub fn audit(
        &self,
        via: Via,
        server: &str,
        tool: &str,
        bytes_in: usize,
        result: &Result<String, CallError>,
        started: Instant,
    ) {
        let denied = matches!(result, Err(CallError::Denied(_)));
        if denied {
            self.rules.tallies.denials.inc();
        }
        tracing::info!(
            target: "weir::audit",
            plugin = %self.rules.caller.plugin,
            via = via.as_str(),
            server = %server,
            tool = %tool,
            allowed = !denied,
            outcome = result.as_ref().map_or_else(CallError::kind, |_| "ok"),
            error = result.as_ref().err().map(tracing::field::display),
            bytes_in,
            bytes_out = result.as_ref().map_or(0, String::len),
            micros = started.elapsed().as_micros() as u64,
            "call-tool"
        );
    }

    /// The tools the caller may call: those its policy grants, and an alias
    /// only if the tool behind it is granted too.
    pub async fn list_tools(&self) -> Vec<ToolInfo> {
        let policy = &self.rules.policy;
        self.gateway
            .list_tools(&self.rules.caller)
            .await
            .into_iter()
            .filter(|t| policy.check_tool(&t.server, &t.name).is_ok())
            .filter(|t| {
                t.server != ALIAS_SERVER
                    || self
                        .gateway
                        .alias(&t.name)
                        .is_some_and(|a| policy.check_tool(&a.server, &a.tool).is_ok())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::Alias;
    use crate::policy::PolicySpec;
    use futures::FutureExt;
    use futures::future::BoxFuture;

    /// A gateway that answers every call with `{"echo": ARGS}` padded to
    /// `pad` bytes, and knows one alias.
    struct Echo {
        pad: usize,
        seen: Mutex<Vec<(String, String, Option<Arguments>)>>,
    }

    impl ToolGateway for Echo {
        fn call_tool<'a>(
            &'a self,
            _caller: &'a Caller,
            server: &'a str,
            tool: &'a str,
            arguments: Option<Arguments>,
        ) -> BoxFuture<'a, Result<String, CallError>> {
            if let Ok(mut seen) = self.seen.lock() {
                seen.push((server.into(), tool.into(), arguments));
            }
            let answer = format!("{{\"pad\":\"{}\"}}", "x".repeat(self.pad));
            async move { Ok(answer) }.boxed()
        }

        fn list_tools<'a>(&'a self, _caller: &'a Caller) -> BoxFuture<'a, Vec<ToolInfo>> {
            let tool = |server: &str, name: &str| ToolInfo {
                server: server.into(),
                name: name.into(),
                description: None,
                input_schema: "{}".into(),
                output_schema: None,
            };
            async move {
                vec![
                    tool("s", "a"),
                    tool("s", "b"),
                    tool("t", "a"),
                    tool(ALIAS_SERVER, "short"),
                    tool(ALIAS_SERVER, "hidden"),
                ]
            }
            .boxed()
        }

        fn alias(&self, name: &str) -> Option<Alias> {
            let target = match name {
                "short" => "a",
                "hidden" => "z",
                _ => return None,
            };
            let mut arguments = crate::gateway::ArgumentMap::new();
            arguments.insert("preset".into(), 1.into());
            arguments.insert("over".into(), "default".into());
            Some(Alias {
                server: "s".into(),
                tool: target.into(),
                arguments,
            })
        }
    }

    fn gate(spec: &str, pad: usize) -> (Gate, Arc<Echo>, Metrics) {
        let spec: PolicySpec = serde_json::from_str(spec).expect("spec");
        let policy = spec.over(&Policy::default()).expect("policy");
        let metrics = Metrics::new();
        let echo = Arc::new(Echo {
            pad,
            seen: Mutex::default(),
        });
        let gate = Gate::new(Rules::new("p", policy, &metrics), echo.clone());
        (gate, echo, metrics)
    }

    fn denied(result: Result<String, CallError>) -> String {
        match result {
            Err(CallError::Denied(why)) => why,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    /// Each rule, and its denial in words, through the one entry point.
    #[tokio::test]
    async fn every_rule_is_applied() {
        let (g, _, metrics) = gate(
            r#"{"allow": ["s/*"], "max_calls_per_run": 2, "max_argument_bytes": 20,
                "max_result_bytes": 64}"#,
            10,
        );
        let call = |made, server: &'static str, args: &'static str| {
            let g = g.clone();
            async move { g.call(Via::CallTool, made, server, "a", args).await }
        };
        assert!(call(1, "s", "{}").await.is_ok());
        assert!(denied(call(1, "t", "{}").await).contains("`t/a` is not granted"));
        assert!(denied(call(3, "s", "{}").await).contains("used its 2 tool calls"));
        assert!(
            denied(call(1, "s", r#"{"k": "0123456789abcdef"}"#).await)
                .contains("more than the 20 allowed")
        );
        assert!(matches!(
            call(1, "s", "[1]").await,
            Err(CallError::InvalidArguments(m)) if m.contains("got an array")
        ));
        let (big, _, _) = gate(r#"{"allow": ["s/*"], "max_result_bytes": 64}"#, 100);
        let why = denied(big.call(Via::PassThrough, 1, "s", "a", "").await);
        assert!(
            why.contains("more than the 64 allowed (max_result_bytes)"),
            "{why}"
        );
        let text = metrics.render([]);
        assert!(
            text.contains("weir_plugin_denials_total{plugin=\"p\"} 3"),
            "{text}"
        );
    }

    /// An alias needs its real tool granted, and merges its defaults under
    /// the caller's arguments.
    #[tokio::test]
    async fn aliases_resolve_inside_the_gate() {
        let (g, echo, _) = gate(r#"{"allow": ["alias/*", "s/a"]}"#, 1);
        g.call(
            Via::CallTool,
            1,
            ALIAS_SERVER,
            "short",
            r#"{"over": "mine"}"#,
        )
        .await
        .expect("alias call");
        let seen = echo.seen.lock().expect("seen").pop().expect("one call");
        assert_eq!((seen.0.as_str(), seen.1.as_str()), ("s", "a"));
        let args = seen.2.expect("merged arguments").to_map();
        assert_eq!(args["preset"], 1);
        assert_eq!(args["over"], "mine", "the caller's value wins");
        let why = denied(g.call(Via::CallTool, 1, ALIAS_SERVER, "hidden", "").await);
        assert!(
            why.contains("alias `hidden`: `s/z` is not granted"),
            "{why}"
        );
        assert!(matches!(
            g.call(Via::CallTool, 1, ALIAS_SERVER, "nope", "").await,
            Err(CallError::NotFound(m)) if m.contains("no alias `nope`")
        ));
        let listed: Vec<String> = g
            .list_tools()
            .await
            .into_iter()
            .map(|t| format!("{}/{}", t.server, t.name))
            .collect();
        assert_eq!(
            listed,
            ["s/a", "alias/short"],
            "granted tools and aliases only"
        );
    }

    /// Over the rate, calls wait for their turn, and each wait is counted;
    /// paused time makes the waits instant and exact.
    #[tokio::test(start_paused = true)]
    async fn the_rate_makes_calls_wait() {
        let (g, _, metrics) = gate(r#"{"allow": ["s/*"], "calls_per_second": 2}"#, 1);
        let started = tokio::time::Instant::now();
        for _ in 0..5 {
            g.call(Via::PassThrough, 1, "s", "a", "")
                .await
                .expect("call");
        }
        // A burst of 2, then one every 0.5 s.
        assert!(started.elapsed() >= std::time::Duration::from_millis(1500));
        let text = metrics.render([]);
        assert!(
            text.contains("weir_plugin_rate_waits_total{plugin=\"p\"} 3"),
            "{text}"
        );
    }
}
