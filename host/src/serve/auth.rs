//! `weir serve --http` as an OAuth resource server (`weir.auth`, see
//! [`crate::config::ServeAuth`]): each request's bearer token checked —
//! a static token compared in constant time, or a JWT verified with
//! `jsonwebtoken` against the issuer's JWKS (issuer, audience = weir's
//! resource URI, expiry, a signing key it publishes) — and what a refusal
//! says, so a client can go and get a token: `401` with
//! `WWW-Authenticate: Bearer resource_metadata=…` pointing at the
//! protected-resource metadata (RFC 9728) weir serves.
//!
//! The JWKS is fetched on first use and kept; a token signed with a key
//! id it does not have makes weir fetch it again (keys rotate), at most
//! once per [`JWKS_REFETCH`], so a flood of bad tokens is not a flood of
//! fetches.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;

use crate::config::{ServeAuth, TokenCheck};

/// The least time between two fetches of the JWKS.
pub const JWKS_REFETCH: Duration = Duration::from_secs(30);

/// Where the protected-resource metadata is served (RFC 9728).
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// Who a good token says is calling, and what it may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    /// The token's `sub`, where it has one (for the log, never the token).
    pub subject: Option<String>,
    /// Its scopes (`scope`, space-separated, or `scp`).
    pub scopes: BTreeSet<String>,
}

/// Why a token was refused: what the `WWW-Authenticate` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` at all.
    Missing,
    /// A token, but not a good one; the description says why.
    Invalid(String),
}

/// Checks tokens for one `weir serve`.
pub struct Gatekeeper {
    auth: ServeAuth,
    /// For the JWKS; made on first use (static tokens never need it).
    http: std::sync::OnceLock<reqwest::Client>,
    jwks: tokio::sync::Mutex<Option<JwkSet>>,
    fetched_at: Mutex<Option<Instant>>,
    /// The least time between two JWKS fetches ([`JWKS_REFETCH`]).
    refetch_after: Duration,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    scope: Option<String>,
    scp: Option<Vec<String>>,
}

impl Gatekeeper {
    /// A gatekeeper for `auth`.
    pub fn new(auth: ServeAuth) -> Self {
        Self {
            auth,
            http: std::sync::OnceLock::new(),
            jwks: tokio::sync::Mutex::new(None),
            fetched_at: Mutex::new(None),
            refetch_after: JWKS_REFETCH,
        }
    }

    /// The settings it checks by.
    pub fn auth(&self) -> &ServeAuth {
        &self.auth
    }

