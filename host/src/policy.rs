//! What each plugin may do: grants set by the operator, and the decision
//! taken on every call. Plain data and pure functions — no wasmtime, no
//! rmcp — so every rule is a table-driven test.
//!
//! Default deny: a plugin may call a tool only if a pattern grants it.
//! Limits only ever tighten: a plugin's manifest may ask for less than the
//! operator allows, never more.

use std::time::Duration;

use serde::Deserialize;

/// One `server/tool` grant. Each side is a name, `*` (anything), or a
/// prefix ending in `*` (`kv_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolPattern {
    server: String,
    tool: String,
}

impl ToolPattern {
    /// Parses `server/tool`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (server, tool) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a `server/tool` pattern"))?;
        for part in [server, tool] {
            let body = part.strip_suffix('*').unwrap_or(part);
            if part.is_empty() || body.contains('*') {
                return Err(format!(
                    "{text:?}: each side is a name, `*`, or a prefix ending in `*`"
                ));
            }
        }
        Ok(Self {
            server: server.to_owned(),
            tool: tool.to_owned(),
        })
    }

    pub fn matches(&self, server: &str, tool: &str) -> bool {
        glob(&self.server, server) && glob(&self.tool, tool)
    }
}

impl std::fmt::Display for ToolPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.server, self.tool)
    }
}

fn glob(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// The effective rules for one plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Tools the plugin may call (and see in `list-tools`).
    pub allow: Vec<ToolPattern>,
    /// `call-tool` requests per run.
    pub max_calls_per_run: u64,
    /// Runs of this plugin in flight at once.
    pub max_concurrent_runs: usize,
    /// Calls of one `call-tools` batch in flight at once.
    pub max_parallel_calls: usize,
    /// Sustained tool calls per second across the plugin's runs, with a
    /// burst of as many; `None`: unlimited.
    pub calls_per_second: Option<f64>,
    /// Argument bytes of one call.
    pub max_argument_bytes: usize,
    /// Result bytes of one call handed back to the plugin.
    pub max_result_bytes: usize,
    pub memory_bytes: usize,
    pub deadline: Duration,
    /// Guest CPU time per run, counted in epoch ticks while the guest
    /// runs — unlike the deadline, time spent waiting in calls does not
    /// count. `None`: no budget beyond the deadline.
    pub cpu_time: Option<Duration>,
    /// Caps each server's call timeout for this plugin.
    pub call_timeout: Option<Duration>,
    pub output_bytes: usize,
    /// A private scratch directory per run, preopened as `/scratch` and
    /// deleted after the run — the only filesystem a plugin can ever see.
    pub scratch_dir: bool,
}

/// Defaults applied to any plugin the operator did not mention.
impl Default for Policy {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            max_calls_per_run: 10_000,
            max_concurrent_runs: 64,
            max_parallel_calls: 16,
            calls_per_second: None,
            max_argument_bytes: 1 << 20,
            max_result_bytes: 16 << 20,
            memory_bytes: 64 << 20,
            deadline: Duration::from_secs(30),
            cpu_time: None,
            call_timeout: None,
            output_bytes: 64 << 10,
            scratch_dir: false,
        }
    }
}

/// Policy fields as written in the config (`weir.default_policy`,
/// `weir.plugins.NAME`) or asked for in a manifest. Every field optional:
/// what is absent comes from the layer below.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    pub allow: Option<Vec<String>>,
    pub max_calls_per_run: Option<u64>,
    pub max_concurrent_runs: Option<usize>,
    pub max_parallel_calls: Option<usize>,
    pub calls_per_second: Option<f64>,
    pub max_argument_bytes: Option<usize>,
    pub max_result_bytes: Option<usize>,
    pub memory_limit_mb: Option<u64>,
    pub deadline_secs: Option<f64>,
    pub cpu_secs: Option<f64>,
    pub call_timeout_secs: Option<f64>,
    pub output_limit_bytes: Option<usize>,
    pub scratch_dir: Option<bool>,
}

