//! A remote server's `"oauth"` entry: how weir authorizes to a server that
//! follows the MCP authorization spec. Every key is optional — a server
//! that answers `401` with a Bearer challenge is authorized with dynamic
//! registration (or a Client ID Metadata Document) and PKCE without any:
//!
//! ```json
//! "oauth": {"client_id": "weir-prod", "client_secret": "${LINEAR_SECRET}",
//!           "scopes": ["read", "write"], "redirect_port": 33418,
//!           "client_metadata_url": "https://weir.example/client.json",
//!           "grant": "client_credentials"}
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Ctx};

/// The `"oauth"` entry as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOAuth {
    #[serde(alias = "clientId")]
    client_id: Option<String>,
    #[serde(alias = "clientSecret")]
    client_secret: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(alias = "clientMetadataUrl")]
    client_metadata_url: Option<String>,
    #[serde(alias = "redirectPort")]
    redirect_port: Option<u16>,
    grant: Option<String>,
    #[serde(alias = "privateKeyFile")]
    private_key_file: Option<String>,
    #[serde(alias = "signingAlgorithm")]
    signing_algorithm: Option<String>,
}

/// How weir gets a token for one remote server. Its `Debug` shows no
/// secret.
#[derive(Clone, PartialEq, Default)]
pub struct OAuthSettings {
    /// A client registered beforehand with the authorization server; with
    /// none, weir uses `client_metadata_url` where the server accepts it,
    /// else registers itself (RFC 7591).
    pub client_id: Option<String>,
    /// The registered client's secret (`${VAR}` expanded, redacted).
    pub client_secret: Option<String>,
    /// Scopes to ask for; empty: the server's challenge, else its
    /// `scopes_supported`, else none.
    pub scopes: Vec<String>,
    /// weir's Client ID Metadata Document (an `https` URL), used as the
    /// client id where the authorization server supports them.
    pub client_metadata_url: Option<String>,
    /// The loopback port the authorization redirect comes back to; `None`:
    /// any free port (fine with dynamic registration; a pre-registered
    /// client usually names one).
    pub redirect_port: Option<u16>,
    /// Which grant gets the token.
    pub grant: Grant,
}

/// The OAuth grant weir uses for a server.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Grant {
    /// A person signs in in a browser (authorization code + PKCE).
    #[default]
    AuthorizationCode,
    /// Machine to machine, no person: the client's own credentials — its
    /// secret, or a JWT signed with its private key (RFC 7523).
    ClientCredentials {
        /// PEM private key for `private_key_jwt`; `None`: the secret.
        private_key: Option<PrivateKey>,
    },
}

/// A client's signing key for `private_key_jwt`.
#[derive(Clone, PartialEq)]
pub struct PrivateKey {
    /// Where it was read from, for messages.
    pub path: PathBuf,
    /// The PEM bytes.
    pub pem: Vec<u8>,
    /// `RS256`, `ES256`, ... as the authorization server expects.
    pub algorithm: String,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("path", &self.path)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for OAuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthSettings")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "***"))
            .field("scopes", &self.scopes)
            .field("client_metadata_url", &self.client_metadata_url)
            .field("redirect_port", &self.redirect_port)
            .field("grant", &self.grant)
            .finish()
    }
}

/// Signing algorithms `private_key_jwt` may use.
const ALGORITHMS: &[&str] = &["RS256", "RS384", "RS512", "ES256", "ES384"];

/// Checks `raw` (at `at`, e.g. `mcpServers.linear.oauth`).
pub(super) fn read(raw: RawOAuth, at: &str, ctx: &Ctx<'_>) -> Result<OAuthSettings, ConfigError> {
    let field = |f: &str| format!("{at}.{f}");
    let client_id = match raw.client_id {
        Some(id) => Some(
            non_empty(ctx.expand_secret(field("client_id"), &id)?)
                .ok_or_else(|| ctx.invalid(field("client_id"), "empty client id".into()))?,
        ),
        None => None,
    };
    let client_secret = match raw.client_secret {
        Some(secret) => {
            let secret = ctx.expand_secret(field("client_secret"), &secret)?;
            crate::redact::register(&secret);
            Some(secret)
        }
        None => None,
    };
    if client_secret.is_some() && client_id.is_none() {
        return Err(ctx.invalid(
            field("client_secret"),
            "a client secret belongs to a registered client: give its \"client_id\" too".into(),
        ));
    }
    if let Some(url) = &raw.client_metadata_url {
        let parsed = url::Url::parse(url).ok();
        if !parsed.is_some_and(|u| u.scheme() == "https" && u.path() != "/") {
            return Err(ctx.invalid(
                field("client_metadata_url"),
                format!("{url:?} is not an https URL with a path (a Client ID Metadata Document)"),
            ));
        }
    }
    if let Some(scope) = raw.scopes.iter().find(|s| s.is_empty() || s.contains(' ')) {
        return Err(ctx.invalid(
            field("scopes"),
            format!("{scope:?} is not a scope (one word each)"),
        ));
    }
    let grant = match raw.grant.as_deref() {
        None | Some("authorization_code") => {
            if raw.private_key_file.is_some() {
                return Err(ctx.invalid(
                    field("private_key_file"),
                    "a private key is for \"grant\": \"client_credentials\"".into(),
                ));
            }
            Grant::AuthorizationCode
        }
        Some("client_credentials") => {
            if client_id.is_none() {
                return Err(ctx.invalid(
                    field("grant"),
                    "client_credentials needs the registered \"client_id\"".into(),
                ));
            }
            let private_key = match raw.private_key_file {
                Some(path) => Some(read_key(path, raw.signing_algorithm, &field, ctx)?),
                None => {
                    if client_secret.is_none() {
                        return Err(ctx.invalid(
                            field("grant"),
                            "client_credentials needs \"client_secret\" or \"private_key_file\""
                                .into(),
                        ));
                    }
                    None
                }
            };
            Grant::ClientCredentials { private_key }
        }
        Some(other) => {
            return Err(ctx.invalid(
                field("grant"),
                format!(
                    "unknown grant {other:?}; use \"authorization_code\" or \"client_credentials\""
                ),
            ));
        }
    };
    Ok(OAuthSettings {
        client_id,
        client_secret,
        scopes: raw.scopes,
        client_metadata_url: raw.client_metadata_url,
        redirect_port: raw.redirect_port,
        grant,
    })
}

fn read_key(
    path: String,
    algorithm: Option<String>,
    field: &dyn Fn(&str) -> String,
    ctx: &Ctx<'_>,
) -> Result<PrivateKey, ConfigError> {
    let path = PathBuf::from(ctx.expand_secret(field("private_key_file"), &path)?);
    let pem = std::fs::read(&path).map_err(|e| {
        ctx.invalid(
            field("private_key_file"),
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let algorithm = algorithm.unwrap_or_else(|| "RS256".to_owned());
    if !ALGORITHMS.contains(&algorithm.as_str()) {
        return Err(ctx.invalid(
            field("signing_algorithm"),
            format!(
                "unknown algorithm {algorithm:?}; use one of {}",
                ALGORITHMS.join(", ")
            ),
        ));
    }
    Ok(PrivateKey {
        path,
        pem,
        algorithm,
    })
}

fn non_empty(s: String) -> Option<String> {
    let s = s.trim().to_owned();
    (!s.is_empty()).then_some(s)
}
