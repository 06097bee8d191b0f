//! OAuth 2.1 to a remote server that follows the MCP authorization spec:
//! weir, not a plugin, holds the tokens. The mechanics — protected-resource
//! and authorization-server discovery, registration (pre-registered, then
//! a Client ID Metadata Document, then dynamic), PKCE, resource
//! indicators, `iss` checks, refresh, client credentials — are rmcp's
//! [`AuthorizationManager`]; this module decides when: a token is sent
//! with every request, refreshed before it expires and once after a `401`,
//! and when none will do, a person signs in (if one can be reached) or the
//! request fails saying to run `weir auth login`. One refresh or sign-in
//! at a time per server: many requests meeting the same `401` wait for it
//! and share the result.

mod redirect;
mod store;
mod transport;

use std::sync::Arc;

use oauth2::TokenResponse;
use rmcp::transport::auth::{
    AuthError, AuthorizationManager, AuthorizationRequest, AuthorizationSession,
    ClientCredentialsConfig, JwtSigningAlgorithm, OAuthClientConfig, StoredCredentials,
    WWWAuthenticateParams,
};

pub use redirect::Person;
pub use store::{TokenStore, default_state_dir};
pub(crate) use transport::Authorized;

use crate::config::{Grant, OAuthSettings};
use crate::metrics::Tally;

/// Seconds before expiry a token is refreshed.
const REFRESH_AHEAD_SECS: u64 = 60;
/// Step-ups (re-authorization for a scope a `403` asked for) one request
/// may go through before its error stands.
pub const MAX_STEP_UPS: usize = 2;

/// Why a request was refused, for [`Authorizer::recover`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `401`: no token, or one the server no longer takes.
    Unauthorized,
    /// `403 insufficient_scope`: the token lacks a scope.
    InsufficientScope,
}

/// What the OAuth client of one server counts.
#[derive(Clone)]
pub struct OAuthTallies {
    /// Tokens refreshed.
    pub refreshes: Tally,
    /// Refreshes and sign-ins that failed.
    pub failures: Tally,
}

/// The OAuth client of one remote server, shared by all its sessions.
pub struct Authorizer {
    server: Arc<str>,
    url: url::Url,
    settings: OAuthSettings,
    store: TokenStore,
    person: Person,
    tallies: OAuthTallies,
    /// rmcp's manager once a client is configured (after a sign-in, or
    /// from stored credentials).
    manager: tokio::sync::RwLock<Option<Arc<AuthorizationManager>>>,
    /// One refresh or sign-in at a time.
    one: tokio::sync::Mutex<()>,
    /// The access token whose refresh the authorization server refused,
    /// with why: later requests fail at once with the same words instead
    /// of asking again, until new tokens are stored.
    dead: std::sync::Mutex<Option<(String, String)>>,
}

impl Authorizer {
    /// The client of `server` at `url`, its tokens under `state_dir`.
    pub fn new(
        server: &str,
        url: &url::Url,
        settings: OAuthSettings,
        state_dir: &std::path::Path,
        person: Person,
        tallies: OAuthTallies,
    ) -> Self {
        Self {
            server: Arc::from(server),
            url: url.clone(),
            store: TokenStore::new(state_dir, server, url.as_str()),
            settings,
            person,
            tallies,
            manager: tokio::sync::RwLock::new(None),
            one: tokio::sync::Mutex::new(()),
            dead: std::sync::Mutex::new(None),
        }
    }

    /// The token store, for `weir auth status` and `logout`.
    pub fn store(&self) -> &TokenStore {
        &self.store
    }

    /// The token to send now, if weir has one; refreshed first when it
    /// is about to expire.
    pub async fn token(&self) -> Result<Option<String>, AuthError> {
        let Some(stored) = self.stored()? else {
            return Ok(None);
        };
        let Some(token) = access_token(&stored) else {
            return Ok(None);
        };
        if !expiring(&stored, now()) {
            return Ok(Some(token));
        }
        let _one = self.one.lock().await;
        match self.stored()?.and_then(|s| {
            let fresh = !expiring(&s, now());
            access_token(&s).filter(|t| fresh || *t != token)
        }) {
            // Refreshed while this request waited.
            Some(current) if current != token => Ok(Some(current)),
            _ => self.refresh(&token).await.map(Some),
        }
    }

