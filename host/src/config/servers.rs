//! `mcpServers`: each entry checked into a [`ServerConfig`] — its name,
//! its transport (a command line or a URL, `${VAR}`s expanded and every
//! secret registered with [`crate::redact`]), its pool and timeouts.

use std::collections::BTreeMap;

use super::raw::{RawScope, RawServer};
use super::{
    BUILTIN_SERVER, ConfigError, Ctx, HttpServer, Scope, ServerConfig, StdioServer, Transport,
};
use crate::gateway::ALIAS_SERVER;
use crate::policy::positive_secs;

/// The servers of `raw_servers`, the built-in one first when `builtin`.
pub(super) fn read(
    raw_servers: BTreeMap<String, RawServer>,
    builtin: bool,
    ctx: &Ctx<'_>,
) -> Result<BTreeMap<String, ServerConfig>, ConfigError> {
    let mut servers = BTreeMap::new();
    if builtin {
        servers.insert(
            BUILTIN_SERVER.to_owned(),
            ServerConfig::new(Transport::Builtin),
        );
    }
    for (name, server) in raw_servers {
        let at = |field: &str| format!("mcpServers.{name}{field}");
        if !valid_server_name(&name) {
            return Err(ctx.invalid(
                at(""),
                "a server name must be 1-64 letters, digits, '-' or '_'".into(),
            ));
        }
        if name == BUILTIN_SERVER {
            return Err(ctx.invalid(
                at(""),
                format!(
                    "`{BUILTIN_SERVER}` is the name of weir's embedded server; give this \
                     server another name (weir.builtin = false turns the embedded one off)"
                ),
            ));
        }
        if name == ALIAS_SERVER {
            return Err(ctx.invalid(
                at(""),
                format!("`{ALIAS_SERVER}` is reserved: plugins call aliases through it"),
            ));
        }
        if server.disabled {
            servers.remove(&name);
            continue;
        }
        for key in server.other.keys() {
            tracing::debug!(server = %name, key = %key, "ignoring config key weir does not use");
        }
        if server.oauth.is_some() && server.url.is_none() {
            return Err(ctx.invalid(
                at(".oauth"),
                "\"oauth\" is for remote servers (with a \"url\")".into(),
            ));
        }
        let transport = match (server.transport.as_deref(), &server.url, &server.command) {
            (Some("sse"), _, _) => {
                return Err(ctx.invalid(
                    at(".type"),
                    "the legacy HTTP+SSE transport is not supported; point \"url\" at the \
                     server's streamable HTTP endpoint (usually /mcp) instead"
                        .into(),
                ));
            }
            (Some(t), _, _)
                if !matches!(t, "stdio" | "http" | "streamable-http" | "streamableHttp") =>
            {
                return Err(ctx.invalid(
                    at(".type"),
                    format!("unknown transport \"{t}\"; use \"stdio\" or \"http\""),
                ));
            }
            (_, Some(_), Some(_)) => {
                return Err(ctx.invalid(
                    at(""),
                    "give either \"command\" or \"url\", not both".into(),
                ));
            }
            (_, Some(url), None) => {
                let url = ctx.expand_secret(at(".url"), url.trim())?;
                let url = parse_url(&url).map_err(|m| ctx.invalid(at(".url"), m))?;
                crate::redact::register_url(&url);
                let mut headers = http::HeaderMap::new();
                for (k, v) in &server.headers {
                    let value = ctx.expand_secret(at(&format!(".headers.{k}")), v)?;
                    crate::redact::register(&value);
                    let (name, value) = parse_header(k, &value)
                        .map_err(|m| ctx.invalid(at(&format!(".headers.{k}")), m))?;
                    headers.append(name, value);
                }
                let oauth = match server.oauth {
                    Some(raw) => Box::new(super::oauth::read(raw, &at(".oauth"), ctx)?),
                    None => Default::default(),
                };
                Transport::Http(HttpServer {
                    url,
                    headers,
                    oauth,
                })
            }
            (_, None, command) => {
                let (command, written) = match command.as_deref().map(str::trim) {
                    Some(c) if !c.is_empty() => (ctx.expand_secret(at(".command"), c)?, c),
                    _ => {
                        return Err(ctx.invalid(at(""), "missing \"command\" (or \"url\")".into()));
                    }
                };
                let args = server
                    .args
                    .iter()
                    .enumerate()
                    .map(|(i, a)| ctx.expand_secret(at(&format!(".args[{i}]")), a))
                    .collect::<Result<_, _>>()?;
                // A server's environment is where MCP configs put
                // tokens, written out or not: every value is a secret.
                let env_vars = server
                    .env
                    .iter()
                    .map(|(k, v)| {
                        let value = ctx.expand_secret(at(&format!(".env.{k}")), v)?;
                        crate::redact::register(&value);
                        Ok((k.clone(), value))
                    })
                    .collect::<Result<_, ConfigError>>()?;
                let shown = crate::redact::scrub(
                    &std::iter::once(written)
                        .chain(server.args.iter().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(" "),
                );
                let cwd = server
                    .cwd
                    .as_deref()
                    .map(|c| ctx.expand(at(".cwd"), c).map(|c| ctx.base.join(c)))
                    .transpose()?;
                Transport::Stdio(StdioServer {
                    command,
                    args,
                    env: env_vars,
                    cwd,
                    shown,
                })
            }
        };
        let mut entry = ServerConfig::new(transport);
        if let Some(n) = server.pool_size {
            if !(1..=64).contains(&n) {
                return Err(ctx.invalid(at(".pool_size"), format!("{n} is out of range 1..=64")));
            }
            entry.pool_size = n;
        }
        if let Some(n) = server.max_sessions {
            if !(1..=1024).contains(&n) {
                return Err(
                    ctx.invalid(at(".max_sessions"), format!("{n} is out of range 1..=1024"))
                );
            }
            entry.max_sessions = n;
        }
        if entry.max_sessions < entry.pool_size {
            return Err(ctx.invalid(
                at(".max_sessions"),
                format!(
                    "{} is less than pool_size {}: not even one plugin's pool would fit",
                    entry.max_sessions, entry.pool_size
                ),
            ));
        }
        entry.scope = match server.scope {
            None | Some(RawScope::Shared) => Scope::Shared,
            Some(RawScope::Plugin) => Scope::Plugin,
        };
        let optional_secs = |field: &str, value: Option<f64>| {
            value
                .map(|s| {
                    positive_secs(s).ok_or_else(|| {
                        ctx.invalid(
                            at(&format!(".{field}")),
                            format!("{s} is not a positive number of seconds"),
                        )
                    })
                })
                .transpose()
        };
        entry.call_timeout = optional_secs("call_timeout_secs", server.call_timeout_secs)?;
        entry.startup_timeout = optional_secs("startup_timeout_secs", server.startup_timeout_secs)?;
        entry.ping_interval = optional_secs("ping_interval_secs", server.ping_interval_secs)?;
        if let Some(protocol) = &server.protocol {
            entry.protocol =
                super::Protocol::parse(protocol).map_err(|e| ctx.invalid(at(".protocol"), e))?;
        }
        if let Some(elicitation) = &server.elicitation {
            entry.elicitation = Some(
                super::Elicitation::parse(elicitation)
                    .map_err(|e| ctx.invalid(at(".elicitation"), e))?,
            );
        }
        servers.insert(name, entry);
    }
    Ok(servers)
}

// A URL weir can connect to: http or https, and naming a host. Errors
/// never quote it: a URL can carry a key in its query.
fn parse_url(url: &str) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "the URL's scheme is {:?}; use an http:// or https:// URL",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("the URL names no host".into());
    }
    Ok(parsed)
}

/// A header weir can send: a valid name, and a value without line breaks.
/// The value is marked sensitive, so no HTTP library logs it.
fn parse_header(name: &str, value: &str) -> Result<(http::HeaderName, http::HeaderValue), String> {
    let name = http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid HTTP header name"))?;
    let mut value = http::HeaderValue::from_str(value)
        .map_err(|_| "the value has characters an HTTP header cannot carry".to_owned())?;
    value.set_sensitive(true);
    Ok((name, value))
}

pub(super) fn valid_server_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
