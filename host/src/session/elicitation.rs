//! What weir answers when a server asks for input (`elicitation/create`,
//! or a question of an `input_required` result). With `"elicitation":
//! "forward"` (`weir serve`'s default) the question goes to the person at
//! the MCP client whose call it is (see [`crate::ask`]) and their answer
//! back. Where nobody is there to ask: decline, or — where the server
//! entry says `"elicitation": "defaults"` — accept with the defaults the
//! server's own schema gives, when it gives one for every field it asks
//! for (SEP-1034). Never a value weir made up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rmcp::model::{ElicitRequestParams, ElicitResult, ElicitationAction};
use serde_json::{Map, Value};

use crate::ask::Asker;
use crate::config::Elicitation;

/// The answer to one request, asking `asker` where the policy forwards.
pub(super) async fn respond(
    server: &str,
    policy: Elicitation,
    request: &ElicitRequestParams,
    asker: Option<Arc<dyn Asker>>,
) -> ElicitResult {
    if policy == Elicitation::Forward
        && let Some(asker) = asker
    {
        match asker.ask(request.clone()).await {
            Ok(answer) => {
                tracing::info!(server, action = ?answer.action,
                    "relayed the server's request for input to the client");
                return answer;
            }
            Err(why) => {
                tracing::warn!(server, %why, "the client gave no answer to the server's request for input; declined");
                return ElicitResult::new(ElicitationAction::Decline);
            }
        }
    }
    let answer = answer(policy, request);
    tracing::info!(server, action = ?answer.action, "answered the server's request for input");
    answer
}

/// The answer where nobody is asked.
pub(super) fn answer(policy: Elicitation, request: &ElicitRequestParams) -> ElicitResult {
    let content = match policy {
        Elicitation::Decline | Elicitation::Forward => None,
        Elicitation::Defaults => serde_json::to_value(request)
            .ok()
            .and_then(|r| defaults(&r["requestedSchema"])),
    };
    match content {
        Some(content) => ElicitResult::new(ElicitationAction::Accept).with_content(content),
        None => ElicitResult::new(ElicitationAction::Decline),
    }
}

/// Every property's `default`, or `None` if one has none (or the request
/// is not a form: a URL to open has no defaults).
fn defaults(schema: &Value) -> Option<Value> {
    let properties = schema.get("properties")?.as_object()?;
    let mut content = Map::new();
    for (name, property) in properties {
        content.insert(name.clone(), property.get("default")?.clone());
    }
    Some(Value::Object(content))
}

/// Declares the form capability where weir can answer with defaults, or
/// may ask someone.
pub(super) fn capability(policy: Elicitation) -> Option<rmcp::model::ElicitationCapability> {
    match policy {
        Elicitation::Decline => None,
        Elicitation::Defaults | Elicitation::Forward => Some(
            rmcp::model::ElicitationCapability::new()
                .with_form(rmcp::model::FormElicitationCapability::new()),
        ),
    }
}

/// Whom each call in flight on a session could ask. A legacy server's
/// `elicitation/create` arrives on the session, not with the call it is
/// for; it is forwarded only when one call is in flight, so there is no
/// doubt whose it is — otherwise it is answered as if nobody could be
/// asked.
#[derive(Default)]
pub(crate) struct InFlightAskers {
    calls: Mutex<Vec<CallAsker>>,
    next: AtomicU64,
}

impl std::fmt::Debug for InFlightAskers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let calls = self.calls.lock().map(|c| c.len()).unwrap_or_default();
        f.debug_struct("InFlightAskers")
            .field("calls", &calls)
            .finish()
    }
}

impl InFlightAskers {
    /// Counts a call in flight, with whom it may ask, until the guard drops.
    pub(super) fn enter(self: &Arc<Self>, asker: Option<Arc<dyn Asker>>) -> InFlightAsker {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut calls) = self.calls.lock() {
            calls.push((id, asker));
        }
        InFlightAsker {
            askers: self.clone(),
            id,
        }
    }

    /// The one to ask, when exactly one call is in flight and it has one.
    pub(super) fn sole(&self) -> Option<Arc<dyn Asker>> {
        let calls = self.calls.lock().ok()?;
        match calls.as_slice() {
            [(_, asker)] => asker.clone(),
            _ => None,
        }
    }
}

