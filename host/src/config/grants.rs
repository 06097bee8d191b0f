//! Grants: the default policy, each named plugin's policy and pin, and
//! the aliases — laid over one another and checked against the servers.

use std::collections::BTreeMap;

use super::raw::{RawWeir, strip_position};
use super::servers::valid_server_name;
use super::{
    CODE_MODE_CALLER, ConfigError, Ctx, PluginGrant, RunLimits, ServerConfig, base_policy,
};
use crate::gateway::Alias;
use crate::policy::{Policy, PolicySpec};

/// What a config grants.
pub(super) struct Grants {
    pub default_policy: Policy,
    pub plugins: BTreeMap<String, PluginGrant>,
    pub aliases: BTreeMap<String, Alias>,
    /// `weir.code_mode.enabled`.
    pub code_mode: bool,
}

/// Reads the grants of `w` over the built-in defaults (`builtin`: the
/// embedded server is offered, and granted by default).
pub(super) fn read(
    w: &RawWeir,
    servers: &BTreeMap<String, ServerConfig>,
    limits: &RunLimits,
    builtin: bool,
    ctx: &Ctx<'_>,
) -> Result<Grants, ConfigError> {
    let builtin_grant = base_policy(limits, builtin);
    let default_policy = match &w.default_policy {
        None => builtin_grant,
        Some(fields) => policy_spec(fields, "weir.default_policy", ctx)?
            .over(&builtin_grant)
            .map_err(|m| ctx.invalid("weir.default_policy".into(), m))?,
    };
    let mut aliases = BTreeMap::new();
    for (name, value) in &w.aliases {
        let at = format!("weir.aliases.{name}");
        let alias = parse_alias(name, value, servers).map_err(|m| ctx.invalid(at, m))?;
        aliases.insert(name.clone(), alias);
    }
    let mut plugins = BTreeMap::new();
    let mut code_mode = false;
    let mut grants: Vec<(String, String, serde_json::Map<String, serde_json::Value>)> = w
        .plugins
        .iter()
        .map(|(name, fields)| (name.clone(), format!("weir.plugins.{name}"), fields.clone()))
        .collect();
    // Code mode's runs are a plugin's runs by another name: its section's
    // policy fields are that plugin's grant.
    if let Some(fields) = &w.code_mode {
        let mut fields = fields.clone();
        match fields.remove("enabled") {
            None => {}
            Some(serde_json::Value::Bool(on)) => code_mode = on,
            Some(other) => {
                return Err(ctx.invalid(
                    "weir.code_mode.enabled".into(),
                    format!("{other} is not true or false"),
                ));
            }
        }
        if w.plugins.contains_key(CODE_MODE_CALLER) {
            return Err(ctx.invalid(
                format!("weir.plugins.{CODE_MODE_CALLER}"),
                "code mode's grant is set in weir.code_mode; give it there only".into(),
            ));
        }
        if fields.contains_key("sha256") {
            return Err(ctx.invalid(
                "weir.code_mode.sha256".into(),
                "code mode's runtime ships with weir and cannot be pinned".into(),
            ));
        }
        grants.push((CODE_MODE_CALLER.to_owned(), "weir.code_mode".into(), fields));
    }
    for (name, at, mut fields) in grants {
        let sha256 = match fields.remove("sha256") {
            None => None,
            Some(serde_json::Value::String(h))
                if h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()) =>
            {
                Some(h.to_ascii_lowercase())
            }
            Some(other) => {
                return Err(ctx.invalid(
                    format!("{at}.sha256"),
                    format!("{other} is not 64 hex digits"),
                ));
            }
        };
        let policy = policy_spec(&fields, &at, ctx)?
            .over(&default_policy)
            .map_err(|m| ctx.invalid(at.clone(), m))?;
        if policy.memory_bytes > limits.memory_bytes {
            return Err(ctx.invalid(
                format!("{at}.memory_limit_mb"),
                format!(
                    "{} MiB is above the host-wide memory_limit_mb of {} MiB",
                    policy.memory_bytes >> 20,
                    limits.memory_bytes >> 20
                ),
            ));
        }
        plugins.insert(name.clone(), PluginGrant { policy, sha256 });
    }
    Ok(Grants {
        default_policy,
        plugins,
        aliases,
        code_mode,
    })
}

/// Reads policy fields, naming the field of any error.
fn policy_spec(
    fields: &serde_json::Map<String, serde_json::Value>,
    at: &str,
    ctx: &Ctx<'_>,
) -> Result<PolicySpec, ConfigError> {
    serde_path_to_error::deserialize(serde_json::Value::Object(fields.clone())).map_err(|e| {
        let path = e.path().to_string();
        let location = if path == "." {
            at.to_owned()
        } else {
            format!("{at}.{path}")
        };
        ctx.invalid(location, strip_position(&e.inner().to_string()))
    })
}

/// One alias: `"server/tool"` or `{"tool": "server/tool", "arguments": {…}}`,
/// pointing at a configured server.
fn parse_alias(
    name: &str,
    value: &serde_json::Value,
    servers: &BTreeMap<String, ServerConfig>,
) -> Result<Alias, String> {
    if !valid_server_name(name) {
        return Err("an alias name must be 1-64 letters, digits, '-' or '_'".into());
    }
    let (target, arguments) = match value {
        serde_json::Value::String(target) => (target.as_str(), serde_json::Map::new()),
        serde_json::Value::Object(map) => {
            if let Some(key) = map.keys().find(|k| *k != "tool" && *k != "arguments") {
                return Err(format!(
                    "unknown field `{key}` (expected `tool`, `arguments`)"
                ));
            }
            let target = map
                .get("tool")
                .and_then(serde_json::Value::as_str)
                .ok_or("missing \"tool\": \"server/tool\"")?;
            let arguments = match map.get("arguments") {
                None => serde_json::Map::new(),
                Some(serde_json::Value::Object(args)) => args.clone(),
                Some(_) => return Err("\"arguments\" must be an object".into()),
            };
            (target, arguments)
        }
        _ => {
            return Err(
                "give \"server/tool\", or {\"tool\": \"server/tool\", \"arguments\": {…}}".into(),
            );
        }
    };
    let (server, tool) = target
        .split_once('/')
        .filter(|(s, t)| !s.is_empty() && !t.is_empty())
        .ok_or_else(|| format!("{target:?} is not `server/tool`"))?;
    if !servers.contains_key(server) {
        let known: Vec<&str> = servers.keys().map(String::as_str).collect();
        return Err(format!(
            "alias `{name}` points to server `{server}`, which is not configured (configured: {})",
            known.join(", ")
        ));
    }
    Ok(Alias {
        server: server.to_owned(),
        tool: tool.to_owned(),
        arguments,
    })
}
