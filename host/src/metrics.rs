//! What weir counts, for operators: sessions per upstream server, calls per
//! upstream tool, runs per plugin. Kept in a `prometheus-client` registry
//! and rendered in the OpenMetrics text format Prometheus scrapes.
//!
//! Counters that code paths bump (calls, runs, sessions opened) are handles
//! taken once and cloned where they are needed, so the hot path costs an
//! atomic add. Figures that describe the present (live sessions, their
//! age) are read from the session manager at scrape time.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::gateway::CallError;

/// The label of a per-server series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabel {
    pub server: String,
}

/// The labels of a per-tool series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    pub server: String,
    pub tool: String,
}

/// The labels of a failed tool call: which error (`CallError::kind`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolErrorLabels {
    pub server: String,
    pub tool: String,
    pub kind: String,
}

/// The label of a per-plugin series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabel {
    pub plugin: String,
}

/// How a run ended, per plugin.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub plugin: String,
    /// `ok`, `cancelled`, or a `RunError::kind` (`deadline`, `trap`, …).
    pub outcome: String,
}

/// A server's present state, read at scrape time.
#[derive(Debug, Clone)]
pub struct ServerNow {
    pub name: String,
    pub live: usize,
    /// Age of the oldest open session.
    pub oldest: Option<Duration>,
    pub circuit_open: bool,
    /// The MCP revision its sessions speak, once one is open.
    pub protocol: Option<String>,
}

/// The labels of a server's revision series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabels {
    pub server: String,
    pub revision: String,
}

/// Tool name recorded for calls to a tool the server does not have: a
/// plugin may ask for any name, and each must not become a new series.
pub const UNKNOWN_TOOL: &str = "(unknown)";

/// One series' counter, handed to the code path that bumps it: an atomic
/// add, and no metrics types held outside this module.
#[derive(Clone, Debug, Default)]
pub struct Tally(Counter);

impl Tally {
    /// Counts one.
    pub fn inc(&self) {
        self.0.inc();
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// A caller's counters at the gate: calls refused, calls that waited for
/// the rate.
#[derive(Clone, Debug, Default)]
pub struct GateTallies {
    pub denials: Tally,
    pub rate_waits: Tally,
}

/// Label of the fleet's Redis gauge: which Redis (host and port).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RedisLabel {
    pub redis: String,
}

/// Labels of a Redis command's counter: what it was for.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabel {
    pub command: String,
}

/// The fleet's Redis health, as [`crate::fleet`] reports it.
#[derive(Clone)]
pub struct RedisGauges {
    /// 1 while Redis answers, 0 while degraded.
    pub up: Gauge,
    errors: Family<CommandLabel, Counter>,
}

impl RedisGauges {
    /// The failures of commands for `command`.
    pub fn errors(&self, command: &str) -> Tally {
        Tally(self.errors.get_or_create_owned(&CommandLabel {
            command: command.to_owned(),
        }))
    }
}

/// Every metric weir exports, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    sessions_opened: Family<ServerLabel, Counter>,
    http_connections: Family<ServerLabel, Counter>,
    oauth_refreshes: Family<ServerLabel, Counter>,
    oauth_failures: Family<ServerLabel, Counter>,
    restarts: Family<ServerLabel, Counter>,
    live_sessions: Family<ServerLabel, Gauge>,
    session_age: Family<ServerLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    protocol: Family<ProtocolLabels, Gauge>,
    circuit_open: Family<ServerLabel, Gauge>,
    tool_calls: Family<ToolLabels, Counter>,
    tool_errors: Family<ToolErrorLabels, Counter>,
    tool_latency: Family<ToolLabels, Histogram>,
    runs: Family<RunLabels, Counter>,
    runs_in_flight: Family<PluginLabel, Gauge>,
    run_latency: Family<PluginLabel, Histogram>,
    denials: Family<PluginLabel, Counter>,
    rate_waits: Family<PluginLabel, Counter>,
    redis_up: Family<RedisLabel, Gauge>,
    redis_errors: Family<CommandLabel, Counter>,
    /// Encoding takes `&Registry` while gauges are refreshed: one scrape
    /// at a time keeps the refresh and the text consistent.
    scrape: Mutex<()>,
}

