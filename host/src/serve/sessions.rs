//! The legacy MCP sessions (`Mcp-Session-Id`) of `weir serve --http`, with
//! a cap on how many are open at once.
//!
//! A session costs memory (~55 KB, a worker task, channels) until its
//! client deletes it or it idles out. Clients that never delete theirs —
//! or a client opening sessions in a loop — would otherwise grow that
//! without bound. rmcp's own manager keeps the sessions; this wrapper
//! remembers when each was last used and, when a new one would pass the
//! cap, ends the one idle longest and says so in the log.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::{
    RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
};

type Inner = LocalSessionManager;

/// rmcp's local session manager, capped at `max` open sessions.
pub struct CappedSessions {
    inner: Inner,
    max: usize,
    /// When each open session was last used.
    used: Mutex<HashMap<SessionId, Instant>>,
}

impl CappedSessions {
    /// At most `max` sessions; one unused for `idle` is ended by rmcp.
    pub fn new(max: usize, idle: Duration) -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(idle);
        // No priming event opening a call's stream (see the service's
        // config in `http`): weir never resumes a call's stream.
        inner.session_config.sse_retry = None;
        Self {
            inner,
            max: max.max(1),
            used: Mutex::new(HashMap::new()),
        }
    }

    fn touch(&self, id: &SessionId) {
        if let Ok(mut used) = self.used.lock()
            && let Some(at) = used.get_mut(id)
        {
            *at = Instant::now();
        }
    }

    fn forget(&self, id: &SessionId) {
        if let Ok(mut used) = self.used.lock() {
            used.remove(id);
        }
    }

    /// The session unused longest, taken out of the table.
    fn take_oldest(&self) -> Option<(SessionId, Instant)> {
        let mut used = self.used.lock().ok()?;
        if used.len() < self.max {
            return None;
        }
        let (id, at) = used
            .iter()
            .min_by_key(|(_, at)| **at)
            .map(|(id, at)| (id.clone(), *at))?;
        used.remove(&id);
        Some((id, at))
    }

    /// Makes room for one more session: sessions rmcp already ended (idle)
    /// are dropped from the table; a live one is ended.
    async fn make_room(&self) {
        while let Some((id, at)) = self.take_oldest() {
            if !self.inner.has_session(&id).await.unwrap_or(false) {
                continue;
            }
            tracing::warn!(
                session = %id,
                idle_secs = at.elapsed().as_secs(),
                max = self.max,
                "ending the MCP session idle longest: weir.http_max_sessions sessions are open"
            );
            if let Err(error) = self.inner.close_session(&id).await {
                tracing::debug!(session = %id, %error, "closing an evicted session");
            }
            return;
        }
    }
}

impl SessionManager for CappedSessions {
    type Error = <Inner as SessionManager>::Error;
    type Transport = <Inner as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.make_room().await;
        let (id, transport) = self.inner.create_session().await?;
        if let Ok(mut used) = self.used.lock() {
            used.insert(id.clone(), Instant::now());
        }
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.touch(id);
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        let has = self.inner.has_session(id).await?;
        if has {
            self.touch(id);
        } else {
            self.forget(id);
        }
        Ok(has)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.forget(id);
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.touch(id);
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.touch(id);
        self.inner.resume(id, last_event_id).await
    }

    /// A session another replica opened, recreated here from the fleet's
    /// store (rmcp then replays its `initialize`); it counts towards the
    /// cap like any other.
    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        self.make_room().await;
        let outcome = self.inner.restore_session(id.clone()).await?;
        if matches!(outcome, RestoreOutcome::Restored(_))
            && let Ok(mut used) = self.used.lock()
        {
            used.insert(id, Instant::now());
        }
        Ok(outcome)
    }
}