    /// Checks the `Authorization` header's value.
    pub async fn check(&self, authorization: Option<&str>) -> Result<Granted, Refusal> {
        let token = authorization
            .and_then(|h| {
                let (scheme, token) = h.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(Refusal::Missing)?;
        match &self.auth.check {
            TokenCheck::Static(tokens) => {
                if tokens.iter().any(|t| same(t.as_bytes(), token.as_bytes())) {
                    Ok(Granted {
                        subject: None,
                        scopes: self.auth.scopes.keys().cloned().collect(),
                    })
                } else {
                    Err(Refusal::Invalid("the token is not one weir accepts".into()))
                }
            }
            TokenCheck::Jwt {
                resource,
                issuer,
                jwks_url,
            } => self.check_jwt(token, resource, issuer, jwks_url).await,
        }
    }

    async fn check_jwt(
        &self,
        token: &str,
        resource: &str,
        issuer: &str,
        jwks_url: &str,
    ) -> Result<Granted, Refusal> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| Refusal::Invalid(format!("not a JWT: {e}")))?;
        // Only the issuer's public keys sign: a symmetric algorithm would
        // let anyone who has the public key sign with it as a secret.
        if matches!(
            header.alg,
            jsonwebtoken::Algorithm::HS256
                | jsonwebtoken::Algorithm::HS384
                | jsonwebtoken::Algorithm::HS512
        ) {
            return Err(Refusal::Invalid(format!(
                "the JWT is signed with {:?}; weir accepts only the issuer's public-key signatures",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| Refusal::Invalid("the JWT names no signing key (kid)".into()))?;
        let (key, declared) = self.key(&kid, jwks_url).await?;
        if declared.is_some_and(|alg| alg != header.alg) {
            return Err(Refusal::Invalid(format!(
                "the JWT says {:?}, but the issuer's key `{kid}` is for {declared:?}",
                header.alg
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[resource]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| Refusal::Invalid(describe(&e)))?;
        let mut scopes: BTreeSet<String> = data
            .claims
            .scope
            .as_deref()
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        scopes.extend(data.claims.scp.unwrap_or_default());
        Ok(Granted {
            subject: data.claims.sub,
            scopes,
        })
    }

    /// The issuer's key `kid`, from the kept JWKS or a fresh one, with the
    /// algorithm the JWKS declares for it (if it does).
    async fn key(
        &self,
        kid: &str,
        jwks_url: &str,
    ) -> Result<(DecodingKey, Option<jsonwebtoken::Algorithm>), Refusal> {
        let mut jwks = self.jwks.lock().await;
        let known = jwks.as_ref().and_then(|set| set.find(kid)).is_some();
        if !known && self.may_fetch() {
            match self.fetch(jwks_url).await {
                Ok(set) => *jwks = Some(set),
                Err(why) => {
                    tracing::warn!(%why, url = jwks_url, "cannot fetch the issuer's JWKS");
                    if jwks.is_none() {
                        return Err(Refusal::Invalid(format!(
                            "weir cannot fetch the issuer's signing keys ({why})"
                        )));
                    }
                }
            }
        }
        let jwk = jwks
            .as_ref()
            .and_then(|set| set.find(kid))
            .ok_or_else(|| Refusal::Invalid(format!("the issuer has no signing key `{kid}`")))?;
        let declared = jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse::<jsonwebtoken::Algorithm>().ok());
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| Refusal::Invalid(format!("the issuer's key `{kid}` is unusable: {e}")))?;
        Ok((key, declared))
    }

    fn may_fetch(&self) -> bool {
        let Ok(mut at) = self.fetched_at.lock() else {
            return false;
        };
        if at.is_some_and(|t| t.elapsed() < self.refetch_after) {
            return false;
        }
        *at = Some(Instant::now());
        true
    }

    async fn fetch(&self, url: &str) -> Result<JwkSet, String> {
        let http = match self.http.get() {
            Some(http) => http,
            None => {
                // The host installs it at start; a gatekeeper made alone
                // (tests) may be first.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let built = reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
                self.http.get_or_init(|| built)
            }
        };
        let response = http.get(url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&body).map_err(|e| format!("not a JWKS: {e}"))
    }

    /// The protected-resource metadata (RFC 9728) for `resource`.
    pub fn metadata(&self, resource: &str) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "resource": resource,
            "bearer_methods_supported": ["header"],
        });
        if let TokenCheck::Jwt { issuer, .. } = &self.auth.check {
            doc["authorization_servers"] = serde_json::json!([issuer]);
        }
        let scopes = self.auth.scopes_supported();
        if !scopes.is_empty() {
            doc["scopes_supported"] = serde_json::json!(scopes);
        }
        doc
    }

    /// The `WWW-Authenticate` of a refusal; `metadata_url` is where the
    /// protected-resource metadata is.
    pub fn challenge(&self, refusal: &Refusal, metadata_url: &str) -> String {
        let mut challenge = format!("Bearer resource_metadata=\"{metadata_url}\"");
        let scopes = self.auth.scopes_supported();
        if !scopes.is_empty() {
            challenge.push_str(&format!(", scope=\"{}\"", scopes.join(" ")));
        }
        if let Refusal::Invalid(why) = refusal {
            let why = why.replace(['"', '\\'], "'");
            challenge.push_str(&format!(
                ", error=\"invalid_token\", error_description=\"{why}\""
            ));
        }
        challenge
    }
}

/// Whether `granted` may see and call the tool clients know as `name`
/// (every tool, where `auth` maps no scopes).
pub fn allows(auth: &ServeAuth, granted: &Granted, name: &str) -> bool {
    if auth.scopes.is_empty() {
        return true;
    }
    granted.scopes.iter().any(|scope| {
        auth.scopes
            .get(scope)
            .is_some_and(|patterns| patterns.iter().any(|p| matches(p, name)))
    })
}

/// `*`, `prefix*` or an exact name.
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// A JWT error as a client can act on it.
fn describe(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "the token has expired".into(),
        ErrorKind::InvalidAudience => "the token is for another resource (aud)".into(),
        ErrorKind::InvalidIssuer => "the token is from another issuer (iss)".into(),
        ErrorKind::InvalidSignature => "the token's signature does not verify".into(),
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no `{claim}`"),
        ErrorKind::InvalidAlgorithm => "the token's algorithm does not fit the key".into(),
        other => format!("the token does not verify ({other:?})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn keeper(scopes: &[(&str, &[&str])]) -> Gatekeeper {
        Gatekeeper::new(ServeAuth {
            check: TokenCheck::Static(vec!["0123456789abcdef-token".into()]),
            scopes: scopes
                .iter()
                .map(|(s, p)| ((*s).to_owned(), p.iter().map(|x| (*x).to_owned()).collect()))
                .collect::<BTreeMap<_, _>>(),
            protect_status: false,
        })
    }

    #[tokio::test]
    async fn static_tokens_and_what_a_refusal_says() {
        let k = keeper(&[]);
        assert!(k.check(Some("Bearer 0123456789abcdef-token")).await.is_ok());
        assert!(k.check(Some("bearer 0123456789abcdef-token")).await.is_ok());
        assert_eq!(k.check(None).await, Err(Refusal::Missing));
        assert_eq!(k.check(Some("Basic abc")).await, Err(Refusal::Missing));
        let wrong = k.check(Some("Bearer 0123456789abcdef-toke")).await;
        let Err(refusal) = wrong else {
            panic!("accepted")
        };
        let challenge = k.challenge(&refusal, "http://h/.well-known/oauth-protected-resource");
        assert!(challenge.starts_with(
            "Bearer resource_metadata=\"http://h/.well-known/oauth-protected-resource\""
        ));
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }

    /// A P-256 key (PKCS#8 DER, hex), made for this test only.
    const KEY_1: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b02\
         010104207f9bf05c33278a0f891b8d3432f94b07177161eb6ce309e179f5572f\
         99a757f0a1440342000428838ee3a9fea1388833e59f5ec5f3d8a0feb3470106\
         c366f0428b7fd0d93f0a4be691894072e6cf8e6cd773afd1763c0c3c54d7794b\
         a3a1b7b330926fcbccdb";
    const JWK_1: &str = r#"{"kty": "EC", "crv": "P-256", "x": "KIOO46n-oTiIM-WfXsXz2KD-s0cBBsNm8EKLf9DZPwo", "y": "S-aRiUBy5s-ObNdzr9F2PAw8VNd5S6Oht7Mwkm_LzNs", "kid": "k1", "alg": "ES256", "use": "sig"}"#;
    /// A P-256 key (PKCS#8 DER, hex), made for this test only.
    const KEY_2: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b02\
         01010420e1a0554ac5ad470a19174c0009beedb0f9e774ac0db60878a867a423\
         09685141a14403420004f1509e8226e42f54bb86989b40ca6bff7fd440de48a2\
         3fb1b980ee24e6b687a2bd6c6e336c43df5ee0d95b1958e3b512beb7dfb4f4a5\
         0ba661f445db71d5be00";
    const JWK_2: &str = r#"{"kty": "EC", "crv": "P-256", "x": "8VCegibkL1S7hpibQMpr_3_UQN5Ioj-xuYDuJOa2h6I", "y": "vWxuM2xD317g2VsZWOO1Er6337T0pQumYfRF23HVvgA", "kid": "k2", "alg": "ES256", "use": "sig"}"#;

    /// A JWKS endpoint on loopback whose keys the test swaps; counts fetches.
    async fn jwks_server(
        keys: std::sync::Arc<Mutex<String>>,
        fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0u8; 2048];
                let _ = stream.read(&mut request).await;
                fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = format!(r#"{{"keys": [{}]}}"#, keys.lock().expect("keys"));
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        url
    }

    fn signed(kid: &str, hex: &str) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        let claims = serde_json::json!({
            "iss": "https://login.example", "aud": "https://weir.example/mcp",
            "sub": "ada", "scope": "read",
            "exp": jsonwebtoken::get_current_timestamp() + 600,
        });
        let der: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let key = jsonwebtoken::EncodingKey::from_ec_der(&der);
        format!(
            "Bearer {}",
            jsonwebtoken::encode(&header, &claims, &key).expect("signed")
        )
    }

