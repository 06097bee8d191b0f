//! Legacy MCP sessions (`Mcp-Session-Id`, revisions up to 2025-11-25) of
//! `weir serve --http`, shared: rmcp's [`SessionStore`] on Redis. A
//! session opened on one replica is recorded (the client's `initialize`
//! parameters); a request for it reaching another replica finds it there,
//! and rmcp replays the handshake so the session continues — no affinity
//! needed at the load balancer.
//!
//! Entries expire after the session idle time, renewed as they are read.
//! While Redis is away a session is known to its own replica only: a
//! request on another one gets 404 and the client opens a new session, as
//! the spec has it.

use std::time::Duration;

use redis::AsyncCommands;
use rmcp::transport::streamable_http_server::session::store::{
    SessionState, SessionStore, SessionStoreError,
};

use super::Fleet;

/// The fleet's legacy sessions, on Redis.
pub struct SharedSessions {
    fleet: Fleet,
    /// How long an unused session is kept.
    idle: Duration,
}

impl SharedSessions {
    /// Sessions kept for `idle` after their last use.
    pub fn new(fleet: Fleet, idle: Duration) -> Self {
        Self { fleet, idle }
    }

    fn seconds(&self) -> u64 {
        self.idle.as_secs().max(1)
    }
}

#[async_trait::async_trait]
impl SessionStore for SharedSessions {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let key = Fleet::key(&["session", session_id]);
        let seconds = self.seconds();
        let text: Option<String> = self
            .fleet
            .ask("session", |mut redis| async move {
                redis.get_ex(&key, redis::Expiry::EX(seconds)).await
            })
            .await
            .flatten();
        // An entry that does not parse (written by another version, say)
        // is no session: the client starts a new one.
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let key = Fleet::key(&["session", session_id]);
        let text = serde_json::to_string(state)?;
        let seconds = self.seconds();
        self.fleet
            .ask("session", |mut redis| async move {
                redis.set_ex::<_, _, ()>(&key, text, seconds).await
            })
            .await;
        Ok(())
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        let key = Fleet::key(&["session", session_id]);
        self.fleet
            .ask("session", |mut redis| async move {
                redis.del(&key).await.map(|_: usize| ())
            })
            .await;
        Ok(())
    }
}