/// One call in flight, and whom it may ask (if anyone).
type CallAsker = (u64, Option<Arc<dyn Asker>>);

/// A call's entry in [`InFlightAskers`], removed when dropped.
pub(super) struct InFlightAsker {
    askers: Arc<InFlightAskers>,
    id: u64,
}

impl Drop for InFlightAsker {
    fn drop(&mut self) {
        if let Ok(mut calls) = self.askers.calls.lock() {
            calls.retain(|(id, _)| *id != self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(schema: Value) -> ElicitRequestParams {
        serde_json::from_value(json!({"message": "Who?", "requestedSchema": schema}))
            .expect("a form request")
    }

    #[test]
    fn defaults_only_when_every_field_has_one() {
        let full = request(json!({"type": "object", "properties": {
            "name": {"type": "string", "default": "John Doe"},
            "age": {"type": "integer", "default": 30},
            "verified": {"type": "boolean", "default": true},
        }}));
        let accepted = answer(Elicitation::Defaults, &full);
        assert_eq!(accepted.action, ElicitationAction::Accept);
        assert_eq!(
            accepted.content,
            Some(json!({"name": "John Doe", "age": 30, "verified": true}))
        );
        assert_eq!(
            answer(Elicitation::Decline, &full).action,
            ElicitationAction::Decline
        );
        let partial = request(json!({"type": "object", "properties": {
            "name": {"type": "string", "default": "John Doe"},
            "email": {"type": "string"},
        }}));
        let declined = answer(Elicitation::Defaults, &partial);
        assert_eq!(declined.action, ElicitationAction::Decline);
        assert_eq!(declined.content, None);
    }

    /// Answers every question with a name, counting them.
    struct Person(std::sync::atomic::AtomicUsize);

    impl Asker for Person {
        fn ask(
            &self,
            _request: ElicitRequestParams,
        ) -> futures::future::BoxFuture<'_, Result<ElicitResult, String>> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Box::pin(async {
                Ok(ElicitResult::new(ElicitationAction::Accept)
                    .with_content(json!({"name": "Ada"})))
            })
        }
    }

    #[tokio::test]
    async fn forward_asks_the_person_and_only_under_forward() {
        let person = Arc::new(Person(Default::default()));
        let asker: Arc<dyn Asker> = person.clone();
        let form = request(json!({"type": "object", "properties": {
            "name": {"type": "string", "default": "John Doe"}}}));
        let relayed = respond("s", Elicitation::Forward, &form, Some(asker.clone())).await;
        assert_eq!(relayed.content, Some(json!({"name": "Ada"})));
        // Nobody to ask: declined, never the defaults unless configured.
        let alone = respond("s", Elicitation::Forward, &form, None).await;
        assert_eq!(alone.action, ElicitationAction::Decline);
        let defaults = respond("s", Elicitation::Defaults, &form, Some(asker.clone())).await;
        assert_eq!(defaults.content, Some(json!({"name": "John Doe"})));
        let declined = respond("s", Elicitation::Decline, &form, Some(asker)).await;
        assert_eq!(declined.action, ElicitationAction::Decline);
        assert_eq!(
            person.0.load(Ordering::Relaxed),
            1,
            "asked under forward only"
        );
    }

    #[test]
    fn a_sessions_question_goes_to_its_only_call() {
        let askers = Arc::new(InFlightAskers::default());
        let asker: Arc<dyn Asker> = Arc::new(Person(Default::default()));
        assert!(askers.sole().is_none(), "no call in flight");
        let first = askers.enter(Some(asker));
        assert!(askers.sole().is_some());
        let second = askers.enter(None);
        assert!(askers.sole().is_none(), "two calls: whose is it?");
        drop(first);
        assert!(askers.sole().is_none(), "the one left has nobody to ask");
        drop(second);
        assert!(askers.calls.lock().expect("lock").is_empty());
    }
}
