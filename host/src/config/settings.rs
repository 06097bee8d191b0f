//! weir's own settings: run limits, session timeouts, HTTP bounds, and
//! where plugins, compiled code and scratch directories live.

use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawWeir;
use super::{
    ConfigError, Ctx, DEFAULT_MAX_PLUGIN_BYTES, HttpLimits, RunLimits, SessionSettings,
    default_cache_dir,
};
use crate::policy::positive_secs;

/// The host settings of a config's `weir` section.
pub(super) struct Settings {
    pub limits: RunLimits,
    pub sessions: SessionSettings,
    pub http: HttpLimits,
    pub plugin_size_limit: u64,
    pub plugins_dir: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub scratch_root: Option<PathBuf>,
}

/// Reads the settings of `w`, each checked and named in its error.
pub(super) fn read(w: &RawWeir, ctx: &Ctx<'_>) -> Result<Settings, ConfigError> {
    let mut limits = RunLimits::default();
    let mut sessions = SessionSettings::default();
    if let Some(mb) = w.memory_limit_mb {
        if !(1..=4096).contains(&mb) {
            return Err(ctx.invalid(
                "weir.memory_limit_mb".into(),
                format!("{mb} is out of range 1..=4096"),
            ));
        }
        limits.memory_bytes = (mb as usize) << 20;
    }
    let secs = |field: &str, value: Option<f64>, slot: &mut Duration| {
        if let Some(s) = value {
            *slot = positive_secs(s).ok_or_else(|| {
                ctx.invalid(
                    format!("weir.{field}"),
                    format!("{s} is not a positive number of seconds"),
                )
            })?;
        }
        Ok::<_, ConfigError>(())
    };
    secs("deadline_secs", w.deadline_secs, &mut limits.deadline)?;
    secs(
        "call_timeout_secs",
        w.call_timeout_secs,
        &mut sessions.call_timeout,
    )?;
    secs(
        "startup_timeout_secs",
        w.startup_timeout_secs,
        &mut sessions.startup_timeout,
    )?;
    secs(
        "shutdown_grace_secs",
        w.shutdown_grace_secs,
        &mut sessions.shutdown_grace,
    )?;
    secs(
        "backoff_base_secs",
        w.backoff_base_secs,
        &mut sessions.backoff_base,
    )?;
    secs(
        "backoff_max_secs",
        w.backoff_max_secs,
        &mut sessions.backoff_max,
    )?;
    secs(
        "circuit_cooldown_secs",
        w.circuit_cooldown_secs,
        &mut sessions.circuit_cooldown,
    )?;
    if let Some(n) = w.circuit_threshold {
        if n == 0 {
            return Err(ctx.invalid("weir.circuit_threshold".into(), "must be at least 1".into()));
        }
        sessions.circuit_threshold = n;
    }
    if let Some(n) = w.output_limit_bytes {
        limits.output_bytes = n;
    }
    if let Some(pool) = w.instance_pool {
        limits.instance_pool = pool;
    }
    if let Some(n) = w.max_concurrent_runs {
        if !(1..=10_000).contains(&n) {
            return Err(ctx.invalid(
                "weir.max_concurrent_runs".into(),
                format!("{n} is out of range 1..=10000"),
            ));
        }
        limits.max_concurrent_runs = n;
    }
    let mut plugin_size_limit = DEFAULT_MAX_PLUGIN_BYTES;
    if let Some(mb) = w.plugin_size_limit_mb {
        if !(1..=4096).contains(&mb) {
            return Err(ctx.invalid(
                "weir.plugin_size_limit_mb".into(),
                format!("{mb} is out of range 1..=4096"),
            ));
        }
        plugin_size_limit = mb << 20;
    }
    let mut http = HttpLimits::default();
    secs(
        "http_header_timeout_secs",
        w.http_header_timeout_secs,
        &mut http.header_timeout,
    )?;
    secs(
        "http_body_timeout_secs",
        w.http_body_timeout_secs,
        &mut http.body_timeout,
    )?;
    secs(
        "http_idle_timeout_secs",
        w.http_idle_timeout_secs,
        &mut http.idle_timeout,
    )?;
    secs(
        "http_session_idle_secs",
        w.http_session_idle_secs,
        &mut http.session_idle,
    )?;
    let count = |field: &str,
                 value: Option<usize>,
                 range: std::ops::RangeInclusive<usize>,
                 slot: &mut usize| {
        if let Some(n) = value {
            if !range.contains(&n) {
                return Err(ctx.invalid(
                    format!("weir.{field}"),
                    format!("{n} is out of range {}..={}", range.start(), range.end()),
                ));
            }
            *slot = n;
        }
        Ok(())
    };
    count(
        "http_max_connections",
        w.http_max_connections,
        1..=1_000_000,
        &mut http.max_connections,
    )?;
    count(
        "http_max_sessions",
        w.http_max_sessions,
        1..=1_000_000,
        &mut http.max_sessions,
    )?;
    count(
        "http_max_body_bytes",
        w.http_max_body_bytes,
        1024..=(1 << 30),
        &mut http.max_body_bytes,
    )?;
    let plugins_dir = w
        .plugins_dir
        .as_deref()
        .map(|d| ctx.expand_plain(d).map(|d| ctx.base.join(d)))
        .transpose()
        .map_err(|m| ctx.invalid("weir.plugins_dir".into(), m))?;
    let cache_dir = match &w.cache_dir {
        None => default_cache_dir(),
        Some(serde_json::Value::Bool(false)) => None,
        Some(serde_json::Value::String(dir)) => Some(
            ctx.base.join(
                ctx.expand_plain(dir)
                    .map_err(|m| ctx.invalid("weir.cache_dir".into(), m))?,
            ),
        ),
        Some(other) => {
            return Err(ctx.invalid(
                "weir.cache_dir".into(),
                format!("{other} is neither a directory nor false"),
            ));
        }
    };
    let scratch_root = w
        .scratch_root
        .as_deref()
        .map(|d| ctx.expand_plain(d).map(|d| ctx.base.join(d)))
        .transpose()
        .map_err(|m| ctx.invalid("weir.scratch_root".into(), m))?;
    Ok(Settings {
        limits,
        sessions,
        http,
        plugin_size_limit,
        plugins_dir,
        cache_dir,
        scratch_root,
    })
}
