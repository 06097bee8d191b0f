//! `weir.auth`: who may use `weir serve --http`. Without it the endpoint is
//! open to whoever can reach the port (loopback by default). With it every
//! MCP request needs `Authorization: Bearer TOKEN`, checked one of two
//! ways:
//!
//! ```json
//! "auth": {"tokens": ["${WEIR_SERVE_TOKEN}"]}
//! "auth": {"resource": "https://weir.example/mcp",
//!          "issuer": "https://login.example", "jwks_url": "https://login.example/jwks",
//!          "scopes": {"tools.read": ["hello", "test.echo"], "tools.all": ["*"]}}
//! ```
//!
//! Static tokens are for simple setups (one shared secret, `${VAR}`
//! expanded and redacted). JWTs are what an OAuth authorization server
//! issues: their signature is checked against the issuer's JWKS, and their
//! issuer, audience (the `resource`: weir's own URI), expiry and scopes.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Ctx;

/// `weir.auth` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    tokens: Option<Vec<String>>,
    resource: Option<String>,
    issuer: Option<String>,
    jwks_url: Option<String>,
    #[serde(default)]
    scopes: BTreeMap<String, Vec<String>>,
    protect_status: Option<bool>,
}

/// How `weir serve --http` tells who may call it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeAuth {
    pub check: TokenCheck,
    /// Scope → the tools (names as clients see them; `*` and `prefix*`
    /// patterns) a token with it may see and call. Empty: any valid token
    /// reaches every tool.
    pub scopes: BTreeMap<String, Vec<String>>,
    /// `/metrics` and the status page need a token too (default: open,
    /// like the endpoint's loopback default).
    pub protect_status: bool,
}

/// What makes a bearer token good.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenCheck {
    /// One of these exact strings.
    Static(Vec<String>),
    /// A JWT signed by a key of `jwks_url`, from `issuer`, for `resource`.
    Jwt {
        resource: String,
        issuer: String,
        jwks_url: String,
    },
}

impl ServeAuth {
    /// The scopes a client can be told to ask for (the protected-resource
    /// metadata's `scopes_supported`).
    pub fn scopes_supported(&self) -> Vec<String> {
        self.scopes.keys().cloned().collect()
    }

    /// The resource URI, where JWTs name one.
    pub fn resource(&self) -> Option<&str> {
        match &self.check {
            TokenCheck::Jwt { resource, .. } => Some(resource),
            TokenCheck::Static(_) => None,
        }
    }
}

/// Reads `weir.auth`, when there is one.
pub(super) fn read(
    raw: Option<RawAuth>,
    ctx: &Ctx<'_>,
) -> Result<Option<ServeAuth>, super::ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let at = |field: &str| format!("weir.auth.{field}");
    let jwt = (raw.issuer.as_ref(), raw.jwks_url.as_ref());
    let check = match (raw.tokens, jwt) {
        (Some(_), (Some(_), _) | (_, Some(_))) => {
            return Err(ctx.invalid(
                at("tokens"),
                "give either `tokens` (static bearer tokens) or `issuer` and `jwks_url` (JWTs), not both".into(),
            ));
        }
        (Some(tokens), (None, None)) => {
            let mut expanded = Vec::new();
            for (i, token) in tokens.iter().enumerate() {
                let token = ctx.expand_secret(format!("weir.auth.tokens[{i}]"), token)?;
                if token.len() < 16 {
                    return Err(ctx.invalid(
                        format!("weir.auth.tokens[{i}]"),
                        "a token shorter than 16 characters is too easy to guess".into(),
                    ));
                }
                crate::redact::register(&token);
                expanded.push(token);
            }
            if expanded.is_empty() {
                return Err(ctx.invalid(at("tokens"), "no token given".into()));
            }
            TokenCheck::Static(expanded)
        }
        (None, (Some(issuer), Some(jwks_url))) => {
            let resource = raw.resource.clone().ok_or_else(|| {
                ctx.invalid(
                    at("resource"),
                    "JWTs need the resource URI they are issued for (weir's own, e.g. https://weir.example/mcp): their audience".into(),
                )
            })?;
            for (field, value) in [
                ("resource", &resource),
                ("issuer", issuer),
                ("jwks_url", jwks_url),
            ] {
                if !(value.starts_with("https://") || value.starts_with("http://")) {
                    return Err(ctx.invalid(at(field), format!("`{value}` is not an http(s) URL")));
                }
            }
            TokenCheck::Jwt {
                resource,
                issuer: issuer.clone(),
                jwks_url: ctx.expand(at("jwks_url"), jwks_url)?,
            }
        }
        (None, (Some(_), None)) => {
            return Err(ctx.invalid(at("jwks_url"), "JWTs need the issuer's `jwks_url`".into()));
        }
        (None, (None, Some(_))) => {
            return Err(ctx.invalid(at("issuer"), "JWTs need their `issuer`".into()));
        }
        (None, (None, None)) => {
            return Err(ctx.invalid(
                "weir.auth".into(),
                "say how tokens are checked: `tokens`, or `issuer` and `jwks_url`".into(),
            ));
        }
    };
    Ok(Some(ServeAuth {
        check,
        scopes: raw.scopes,
        protect_status: raw.protect_status.unwrap_or(false),
    }))
}
