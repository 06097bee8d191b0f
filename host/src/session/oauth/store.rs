//! Where OAuth tokens live between runs: one private file per remote
//! server's resource URL under `STATE/oauth/` (0600 files in a 0700
//! directory). A file or directory other users could read is refused, not
//! used: a token there may already be someone else's. The credentials are
//! rmcp's [`StoredCredentials`] (tokens, client id, granted scopes, the
//! issuer they came from), so a token from another authorization server is
//! never sent (rmcp drops those on load).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rmcp::transport::auth::{AuthError, CredentialStore, StoredCredentials};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The default state directory: `$WEIR_STATE_DIR`, else
/// `$XDG_STATE_HOME/weir`, else `~/.local/state/weir`.
pub fn default_state_dir() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os("WEIR_STATE_DIR")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("XDG_STATE_HOME")
                .and_then(absolute)
                .map(|p| p.join("weir"))
        })
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/weir")))
}

/// What one token file holds.
#[derive(Serialize, Deserialize)]
struct TokenFile {
    /// The server's MCP endpoint the tokens are for (the RFC 8707 resource).
    resource: String,
    /// weir's name for the server when they were stored, for `weir auth status`.
    server: String,
    credentials: StoredCredentials,
}

/// The token file of one remote server. Cloned into rmcp's authorization
/// manager; every clone reads and writes the same file.
#[derive(Clone)]
pub struct TokenStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    resource: String,
    server: String,
    /// Writes go one at a time (and reads see whole files: writes rename).
    write: tokio::sync::Mutex<()>,
}

impl TokenStore {
    /// The store for `server` (weir's name) at `resource` (its URL), under
    /// `state_dir`.
    pub fn new(state_dir: &Path, server: &str, resource: &str) -> Self {
        let digest = Sha256::digest(resource.as_bytes());
        let name: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        Self {
            inner: Arc::new(Inner {
                path: state_dir.join("oauth").join(format!("{name}.json")),
                resource: resource.to_owned(),
                server: server.to_owned(),
                write: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The file, for messages.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The stored credentials, if any.
    pub fn read(&self) -> Result<Option<StoredCredentials>, String> {
        let path = &self.inner.path;
        let dir = path.parent().unwrap_or(path);
        match std::fs::metadata(dir) {
            Ok(meta) => private(dir, &meta, 0o700)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
        }
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let meta =
            std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        private(path, &meta, 0o600)?;
        let file: TokenFile = serde_json::from_slice(&text).map_err(|e| {
            format!(
                "{} is not a weir token file ({e}); delete it (`weir auth logout`) and sign in again",
                path.display()
            )
        })?;
        if file.resource != self.inner.resource {
            return Ok(None);
        }
        register_secrets(&file.credentials);
        Ok(Some(file.credentials))
    }

    /// Replaces the stored credentials.
    pub fn write(&self, credentials: StoredCredentials) -> Result<(), String> {
        register_secrets(&credentials);
        let path = &self.inner.path;
        let dir = path.parent().unwrap_or(path);
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
            .map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        let file = TokenFile {
            resource: self.inner.resource.clone(),
            server: self.inner.server.clone(),
            credentials,
        };
        let text = serde_json::to_vec_pretty(&file).map_err(|e| e.to_string())?;
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .and_then(|mut f| f.write_all(&text).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&temporary, path));
        written.map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            format!("cannot write {}: {e}", path.display())
        })
    }

    /// Forgets the credentials; `true` if there were any.
    pub fn remove(&self) -> Result<bool, String> {
        match std::fs::remove_file(&self.inner.path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!("cannot remove {}: {e}", self.inner.path.display())),
        }
    }
}

/// Refuses `path` when its mode lets anyone but its owner in.
fn private(path: &Path, meta: &std::fs::Metadata, wanted: u32) -> Result<(), String> {
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "refusing to use OAuth tokens in {}: its mode is {mode:04o}, so other users can read \
             it; run `chmod {wanted:o} {}` (or delete it and sign in again)",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

/// Tokens read or written are secrets from then on: scrubbed from every
/// message weir writes.
fn register_secrets(credentials: &StoredCredentials) {
    use oauth2::TokenResponse;
    use rmcp::transport::auth::OAuthTokenResponse;
    if let Some(tokens) = &credentials.token_response {
        let tokens: &OAuthTokenResponse = tokens;
        crate::redact::register(tokens.access_token().secret());
        if let Some(refresh) = tokens.refresh_token() {
            crate::redact::register(refresh.secret());
        }
    }
}

#[async_trait::async_trait]
impl CredentialStore for TokenStore {
    async fn load(&self) -> Result<Option<StoredCredentials>, AuthError> {
        self.read().map_err(AuthError::CredentialStoreError)
    }

    async fn save(&self, credentials: StoredCredentials) -> Result<(), AuthError> {
        let _one = self.inner.write.lock().await;
        self.write(credentials)
            .map_err(AuthError::CredentialStoreError)
    }

    async fn clear(&self) -> Result<(), AuthError> {
        let _one = self.inner.write.lock().await;
        self.remove()
            .map(drop)
            .map_err(AuthError::CredentialStoreError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(client: &str) -> StoredCredentials {
        StoredCredentials::new(client.to_owned(), None, vec!["read".into()], Some(1))
    }

    /// Written 0600 in a 0700 directory; read back; a loose file or
    /// directory refused with what to do; another resource's file unused.
    #[test]
    fn tokens_are_kept_private() {
        let dir = std::env::temp_dir().join(format!("weir-tokens-{}", std::process::id()));
        let store = TokenStore::new(&dir, "linear", "https://mcp.linear.app/mcp");
        assert!(store.read().expect("nothing yet").is_none());
        store.write(credentials("weir")).expect("written");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(store.path()), 0o600);
        assert_eq!(mode(store.path().parent().expect("dir")), 0o700);
        let read = store.read().expect("read").expect("stored");
        assert_eq!(read.client_id, "weir");
        assert_eq!(read.granted_scopes, ["read"]);

        std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let loose = store.read().expect_err("a readable file is refused");
        assert!(
            loose.contains("mode is 0644") && loose.contains("chmod 600"),
            "{loose}"
        );
        std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
        let parent = store.path().parent().expect("dir");
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let loose = store.read().expect_err("a readable directory is refused");
        assert!(loose.contains("chmod 700"), "{loose}");
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700)).expect("chmod");

        let other = TokenStore::new(&dir, "x", "https://other.example/mcp");
        assert!(other.read().expect("read").is_none());
        assert!(store.remove().expect("removed"));
        assert!(!store.remove().expect("gone"));
        assert!(store.read().expect("read").is_none());
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }
}