    /// A token to retry with after the server refused `sent` (`401` or
    /// `403`, its `WWW-Authenticate` in `challenge`): one another request
    /// got meanwhile, a refreshed one, or a new sign-in.
    pub async fn recover(
        &self,
        sent: Option<&str>,
        challenge: &str,
        refusal: Refusal,
    ) -> Result<String, AuthError> {
        let _one = self.one.lock().await;
        if let Some(current) = self.stored()?.as_ref().and_then(access_token)
            && Some(current.as_str()) != sent
        {
            return Ok(current);
        }
        if refusal == Refusal::Unauthorized
            && let Some(sent) = sent
        {
            match self.refresh(sent).await {
                Ok(token) => return Ok(token),
                // No one to sign in again: the refresh's own words stand.
                Err(error) if self.person == Person::Nobody && !self.is_machine() => {
                    return Err(error);
                }
                Err(_) => {}
            }
        }
        self.authorize(Some(challenge), refusal).await
    }

    /// Signs in now (`weir auth login`): the server's challenge, if it
    /// gives one, seeds discovery and scopes.
    pub async fn login(&self) -> Result<StoredCredentials, AuthError> {
        let challenge = self.probe().await;
        let _one = self.one.lock().await;
        self.authorize(challenge.as_deref(), Refusal::Unauthorized)
            .await?;
        self.stored()?
            .ok_or_else(|| AuthError::InternalError("no tokens were stored".into()))
    }

    fn is_machine(&self) -> bool {
        matches!(self.settings.grant, Grant::ClientCredentials { .. })
    }

    fn stored(&self) -> Result<Option<StoredCredentials>, AuthError> {
        self.store.read().map_err(AuthError::CredentialStoreError)
    }

    fn login_hint(&self) -> String {
        format!("run `weir auth login {}`", self.server)
    }

    /// Refreshes `sent` (the token that expired or was refused).
    async fn refresh(&self, sent: &str) -> Result<String, AuthError> {
        if let Some((token, why)) = self.dead.lock().map(|d| d.clone()).unwrap_or_default()
            && token == sent
        {
            return Err(AuthError::AuthorizationFailed(why));
        }
        let manager = self.manager().await?;
        match manager.refresh_token().await {
            Ok(tokens) => {
                self.tallies.refreshes.inc();
                tracing::info!(server = %self.server, "OAuth token refreshed");
                Ok(tokens.access_token().secret().to_owned())
            }
            Err(error) => {
                self.tallies.failures.inc();
                let why = match &error {
                    AuthError::TokenRefreshRejected(_) => format!(
                        "the sign-in to `{}` has expired or was revoked (the authorization \
                         server refused the refresh token); {}",
                        self.server,
                        self.login_hint()
                    ),
                    AuthError::AuthorizationRequired => format!(
                        "the token for `{}` expired and there is no refresh token; {}",
                        self.server,
                        self.login_hint()
                    ),
                    other => {
                        return Err(AuthError::TokenRefreshFailed(format!(
                            "refreshing the token for `{}` failed: {}",
                            self.server,
                            crate::redact::scrub(&other.to_string())
                        )));
                    }
                };
                tracing::warn!(server = %self.server, "{why}");
                if let Ok(mut dead) = self.dead.lock() {
                    *dead = Some((sent.to_owned(), why.clone()));
                }
                Err(AuthError::AuthorizationFailed(why))
            }
        }
    }