impl PolicySpec {
    /// `base` with this spec's fields laid over it (operator layers).
    pub fn over(&self, base: &Policy) -> Result<Policy, String> {
        let mut p = base.clone();
        if let Some(allow) = &self.allow {
            p.allow = allow
                .iter()
                .map(|a| ToolPattern::parse(a))
                .collect::<Result<_, _>>()?;
        }
        set(&mut p.max_calls_per_run, self.max_calls_per_run);
        set(&mut p.max_concurrent_runs, self.max_concurrent_runs);
        set(&mut p.max_parallel_calls, self.max_parallel_calls);
        if let Some(rate) = self.calls_per_second {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(format!("calls_per_second: {rate} is not a positive number"));
            }
            p.calls_per_second = Some(rate);
        }
        set(&mut p.max_argument_bytes, self.max_argument_bytes);
        set(&mut p.max_result_bytes, self.max_result_bytes);
        if let Some(mb) = self.memory_limit_mb {
            if !(1..=4096).contains(&mb) {
                return Err(format!("memory_limit_mb: {mb} is out of range 1..=4096"));
            }
            p.memory_bytes = (mb as usize) << 20;
        }
        if let Some(s) = self.deadline_secs {
            p.deadline = secs("deadline_secs", s)?;
        }
        if let Some(s) = self.cpu_secs {
            p.cpu_time = Some(secs("cpu_secs", s)?);
        }
        if let Some(s) = self.call_timeout_secs {
            p.call_timeout = Some(secs("call_timeout_secs", s)?);
        }
        set(&mut p.output_bytes, self.output_limit_bytes);
        set(&mut p.scratch_dir, self.scratch_dir);
        if p.max_concurrent_runs == 0 {
            return Err("max_concurrent_runs: must be at least 1".into());
        }
        if p.max_parallel_calls == 0 {
            return Err("max_parallel_calls: must be at least 1".into());
        }
        Ok(p)
    }

    /// `base` narrowed by what a manifest asks: limits can only go down,
    /// grants only to a subset (a requested pattern is kept if some
    /// granted pattern covers everything it matches).
    pub fn narrow(&self, base: &Policy) -> Result<Policy, String> {
        let asked = self.over(base)?;
        Ok(Policy {
            allow: match &self.allow {
                None => base.allow.clone(),
                Some(_) => asked
                    .allow
                    .into_iter()
                    .filter(|a| base.allow.iter().any(|g| covers(g, a)))
                    .collect(),
            },
            max_calls_per_run: asked.max_calls_per_run.min(base.max_calls_per_run),
            max_concurrent_runs: asked.max_concurrent_runs.min(base.max_concurrent_runs),
            max_parallel_calls: asked.max_parallel_calls.min(base.max_parallel_calls),
            calls_per_second: match (asked.calls_per_second, base.calls_per_second) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => b.or(a),
            },
            max_argument_bytes: asked.max_argument_bytes.min(base.max_argument_bytes),
            max_result_bytes: asked.max_result_bytes.min(base.max_result_bytes),
            memory_bytes: asked.memory_bytes.min(base.memory_bytes),
            deadline: asked.deadline.min(base.deadline),
            cpu_time: match (asked.cpu_time, base.cpu_time) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => b.or(a),
            },
            call_timeout: match (asked.call_timeout, base.call_timeout) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => b.or(a),
            },
            output_bytes: asked.output_bytes.min(base.output_bytes),
            scratch_dir: asked.scratch_dir && base.scratch_dir,
        })
    }
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

fn secs(field: &str, s: f64) -> Result<Duration, String> {
    positive_secs(s).ok_or_else(|| format!("{field}: {s} is not a positive number of seconds"))
}

/// A duration written as seconds: finite, positive, and not absurd.
pub(crate) fn positive_secs(s: f64) -> Option<Duration> {
    (s.is_finite() && s > 0.0 && s < 1e9).then(|| Duration::from_secs_f64(s))
}

/// Whether grant `g` covers everything request `r` matches.
fn covers(g: &ToolPattern, r: &ToolPattern) -> bool {
    fn side(g: &str, r: &str) -> bool {
        match g.strip_suffix('*') {
            Some(prefix) => r.starts_with(prefix),
            None => g == r,
        }
    }
    side(&g.server, &r.server) && side(&g.tool, &r.tool)
}

impl Policy {
    /// Whether a call to `server/tool` is granted; the denial says why.
    pub fn check_tool(&self, server: &str, tool: &str) -> Result<(), String> {
        if self.allow.iter().any(|p| p.matches(server, tool)) {
            return Ok(());
        }
        Err(if self.allow.is_empty() {
            format!("`{server}/{tool}` is not granted: this plugin may call no tools")
        } else {
            let granted: Vec<String> = self.allow.iter().map(ToString::to_string).collect();
            format!(
                "`{server}/{tool}` is not granted (granted: {})",
                granted.join(", ")
            )
        })
    }

    /// The checks of one call made as the run's `made`-th, with
    /// `arg_bytes` of arguments: grant, call budget, argument size.
    pub fn check_call(
        &self,
        server: &str,
        tool: &str,
        made: u64,
        arg_bytes: usize,
    ) -> Result<(), String> {
        self.check_tool(server, tool)?;
        if made > self.max_calls_per_run {
            return Err(format!(
                "this run has used its {} tool calls",
                self.max_calls_per_run
            ));
        }
        if arg_bytes > self.max_argument_bytes {
            return Err(format!(
                "arguments are {arg_bytes} bytes, more than the {} allowed",
                self.max_argument_bytes
            ));
        }
        Ok(())
    }
}

