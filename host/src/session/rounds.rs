//! A `tools/call` that takes more than one round trip (2026-07-28's
//! multi-round-trip requests, SEP-2322): the server answers
//! `input_required` with the questions it has and an opaque state; weir
//! answers each question (requests for input as [`super::elicitation`]
//! says), echoes the state untouched, and calls again — a new request,
//! a bounded number of times.

use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, InputRequest, InputRequiredResult,
    InputResponses,
};
use rmcp::service::{Peer, RoleClient, ServiceError};

use crate::config::Elicitation;

/// Rounds a call may take before weir gives up on it.
pub(super) const MAX_ROUNDS: usize = 10;

/// Why a multi-round call gave no result.
#[derive(Debug)]
pub(super) enum RoundsError {
    /// The session failed the request.
    Service(ServiceError),
    /// The server asked for something weir cannot give, or kept asking.
    Protocol(String),
}

/// Calls until the server completes the call. `first`, when given, is an
/// `input_required` the first round already got (on weir's stdio lane).
pub(super) async fn call(
    peer: &Peer<RoleClient>,
    server: &str,
    params: CallToolRequestParams,
    first: Option<InputRequiredResult>,
    elicitation: Elicitation,
) -> Result<CallToolResult, RoundsError> {
    let mut pending = first;
    for round in 0..=MAX_ROUNDS {
        let attempt = match pending.take() {
            None => params.clone(),
            Some(asked) => {
                if round == MAX_ROUNDS {
                    break;
                }
                let mut next = params.clone();
                let questions = asked.input_requests.unwrap_or_default();
                if questions.is_empty() {
                    // Only state: the server is still working; give it a moment.
                    tokio::time::sleep(Duration::from_millis(50 * round as u64)).await;
                } else {
                    next =
                        next.with_input_responses(answers(server, questions, elicitation).await?);
                }
                if let Some(state) = asked.request_state {
                    next = next.with_request_state(state);
                }
                next
            }
        };
        match peer
            .call_tool_once(attempt)
            .await
            .map_err(RoundsError::Service)?
        {
            CallToolResponse::Complete(result) => return Ok(result),
            CallToolResponse::InputRequired(asked) => pending = Some(asked),
            CallToolResponse::Task(_) => {
                return Err(RoundsError::Protocol(
                    "the server made the call a task, which weir does not follow".into(),
                ));
            }
            _ => {
                return Err(RoundsError::Protocol(
                    "the server answered the call with a kind of result weir does not know".into(),
                ));
            }
        }
    }
    Err(RoundsError::Protocol(format!(
        "the server still asked for input after {MAX_ROUNDS} rounds"
    )))
}

/// weir's answer to each of the server's questions (the person's, where
/// they are forwarded).
async fn answers(
    server: &str,
    questions: rmcp::model::InputRequests,
    elicitation: Elicitation,
) -> Result<InputResponses, RoundsError> {
    let mut responses = InputResponses::new();
    for (key, question) in questions {
        let answer = match question {
            InputRequest::Elicitation(request) => {
                let answer = super::elicitation::respond(
                    server,
                    elicitation,
                    &request.params,
                    crate::ask::current(),
                )
                .await;
                serde_json::to_value(answer)
                    .map_err(|e| RoundsError::Protocol(format!("cannot encode an answer: {e}")))?
            }
            InputRequest::CreateMessage(_) => {
                return Err(RoundsError::Protocol(
                    "the server asked the client to sample a model (sampling), which weir does \
                     not offer"
                        .into(),
                ));
            }
            InputRequest::ListRoots(_) => {
                return Err(RoundsError::Protocol(
                    "the server asked for the client's roots, which weir does not offer".into(),
                ));
            }
            _ => {
                return Err(RoundsError::Protocol(
                    "the server asked for a kind of input weir does not know".into(),
                ));
            }
        };
        responses.insert(key, answer);
    }
    Ok(responses)
}
