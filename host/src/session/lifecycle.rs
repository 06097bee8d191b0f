//! Which MCP lifecycle a session opens with, and what follows from the
//! revision it settles on.
//!
//! 2026-07-28 has no `initialize`: a client asks `server/discover` and
//! names its revision, identity and capabilities in every request's
//! `_meta`. Older revisions start with `initialize`. With `"protocol":
//! "auto"` weir probes the new way and falls back to `initialize` naming
//! the newest revision that has one; the revision a server settled on is
//! remembered for the server, so the rest of its pool and later sessions
//! open without probing, until a session of it is lost (a restart may be a
//! different server).

use std::sync::Mutex;

use rmcp::ClientLifecycleMode;
use rmcp::model::{
    ClientCapabilities, ClientRequest, DiscoverRequest, DiscoverRequestParams, Implementation,
    PingRequest, ProtocolVersion, RequestMetaObject,
};
use serde_json::value::RawValue;

use crate::config::{Elicitation, Protocol};

/// What weir says it is, in `initialize` and in each request's `_meta`.
pub(super) fn client_info() -> Implementation {
    Implementation::new("weir", env!("CARGO_PKG_VERSION"))
}

/// What weir can do as a client: answer a request for input with its
/// defaults, where the server entry says so (see [`super::elicitation`]).
pub(super) fn client_capabilities(elicitation: Elicitation) -> ClientCapabilities {
    let mut capabilities = ClientCapabilities::default();
    capabilities.elicitation = super::elicitation::capability(elicitation);
    capabilities
}

/// One server's choice of revision, and what it settled on last.
#[derive(Debug)]
pub(crate) struct Negotiation {
    choice: Protocol,
    settled: Mutex<Option<ProtocolVersion>>,
}

impl Negotiation {
    pub(super) fn new(choice: Protocol) -> Self {
        Self {
            choice,
            settled: Mutex::new(None),
        }
    }

    /// The revision a session would be pinned to: the configured one, or
    /// the one this server settled on before.
    fn known(&self) -> Option<ProtocolVersion> {
        match &self.choice {
            Protocol::Revision(v) => Some(v.clone()),
            Protocol::Auto => self.settled.lock().ok().and_then(|s| s.clone()),
        }
    }

    /// How the next session opens.
    pub(super) fn mode(&self) -> ClientLifecycleMode {
        match self.known() {
            Some(v) if v.has_initialize() => ClientLifecycleMode::Initialize,
            Some(v) => ClientLifecycleMode::Discover {
                preferred_versions: vec![v],
            },
            None => ClientLifecycleMode::Auto {
                preferred_versions: vec![ProtocolVersion::NO_INITIALIZE],
                legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
            },
        }
    }

    /// The revision `initialize` names when the session uses it.
    pub(super) fn initialize_version(&self) -> ProtocolVersion {
        match self.known() {
            Some(v) if v.has_initialize() => v,
            _ => ProtocolVersion::LATEST_WITH_INITIALIZE,
        }
    }

    /// A session settled on `version`: later ones open the same way.
    pub(super) fn settled(&self, version: &ProtocolVersion) {
        if let Ok(mut settled) = self.settled.lock() {
            *settled = Some(version.clone());
        }
    }

    /// A session was lost: the next one probes again.
    pub(super) fn forget(&self) {
        if let Ok(mut settled) = self.settled.lock() {
            *settled = None;
        }
    }
}

/// The cheapest request a server of `version` must answer: what health
/// checks send. 2026-07-28 removed `ping`; `server/discover` takes its place.
pub(super) fn liveness_request(version: &ProtocolVersion) -> ClientRequest {
    if version.has_initialize() {
        ClientRequest::PingRequest(PingRequest::default())
    } else {
        ClientRequest::DiscoverRequest(DiscoverRequest::new(DiscoverRequestParams::default()))
    }
}

/// The `_meta` every request of a session on `version` carries, as JSON
/// text for weir's own `tools/call` lane; `None` where the revision has
/// `initialize` (the session's state says it all).
pub(super) fn request_meta(
    version: &ProtocolVersion,
    elicitation: Elicitation,
) -> Option<Box<RawValue>> {
    if version.has_initialize() {
        return None;
    }
    let meta = RequestMetaObject::with_client_context(
        version.clone(),
        client_info(),
        client_capabilities(elicitation),
    );
    serde_json::value::to_raw_value(&meta).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_probes_until_a_server_settles() {
        let n = Negotiation::new(Protocol::Auto);
        assert!(matches!(n.mode(), ClientLifecycleMode::Auto { .. }));
        assert_eq!(n.initialize_version(), ProtocolVersion::V_2025_11_25);
        n.settled(&ProtocolVersion::V_2025_06_18);
        assert_eq!(n.mode(), ClientLifecycleMode::Initialize);
        assert_eq!(n.initialize_version(), ProtocolVersion::V_2025_06_18);
        n.settled(&ProtocolVersion::V_2026_07_28);
        assert_eq!(
            n.mode(),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28]
            }
        );
        n.forget();
        assert!(matches!(n.mode(), ClientLifecycleMode::Auto { .. }));
    }

    #[test]
    fn a_pinned_revision_is_kept() {
        let n = Negotiation::new(Protocol::Revision(ProtocolVersion::V_2025_03_26));
        n.settled(&ProtocolVersion::V_2026_07_28);
        assert_eq!(n.mode(), ClientLifecycleMode::Initialize);
        assert_eq!(n.initialize_version(), ProtocolVersion::V_2025_03_26);
    }

    #[test]
    fn only_the_new_revision_stamps_requests() {
        assert!(request_meta(&ProtocolVersion::V_2025_11_25, Elicitation::Decline).is_none());
        let meta = request_meta(&ProtocolVersion::V_2026_07_28, Elicitation::Defaults)
            .map(|m| m.get().to_owned());
        let meta: serde_json::Value =
            serde_json::from_str(&meta.unwrap_or_default()).unwrap_or_default();
        assert_eq!(
            meta["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        assert_eq!(meta["io.modelcontextprotocol/clientInfo"]["name"], "weir");
        assert!(
            meta["io.modelcontextprotocol/clientCapabilities"]["elicitation"]["form"].is_object()
        );
        assert!(matches!(
            liveness_request(&ProtocolVersion::V_2026_07_28),
            ClientRequest::DiscoverRequest(_)
        ));
    }
}