/// A token bucket: `rate` calls per second sustained, bursts of `rate`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    tokens: f64,
    at: std::time::Instant,
}

impl RateLimiter {
    pub fn new(rate: f64, now: std::time::Instant) -> Self {
        Self {
            rate,
            tokens: rate.max(1.0),
            at: now,
        }
    }

    /// Takes one call's token at `now`, or says how long until one is free.
    pub fn take(&mut self, now: std::time::Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate.max(1.0));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str]) -> Policy {
        Policy {
            allow: allow
                .iter()
                .map(|a| ToolPattern::parse(a).unwrap())
                .collect(),
            ..Policy::default()
        }
    }

    /// Patterns: exact names, `*`, prefixes; everything else denied.
    #[test]
    fn grants_by_pattern() {
        let p = policy(&["builtin/echo", "fs/*", "kv/get_*", "*/ping"]);
        let cases = [
            ("builtin", "echo", true),
            ("builtin", "add", false),
            ("fs", "read_file", true),
            ("kv", "get_value", true),
            ("kv", "set_value", false),
            ("any", "ping", true),
            ("fsx", "read_file", false),
        ];
        for (server, tool, allowed) in cases {
            assert_eq!(
                p.check_tool(server, tool).is_ok(),
                allowed,
                "{server}/{tool}"
            );
        }
        let denied = p.check_tool("builtin", "add").unwrap_err();
        assert!(
            denied.contains("`builtin/add` is not granted (granted: builtin/echo, fs/*"),
            "{denied}"
        );
        assert!(
            policy(&[])
                .check_tool("a", "b")
                .unwrap_err()
                .contains("may call no tools")
        );
    }

    /// Bad patterns are refused with the reason.
    #[test]
    fn rejects_bad_patterns() {
        for bad in ["echo", "/x", "x/", "a*b/c", "a/**"] {
            assert!(ToolPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(ToolPattern::parse("*/*").is_ok());
    }

    /// Per-call checks: budget and argument size.
    #[test]
    fn checks_calls() {
        let p = Policy {
            max_calls_per_run: 3,
            max_argument_bytes: 10,
            ..policy(&["s/*"])
        };
        assert!(p.check_call("s", "t", 3, 10).is_ok());
        assert!(
            p.check_call("s", "t", 4, 1)
                .unwrap_err()
                .contains("used its 3 tool calls")
        );
        assert!(
            p.check_call("s", "t", 1, 11)
                .unwrap_err()
                .contains("11 bytes, more than the 10")
        );
        assert!(
            p.check_call("x", "t", 1, 1)
                .unwrap_err()
                .contains("not granted")
        );
    }

    /// Operator layers override; a manifest can only narrow.
    #[test]
    fn layers_override_and_manifests_narrow() {
        let operator = PolicySpec {
            allow: Some(vec!["fs/*".into(), "builtin/echo".into()]),
            memory_limit_mb: Some(32),
            deadline_secs: Some(10.0),
            ..PolicySpec::default()
        };
        let granted = operator.over(&Policy::default()).unwrap();
        assert_eq!(granted.memory_bytes, 32 << 20);

        let manifest = PolicySpec {
            allow: Some(vec![
                "fs/read_*".into(),
                "net/*".into(),
                "builtin/echo".into(),
            ]),
            memory_limit_mb: Some(512),
            deadline_secs: Some(5.0),
            scratch_dir: Some(true),
            ..PolicySpec::default()
        };
        let narrowed = manifest.narrow(&granted).unwrap();
        let allowed: Vec<String> = narrowed.allow.iter().map(ToString::to_string).collect();
        assert_eq!(
            allowed,
            ["fs/read_*", "builtin/echo"],
            "net/* was never granted"
        );
        assert_eq!(
            narrowed.memory_bytes,
            32 << 20,
            "asking for more gets no more"
        );
        assert_eq!(
            narrowed.deadline,
            Duration::from_secs(5),
            "asking for less gets less"
        );
        assert!(
            !narrowed.scratch_dir,
            "scratch only if the operator grants it"
        );

        let bad = PolicySpec {
            allow: Some(vec!["nope".into()]),
            ..PolicySpec::default()
        };
        assert!(
            bad.over(&Policy::default())
                .unwrap_err()
                .contains("not a `server/tool` pattern")
        );
    }

    /// The bucket allows a burst of `rate`, then one call per 1/rate s.
    #[test]
    fn rate_limits() {
        let t0 = std::time::Instant::now();
        let mut r = RateLimiter::new(2.0, t0);
        assert!(r.take(t0).is_ok());
        assert!(r.take(t0).is_ok());
        let wait = r.take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(r.take(t0 + Duration::from_millis(500)).is_ok());
    }
}