    /// The manager for refreshes: the one of the last sign-in, else one
    /// set up from the stored credentials.
    async fn manager(&self) -> Result<Arc<AuthorizationManager>, AuthError> {
        if let Some(manager) = self.manager.read().await.clone() {
            return Ok(manager);
        }
        let mut manager = self.new_manager().await?;
        if !manager.initialize_from_store().await? {
            return Err(AuthError::AuthorizationRequired);
        }
        if let (Some(id), Some(secret)) = (&self.settings.client_id, &self.settings.client_secret) {
            let stored = self.stored()?;
            if stored.is_some_and(|s| s.client_id == *id) {
                manager.configure_client(
                    OAuthClientConfig::new(id.clone(), "http://127.0.0.1/callback")
                        .with_client_secret(secret.clone()),
                )?;
            }
        }
        let manager = Arc::new(manager);
        *self.manager.write().await = Some(manager.clone());
        Ok(manager)
    }

    async fn new_manager(&self) -> Result<AuthorizationManager, AuthError> {
        let mut manager = AuthorizationManager::new(self.url.as_str()).await?;
        manager.set_credential_store(self.store.clone());
        Ok(manager)
    }

    /// Gets new tokens: the client's own credentials, or a person's
    /// sign-in (when one can be reached). Called with `one` held.
    async fn authorize(
        &self,
        challenge: Option<&str>,
        refusal: Refusal,
    ) -> Result<String, AuthError> {
        let result = match &self.settings.grant {
            Grant::ClientCredentials { private_key } => {
                self.client_credentials(challenge, private_key.as_ref())
                    .await
            }
            Grant::AuthorizationCode => self.sign_in(challenge, refusal).await,
        };
        match result {
            Ok(token) => {
                if let Ok(mut dead) = self.dead.lock() {
                    *dead = None;
                }
                Ok(token)
            }
            Err(error) => {
                self.tallies.failures.inc();
                Err(error)
            }
        }
    }

    async fn client_credentials(
        &self,
        challenge: Option<&str>,
        private_key: Option<&crate::config::PrivateKey>,
    ) -> Result<String, AuthError> {
        let mut manager = self.new_manager().await?;
        let resolution = manager.resolve_metadata_from_challenge(challenge).await?;
        manager.set_metadata(resolution.metadata);
        let client_id = self.settings.client_id.clone().unwrap_or_default();
        let scopes = self.scopes_for(&manager, challenge, &[]);
        let resource = Some(self.url.to_string());
        let config = match private_key {
            Some(key) => ClientCredentialsConfig::PrivateKeyJwt {
                client_id,
                signing_key: key.pem.clone(),
                signing_algorithm: signing_algorithm(&key.algorithm),
                token_endpoint_audience: None,
                scopes,
                resource,
            },
            None => ClientCredentialsConfig::ClientSecret {
                client_id,
                client_secret: self.settings.client_secret.clone().unwrap_or_default(),
                scopes,
                resource,
            },
        };
        manager.configure_client_credentials(&config)?;
        // rmcp's private_key_jwt exchange is not `Send` (a URL-encoder it
        // holds across an await): it runs on a thread of its own.
        let runtime = tokio::runtime::Handle::current();
        let (manager, tokens) = tokio::task::spawn_blocking(move || {
            let tokens = runtime.block_on(manager.exchange_client_credentials(&config));
            (manager, tokens)
        })
        .await
        .map_err(|e| AuthError::InternalError(e.to_string()))?;
        let tokens = tokens?;
        let token = tokens.access_token().secret().to_owned();
        crate::redact::register(&token);
        *self.manager.write().await = Some(Arc::new(manager));
        tracing::info!(server = %self.server, "OAuth token from client credentials");
        Ok(token)
    }

