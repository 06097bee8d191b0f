//! weir's side of each MCP session: how it introduces itself and what it
//! does with the notifications a server sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rmcp::ClientHandler;
use rmcp::model::{ClientConfig, ElicitRequestParams, ElicitResult, ErrorData, ProtocolVersion};
use rmcp::service::{NotificationContext, RequestContext, RoleClient};

use super::elicitation::InFlightAskers;
use crate::config::Elicitation;

/// Handler of one session. Cheap to clone; rmcp owns one copy.
#[derive(Debug, Clone)]
pub(crate) struct SessionClient {
    server: Arc<str>,
    /// The revision `initialize` names, where the session uses it.
    protocol: ProtocolVersion,
    /// What to answer the server's requests for input.
    elicitation: Elicitation,
    /// Set by `notifications/tools/list_changed`; the next lookup refetches
    /// the list. A flag rather than a refetch here: a server that sends a
    /// burst of notifications costs one `tools/list`, not one each.
    tools_stale: Arc<AtomicBool>,
    /// Told too, so those who serve the tools on can say they changed.
    changes: Arc<tokio::sync::watch::Sender<u64>>,
    /// Whom the calls in flight could ask, for a request for input.
    askers: Arc<InFlightAskers>,
}

impl SessionClient {
    pub fn new(
        server: Arc<str>,
        protocol: ProtocolVersion,
        elicitation: Elicitation,
        tools_stale: Arc<AtomicBool>,
        changes: Arc<tokio::sync::watch::Sender<u64>>,
        askers: Arc<InFlightAskers>,
    ) -> Self {
        Self {
            server,
            protocol,
            elicitation,
            tools_stale,
            changes,
            askers,
        }
    }
}

impl ClientHandler for SessionClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            super::lifecycle::client_capabilities(self.elicitation),
            super::lifecycle::client_info(),
        )
        .with_protocol_version(self.protocol.clone())
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        Ok(super::elicitation::respond(
            &self.server,
            self.elicitation,
            &request,
            self.askers.sole(),
        )
        .await)
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        tracing::debug!(server = %self.server, "tool list changed");
        self.tools_stale.store(true, Ordering::Release);
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}
