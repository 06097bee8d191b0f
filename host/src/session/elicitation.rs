//! What weir answers when a server asks for input (`elicitation/create`)
//! and nobody is there to ask: decline, or — where the server entry says
//! `"elicitation": "defaults"` — accept with the defaults the server's own
//! schema gives, when it gives one for every field it asks for (SEP-1034).
//! Never a value weir made up.

use rmcp::model::{ElicitRequestParams, ElicitResult, ElicitationAction};
use serde_json::{Map, Value};

use crate::config::Elicitation;

/// The answer to one request.
pub(super) fn answer(policy: Elicitation, request: &ElicitRequestParams) -> ElicitResult {
    let content = match policy {
        Elicitation::Decline => None,
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

/// Declares the form capability where weir can answer with defaults.
pub(super) fn capability(policy: Elicitation) -> Option<rmcp::model::ElicitationCapability> {
    match policy {
        Elicitation::Decline => None,
        Elicitation::Defaults => Some(
            rmcp::model::ElicitationCapability::new()
                .with_form(rmcp::model::FormElicitationCapability::new()),
        ),
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
}