/// Latency buckets from 50 µs to ~100 s: a tool call through weir takes
/// tens of µs on a fast local server and seconds on a slow remote one.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 22))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty registry with every family registered, so each appears in
    /// the output (with its help text) before anything happened.
    pub fn new() -> Self {
        Self::for_replica(None)
    }

    /// [`Metrics::new`], every sample labelled `replica="NAME"` when
    /// given (`weir.replica`): one replica of a fleet tells itself apart
    /// in a shared Prometheus, and `weir stats` sums across them.
    pub fn for_replica(replica: Option<&str>) -> Self {
        let labels = replica.map(|name| {
            (
                std::borrow::Cow::Borrowed("replica"),
                std::borrow::Cow::Owned(name.to_owned()),
            )
        });
        let mut registry = Registry::with_prefix_and_labels("weir", labels.into_iter());
        let sessions_opened = Family::default();
        let http_connections = Family::default();
        let oauth_refreshes = Family::default();
        let oauth_failures = Family::default();
        let restarts = Family::default();
        let live_sessions = Family::default();
        let session_age = Family::default();
        let protocol = Family::default();
        let circuit_open = Family::default();
        let tool_calls = Family::default();
        let tool_errors = Family::default();
        let tool_latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let runs = Family::default();
        let runs_in_flight = Family::default();
        let run_latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let denials = Family::default();
        let rate_waits = Family::default();
        let redis_up = Family::default();
        let redis_errors = Family::default();
        registry.register(
            "redis_up",
            "1 while the fleet's shared state (weir.redis) answers, 0 while degraded to this replica's own",
            redis_up.clone(),
        );
        registry.register(
            "redis_errors",
            "Redis commands that failed or timed out, by what they were for (rate, circuit, kv, session)",
            redis_errors.clone(),
        );
        registry.register(
            "upstream_sessions_opened",
            "MCP sessions opened to an upstream server since start (first starts and restarts)",
            sessions_opened.clone(),
        );
        registry.register(
            "upstream_http_connections",
            "TCP connections weir opened (or tried to) to a remote server since start; \
             keep-alive connections reused by later requests count once",
            http_connections.clone(),
        );
        registry.register(
            "upstream_oauth_refreshes",
            "OAuth access tokens refreshed for a remote server",
            oauth_refreshes.clone(),
        );
        registry.register(
            "upstream_oauth_failures",
            "OAuth refreshes and sign-ins for a remote server that failed",
            oauth_failures.clone(),
        );
        registry.register(
            "upstream_restarts",
            "Sessions opened to replace one that was lost (crash, protocol fault, failed ping)",
            restarts.clone(),
        );
        registry.register(
            "upstream_sessions_live",
            "MCP sessions open to an upstream server now",
            live_sessions.clone(),
        );
        registry.register(
            "upstream_session_age_seconds",
            "Age of the oldest open session to an upstream server",
            session_age.clone(),
        );
        registry.register(
            "upstream_protocol",
            "1 for the MCP revision a server's sessions speak (label revision)",
            protocol.clone(),
        );
        registry.register(
            "upstream_circuit_open",
            "1 while starts keep failing and calls to the server fail fast (circuit open)",
            circuit_open.clone(),
        );
        registry.register(
            "tool_calls",
            "Tool calls made to an upstream tool (by plugins and passed-through clients)",
            tool_calls.clone(),
        );
        registry.register(
            "tool_errors",
            "Tool calls that got no result, by error kind (a result with isError is not one)",
            tool_errors.clone(),
        );
        registry.register(
            "tool_call_duration_seconds",
            "Time from a call leaving weir to its answer",
            tool_latency.clone(),
        );
        registry.register(
            "plugin_runs",
            "Plugin runs finished, by outcome (ok, cancelled, deadline, trap, memory, ...)",
            runs.clone(),
        );
        registry.register(
            "plugin_runs_in_flight",
            "Plugin runs going on now",
            runs_in_flight.clone(),
        );
        registry.register(
            "plugin_run_duration_seconds",
            "Time a plugin run took, start to answer, whatever its outcome",
            run_latency.clone(),
        );
        registry.register(
            "plugin_denials",
            "Tool calls a plugin made that its policy refused",
            denials.clone(),
        );
        registry.register(
            "plugin_rate_waits",
            "Tool calls that waited for their turn under the caller's calls_per_second",
            rate_waits.clone(),
        );
        Self {
            registry,
            sessions_opened,
            http_connections,
            oauth_refreshes,
            oauth_failures,
            restarts,
            live_sessions,
            session_age,
            protocol,
            circuit_open,
            tool_calls,
            tool_errors,
            tool_latency,
            runs,
            runs_in_flight,
            run_latency,
            denials,
            rate_waits,
            redis_up,
            redis_errors,
            scrape: Mutex::new(()),
        }
    }

    /// What the fleet's shared state reports: whether the Redis at
    /// `redis` (host and port) answers, and its failed commands. Only a
    /// host with `weir.redis` asks for these, so `weir_redis_up` exists
    /// only where Redis is configured.
    pub fn redis_gauges(&self, redis: &str) -> RedisGauges {
        RedisGauges {
            up: self.redis_up.get_or_create_owned(&RedisLabel {
                redis: redis.to_owned(),
            }),
            errors: self.redis_errors.clone(),
        }
    }

    /// The counters a server's session manager bumps: (opened, restarts).
    pub fn server_counters(&self, server: &str) -> (Tally, Tally) {
        let label = ServerLabel {
            server: server.to_owned(),
        };
        (
            Tally(self.sessions_opened.get_or_create_owned(&label)),
            Tally(self.restarts.get_or_create_owned(&label)),
        )
    }

    /// The connections opened to one remote server.
    /// The OAuth counters of remote server `server`: (refreshes, failures).
    pub fn oauth_counters(&self, server: &str) -> (Tally, Tally) {
        let label = ServerLabel {
            server: server.to_owned(),
        };
        (
            Tally(self.oauth_refreshes.get_or_create_owned(&label)),
            Tally(self.oauth_failures.get_or_create_owned(&label)),
        )
    }

    pub fn http_connections(&self, server: &str) -> Tally {
        Tally(self.http_connections.get_or_create_owned(&ServerLabel {
            server: server.to_owned(),
        }))
    }

    /// The counters the gate bumps for one caller's calls.
    pub fn gate_tallies(&self, caller: &str) -> GateTallies {
        let label = PluginLabel {
            plugin: caller.to_owned(),
        };
        GateTallies {
            denials: Tally(self.denials.get_or_create_owned(&label)),
            rate_waits: Tally(self.rate_waits.get_or_create_owned(&label)),
        }
    }

    /// Records one upstream tool call and how it ended.
    pub fn record_call(
        &self,
        server: &str,
        tool: &str,
        elapsed: Duration,
        outcome: Result<(), &CallError>,
    ) {
        let tool = match outcome {
            Err(CallError::NotFound(_)) => UNKNOWN_TOOL,
            _ => tool,
        };
        let labels = ToolLabels {
            server: server.to_owned(),
            tool: tool.to_owned(),
        };
        self.tool_calls.get_or_create(&labels).inc();
        self.tool_latency
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if let Err(error) = outcome {
            self.tool_errors
                .get_or_create(&ToolErrorLabels {
                    server: labels.server,
                    tool: labels.tool,
                    kind: error.kind().to_owned(),
                })
                .inc();
        }
    }

    /// Counts a run as started; the returned record counts it finished
    /// (as `cancelled` if it is dropped before [`RunRecord::finish`]).
    pub fn run_started(&self, plugin: &str) -> RunRecord<'_> {
        let label = PluginLabel {
            plugin: plugin.to_owned(),
        };
        self.runs_in_flight.get_or_create(&label).inc();
        RunRecord {
            metrics: self,
            label,
            started: std::time::Instant::now(),
            finished: false,
        }
    }

    /// The metrics as OpenMetrics text, with the present-tense gauges set
    /// from `servers`.
    pub fn render(&self, servers: impl IntoIterator<Item = ServerNow>) -> String {
        let _one_at_a_time = self.scrape.lock();
        // A server that settles on another revision (after a restart)
        // leaves no stale series behind.
        self.protocol.clear();
        for server in servers {
            if let Some(revision) = server.protocol {
                self.protocol
                    .get_or_create(&ProtocolLabels {
                        server: server.name.clone(),
                        revision,
                    })
                    .set(1);
            }
            let label = ServerLabel {
                server: server.name,
            };
            self.live_sessions
                .get_or_create(&label)
                .set(i64::try_from(server.live).unwrap_or(i64::MAX));
            self.session_age
                .get_or_create(&label)
                .set(server.oldest.map_or(0.0, |a| a.as_secs_f64()));
            self.circuit_open
                .get_or_create(&label)
                .set(i64::from(server.circuit_open));
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// A run being counted. Whatever way the run ends — answer, error, or its
/// future dropped because the client went away — it is counted once.
pub struct RunRecord<'a> {
    metrics: &'a Metrics,
    label: PluginLabel,
    started: std::time::Instant,
    finished: bool,
}

impl RunRecord<'_> {
    /// Counts the run finished with `outcome` (`ok` or an error kind).
    pub fn finish(mut self, outcome: &str) {
        self.record(outcome);
    }

    fn record(&mut self, outcome: &str) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let m = self.metrics;
        m.runs_in_flight.get_or_create(&self.label).dec();
        m.run_latency
            .get_or_create(&self.label)
            .observe(self.started.elapsed().as_secs_f64());
        m.runs
            .get_or_create(&RunLabels {
                plugin: self.label.plugin.clone(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

impl Drop for RunRecord<'_> {
    fn drop(&mut self) {
        self.record("cancelled");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every family is in the output from the start, and what is recorded
    /// shows up under the right labels.
    #[test]
    fn a_replica_labels_every_sample() {
        let m = Metrics::for_replica(Some("weir-0"));
        m.record_call("time", "now", Duration::from_millis(2), Ok(()));
        m.run_started("hello").finish("ok");
        let text = m.render([ServerNow {
            name: "time".to_owned(),
            live: 1,
            oldest: None,
            circuit_open: false,
            protocol: None,
        }]);
        let samples: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect();
        assert!(!samples.is_empty());
        for sample in samples {
            assert!(sample.contains("replica=\"weir-0\""), "{sample}");
        }
        assert!(!Metrics::new().render([]).contains("replica="));
    }

    #[test]
    fn renders_what_was_recorded() {
        let m = Metrics::new();
        let (opened, _) = m.server_counters("time");
        opened.inc();
        m.record_call("time", "now", Duration::from_millis(2), Ok(()));
        m.record_call(
            "time",
            "zzz",
            Duration::from_millis(1),
            Err(&CallError::NotFound("no tool".into())),
        );
        m.run_started("hello").finish("ok");
        drop(m.run_started("hello"));
        m.gate_tallies("hello").denials.inc();
        let text = m.render([ServerNow {
            name: "time".to_owned(),
            live: 1,
            oldest: Some(Duration::from_secs(3)),
            circuit_open: false,
            protocol: Some("2026-07-28".to_owned()),
        }]);
        for line in [
            "weir_upstream_sessions_opened_total{server=\"time\"} 1",
            "weir_upstream_sessions_live{server=\"time\"} 1",
            "weir_upstream_session_age_seconds{server=\"time\"} 3.0",
            "weir_upstream_circuit_open{server=\"time\"} 0",
            "weir_upstream_protocol{server=\"time\",revision=\"2026-07-28\"} 1",
            "weir_tool_calls_total{server=\"time\",tool=\"now\"} 1",
            "weir_tool_calls_total{server=\"time\",tool=\"(unknown)\"} 1",
            "weir_tool_errors_total{server=\"time\",tool=\"(unknown)\",kind=\"not-found\"} 1",
            "weir_plugin_runs_total{plugin=\"hello\",outcome=\"ok\"} 1",
            "weir_plugin_runs_total{plugin=\"hello\",outcome=\"cancelled\"} 1",
            "weir_plugin_runs_in_flight{plugin=\"hello\"} 0",
            "weir_plugin_denials_total{plugin=\"hello\"} 1",
            "weir_plugin_run_duration_seconds_count{plugin=\"hello\"} 2",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }
}