    /// The authorization-code flow with PKCE, through a person.
    async fn sign_in(
        &self,
        challenge: Option<&str>,
        refusal: Refusal,
    ) -> Result<String, AuthError> {
        if self.person == Person::Nobody {
            return Err(AuthError::AuthorizationFailed(format!(
                "`{}` needs you to sign in (OAuth) and weir has no browser or terminal to ask \
                 with; {}",
                self.server,
                self.login_hint()
            )));
        }
        let mut manager = self.new_manager().await?;
        let resolution = manager.resolve_metadata_from_challenge(challenge).await?;
        manager.set_metadata(resolution.metadata);
        let redirect = redirect::Redirect::bind(self.settings.redirect_port)
            .await
            .map_err(AuthError::AuthorizationFailed)?;
        // A step-up asks for what was granted and what the server wants
        // now (the union, SEP-2350); a first sign-in for what the
        // challenge, the resource or the config says.
        let granted: Vec<String> = match refusal {
            Refusal::InsufficientScope => {
                self.stored()?.map(|s| s.granted_scopes).unwrap_or_default()
            }
            Refusal::Unauthorized => Vec::new(),
        };
        let mut request = AuthorizationRequest::new(redirect.uri()).with_client_name("weir");
        let scopes = self.scopes_for(&manager, challenge, &granted);
        request = if scopes.is_empty() {
            request.with_initial_scope_selection()
        } else {
            request.with_scopes(scopes)
        };
        if let Some(id) = &self.settings.client_id {
            request = request.with_preregistered_client(id.clone());
            if let Some(secret) = &self.settings.client_secret {
                request = request.with_client_secret(secret.clone());
            }
        }
        if let Some(url) = &self.settings.client_metadata_url {
            request = request.with_client_metadata_url(url.clone());
        }
        let session = AuthorizationSession::new(manager, request)
            .await
            .map_err(|(_, e)| e)?;
        self.person
            .show(&self.server, session.get_authorization_url())
            .map_err(AuthError::AuthorizationFailed)?;
        let callback = redirect
            .receive()
            .await
            .map_err(AuthError::AuthorizationFailed)?;
        if let Some(error) = url::Url::parse(&callback).ok().and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "error")
                .map(|(_, v)| v.into_owned())
        }) {
            return Err(AuthError::AuthorizationFailed(format!(
                "signing in to `{}` failed: the authorization server said {error}",
                self.server
            )));
        }
        let tokens = session.handle_callback_url(&callback).await?;
        let token = tokens.access_token().secret().to_owned();
        crate::redact::register(&token);
        *self.manager.write().await = Some(Arc::new(session.auth_manager));
        tracing::info!(server = %self.server, "signed in (OAuth)");
        Ok(token)
    }

    /// The scopes to ask for: the config's, else the challenge's, else
    /// the resource's `scopes_supported` (rmcp's choice when empty) —
    /// with `granted` kept.
    fn scopes_for(
        &self,
        manager: &AuthorizationManager,
        challenge: Option<&str>,
        granted: &[String],
    ) -> Vec<String> {
        let challenged = challenge
            .map(|c| WWWAuthenticateParams::parse(c, &self.url))
            .and_then(|p| p.scope)
            .map(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
            .unwrap_or_default();
        let mut scopes: Vec<String> = Vec::new();
        for scope in granted
            .iter()
            .chain(&self.settings.scopes)
            .chain(&challenged)
        {
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        if scopes.is_empty() {
            return Vec::new();
        }
        if granted.is_empty() && challenged.is_empty() && self.settings.scopes.is_empty() {
            return manager.select_scopes(None, &[]);
        }
        scopes
    }

    /// The server's challenge to a request without a token, if it gives
    /// one (for `weir auth login`, which has no request of its own).
    async fn probe(&self) -> Option<String> {
        let client = reqwest::Client::new();
        let response = client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":0,"method":"ping"}"#)
            .send()
            .await
            .ok()?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED {
            return None;
        }
        response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

fn signing_algorithm(name: &str) -> JwtSigningAlgorithm {
    match name {
        "RS384" => JwtSigningAlgorithm::RS384,
        "RS512" => JwtSigningAlgorithm::RS512,
        "ES256" => JwtSigningAlgorithm::ES256,
        "ES384" => JwtSigningAlgorithm::ES384,
        _ => JwtSigningAlgorithm::RS256,
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn access_token(stored: &StoredCredentials) -> Option<String> {
    stored
        .token_response
        .as_ref()
        .map(|t| t.access_token().secret().to_owned())
}

/// Seconds until the stored token expires (`None`: not said).
pub fn expires_in(stored: &StoredCredentials, now: u64) -> Option<i64> {
    let lifetime = stored.token_response.as_ref()?.expires_in()?.as_secs();
    let received = stored.token_received_at?;
    Some(received as i64 + lifetime as i64 - now as i64)
}

/// About to expire: within a minute (or half its lifetime, if shorter).
fn expiring(stored: &StoredCredentials, now: u64) -> bool {
    let Some(left) = expires_in(stored, now) else {
        return false;
    };
    let lifetime = stored
        .token_response
        .as_ref()
        .and_then(|t| t.expires_in())
        .map(|d| d.as_secs())
        .unwrap_or_default();
    left < REFRESH_AHEAD_SECS.min(lifetime / 2).max(1) as i64
}

/// What `weir auth status` shows of stored credentials: never a token.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedIn {
    /// Who the token is for, when it says (a JWT's `email`,
    /// `preferred_username` or `sub`; read, not verified: it is display).
    pub who: Option<String>,
    /// The OAuth client weir signed in as.
    pub client_id: String,
    /// The authorization server that issued the tokens.
    pub issuer: Option<String>,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// Seconds until the access token expires (negative: expired).
    pub expires_in: Option<i64>,
    /// A refresh token is held (the sign-in outlives the access token).
    pub refreshable: bool,
}

impl SignedIn {
    /// The summary of `stored`, as of now.
    pub fn of(stored: &StoredCredentials) -> Self {
        #[derive(serde::Deserialize)]
        struct Claims {
            sub: Option<String>,
            email: Option<String>,
            preferred_username: Option<String>,
        }
        let who = access_token(stored)
            .and_then(|t| jsonwebtoken::dangerous::insecure_decode_claims::<Claims>(t).ok())
            .and_then(|c| c.email.or(c.preferred_username).or(c.sub));
        Self {
            who,
            client_id: stored.client_id.clone(),
            issuer: stored.issuer.clone(),
            scopes: stored.granted_scopes.clone(),
            expires_in: expires_in(stored, now()),
            refreshable: stored
                .token_response
                .as_ref()
                .is_some_and(|t| t.refresh_token().is_some()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(expires_in: Option<u64>, received: u64) -> StoredCredentials {
        let mut json = serde_json::json!({
            "access_token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZGEifQ.",
            "token_type": "bearer",
            "refresh_token": "r1",
        });
        if let Some(secs) = expires_in {
            json["expires_in"] = secs.into();
        }
        let tokens = serde_json::from_value(json).expect("token response");
        StoredCredentials::new(
            "weir".into(),
            Some(tokens),
            vec!["read".into()],
            Some(received),
        )
    }

    /// Refreshed a minute ahead, or at half the lifetime of a short one;
    /// a token that does not say when it expires is used until refused.
    #[test]
    fn refreshes_ahead_of_expiry() {
        assert!(!expiring(&stored(Some(3600), 1000), 1000 + 3000));
        assert!(expiring(&stored(Some(3600), 1000), 1000 + 3550));
        assert!(expiring(&stored(Some(3600), 1000), 1000 + 9999));
        assert!(!expiring(&stored(Some(10), 1000), 1004));
        assert!(expiring(&stored(Some(10), 1000), 1006));
        assert!(!expiring(&stored(None, 1000), 99999));
        assert_eq!(expires_in(&stored(Some(3600), 1000), 1600), Some(3000));
    }

    /// Status shows who, scopes and expiry — never a token.
    #[test]
    fn status_shows_no_token() {
        let shown = SignedIn::of(&stored(Some(3600), now()));
        assert_eq!(shown.who.as_deref(), Some("ada"));
        assert_eq!(shown.scopes, ["read"]);
        assert!(shown.refreshable);
        assert!(shown.expires_in.is_some_and(|s| s > 3500));
        let debug = format!("{shown:?}");
        assert!(!debug.contains("eyJ") && !debug.contains("r1"), "{debug}");
    }
}