    /// The issuer rotates its key: a token signed with the new one is taken
    /// after one refetch, the retired key's tokens are refused; unknown
    /// kids do not refetch more than once per interval.
    #[tokio::test]
    async fn jwks_rotation_is_followed() {
        let keys = std::sync::Arc::new(Mutex::new(JWK_1.to_owned()));
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let url = jwks_server(keys.clone(), fetches.clone()).await;
        let mut keeper = Gatekeeper::new(ServeAuth {
            check: TokenCheck::Jwt {
                resource: "https://weir.example/mcp".into(),
                issuer: "https://login.example".into(),
                jwks_url: url,
            },
            scopes: BTreeMap::new(),
            protect_status: false,
        });
        keeper.refetch_after = Duration::ZERO;
        let fetched = || fetches.load(std::sync::atomic::Ordering::SeqCst);
        let granted = keeper
            .check(Some(&signed("k1", KEY_1)))
            .await
            .expect("k1 good");
        assert_eq!(granted.subject.as_deref(), Some("ada"));
        keeper
            .check(Some(&signed("k1", KEY_1)))
            .await
            .expect("k1 still good");
        assert_eq!(fetched(), 1, "the JWKS is kept");

        *keys.lock().expect("keys") = JWK_2.to_owned();
        keeper
            .check(Some(&signed("k2", KEY_2)))
            .await
            .expect("k2 good after a refetch");
        assert_eq!(fetched(), 2);
        let retired = keeper.check(Some(&signed("k1", KEY_1))).await;
        assert_eq!(
            retired,
            Err(Refusal::Invalid(
                "the issuer has no signing key `k1`".into()
            ))
        );
        // A key signed with k2's name but k1's key does not verify.
        let forged = keeper.check(Some(&signed("k2", KEY_1))).await;
        assert!(matches!(forged, Err(Refusal::Invalid(_))), "{forged:?}");

        // With the default interval, a flood of unknown kids costs no fetch.
        keeper.refetch_after = JWKS_REFETCH;
        let before = fetched();
        for _ in 0..20 {
            assert!(keeper.check(Some(&signed("k9", KEY_1))).await.is_err());
        }
        assert!(fetched() <= before + 1, "{} fetches", fetched() - before);
    }

    #[test]
    fn scopes_decide_which_tools() {
        let k = keeper(&[("read", &["hello", "test.echo"]), ("all", &["*"])]);
        let with = |scopes: &[&str]| Granted {
            subject: None,
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        };
        let a = k.auth();
        assert!(allows(a, &with(&["read"]), "hello"));
        assert!(!allows(a, &with(&["read"]), "test.crash"));
        assert!(allows(a, &with(&["all"]), "test.crash"));
        assert!(!allows(a, &with(&[]), "hello"));
        assert!(
            allows(keeper(&[]).auth(), &with(&[]), "anything"),
            "no map: every tool"
        );
    }
}
