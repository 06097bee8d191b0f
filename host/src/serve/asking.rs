//! Putting an upstream server's questions to `weir serve`'s client (see
//! [`crate::ask`]), the way the client's revision has it.
//!
//! - A legacy client (2025-11-25 and older, a session): weir sends it
//!   `elicitation/create` while its call runs, and relays the answer.
//! - A 2026-07-28 client has no session to send a request on: its call is
//!   answered `input_required`, with the question and a `requestState`,
//!   while the call goes on waiting for the answer; the client calls again
//!   with its answer and that state, and gets either the result or the
//!   next question. The waiting call is kept [`PARK_LIMIT`] at most; then
//!   the question is declined and the call finishes unheard.
//!
//! Only a client that declared elicitation is asked; for the others
//! nobody can be asked, and the server entry's policy answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::ErrorData;
use rmcp::model::{
    CallToolResponse, ClientResult, ElicitRequest, ElicitRequestParams, ElicitResult,
    ElicitationAction, InputRequest, InputRequests, InputRequiredResult, InputResponses,
    ServerRequest,
};
use rmcp::service::{Peer, RequestContext, RoleServer};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::ask::Asker;

/// How long a call waits for its client to come back with an answer.
pub const PARK_LIMIT: Duration = Duration::from_secs(600);

/// How the client of one request can be asked.
pub enum Asking {
    /// It declared no elicitation: nobody can be asked.
    Nobody,
    /// A legacy session: a request on it.
    Session(Arc<dyn Asker>),
    /// 2026-07-28: `input_required` rounds.
    Rounds,
}

impl Asking {
    /// What the client of `context` allows.
    pub fn of(context: &RequestContext<RoleServer>) -> Self {
        let declared = context
            .client_capabilities()
            .is_some_and(|c| c.elicitation.is_some());
        if !declared {
            return Self::Nobody;
        }
        let stateless = context
            .protocol_version()
            .is_some_and(|v| !v.has_initialize());
        if stateless {
            Self::Rounds
        } else {
            Self::Session(Arc::new(SessionAsker(context.peer.clone())))
        }
    }
}

/// Asks a legacy client, on its session.
struct SessionAsker(Peer<RoleServer>);

impl Asker for SessionAsker {
    fn ask(&self, request: ElicitRequestParams) -> BoxFuture<'_, Result<ElicitResult, String>> {
        Box::pin(async move {
            let asked = ServerRequest::ElicitRequest(ElicitRequest::new(request));
            match self.0.send_request(asked).await {
                Ok(ClientResult::ElicitResult(answer)) => Ok(answer),
                Ok(_) => {
                    Err("the client answered with something other than an ElicitResult".into())
                }
                Err(e) => Err(format!("the client did not answer: {e}")),
            }
        })
    }
}

/// One question on its way to a 2026-07-28 client.
struct Question {
    request: ElicitRequestParams,
    answer: oneshot::Sender<ElicitResult>,
}

/// Asks through [`Rounds`]: hands the question to the request handler,
/// which answers the client `input_required`.
struct RoundsAsker(mpsc::Sender<Question>);

impl Asker for RoundsAsker {
    fn ask(&self, request: ElicitRequestParams) -> BoxFuture<'_, Result<ElicitResult, String>> {
        Box::pin(async move {
            let (answer, answered) = oneshot::channel();
            self.0
                .send(Question { request, answer })
                .await
                .map_err(|_| "the call is no longer waiting".to_owned())?;
            answered
                .await
                .map_err(|_| "the client did not come back with an answer in time".to_owned())
        })
    }
}

/// A call in flight, perhaps waiting on its client.
struct Running {
    call: tokio::task::JoinHandle<Result<CallToolResponse, ErrorData>>,
    questions: mpsc::Receiver<Question>,
    /// Cancels the call: the client cancelled while it was asked, or the
    /// call was left waiting too long.
    cancel: CancellationToken,
}

/// A call whose client was asked, until it comes back.
struct Parked {
    running: Running,
    key: String,
    answer: oneshot::Sender<ElicitResult>,
}

/// The calls of 2026-07-28 clients that wait for an answer.
#[derive(Default)]
pub struct Rounds {
    parked: Mutex<HashMap<String, Parked>>,
    asked: AtomicU64,
}

/// The start of every `requestState` weir gives out.
const STATE_PREFIX: &str = "weir-ask-";

impl Rounds {
    /// Whether `state` is one weir gave out (a retry to continue).
    pub fn is_ours(state: &str) -> bool {
        state.starts_with(STATE_PREFIX)
    }

    /// Starts a call whose questions go to its client as rounds: `call`
    /// gets the token that cancels it, and runs on its own task, since it
    /// may outlive the request that started it.
    pub async fn start<F, Fut>(
        self: &Arc<Self>,
        call: F,
        request_ct: &CancellationToken,
    ) -> Result<CallToolResponse, ErrorData>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = Result<CallToolResponse, ErrorData>> + Send + 'static,
    {
        let (ask, questions) = mpsc::channel(1);
        let cancel = CancellationToken::new();
        let asker: Arc<dyn Asker> = Arc::new(RoundsAsker(ask));
        let call = tokio::spawn(crate::ask::with_asker(Some(asker), call(cancel.clone())));
        let running = Running {
            call,
            questions,
            cancel,
        };
        self.advance(running, request_ct).await
    }

    /// A client's retry: its answer to the question of `state`, then the
    /// call's result or its next question.
    pub async fn resume(
        self: &Arc<Self>,
        state: &str,
        responses: Option<InputResponses>,
        request_ct: &CancellationToken,
    ) -> Result<CallToolResponse, ErrorData> {
        let parked = self.parked.lock().ok().and_then(|mut p| p.remove(state));
        let Some(parked) = parked else {
            return Err(ErrorData::invalid_params(
                format!(
                    "requestState `{state}` names no call waiting for an answer: it finished, \
                     or waited more than {} s; call the tool again",
                    PARK_LIMIT.as_secs()
                ),
                None,
            ));
        };
        let answer = responses
            .as_ref()
            .and_then(|r| r.get(&parked.key))
            .map(|value| serde_json::from_value::<ElicitResult>(value.clone()));
        let answer = match answer {
            Some(Ok(answer)) => answer,
            Some(Err(e)) => {
                parked.running.cancel.cancel();
                return Err(ErrorData::invalid_params(
                    format!(
                        "inputResponses.{} is not an elicitation result: {e}",
                        parked.key
                    ),
                    None,
                ));
            }
            // Asked and not answered: the person dismissed it.
            None => ElicitResult::new(ElicitationAction::Cancel),
        };
        let _ = parked.answer.send(answer);
        self.advance(parked.running, request_ct).await
    }

    /// Waits for the call's result or its next question (then parks it
    /// and answers the client `input_required`).
    async fn advance(
        self: &Arc<Self>,
        mut running: Running,
        request_ct: &CancellationToken,
    ) -> Result<CallToolResponse, ErrorData> {
        let question = tokio::select! {
            result = &mut running.call => return finished(result),
            question = running.questions.recv() => question,
            () = request_ct.cancelled() => {
                running.cancel.cancel();
                return Err(ErrorData::internal_error("the call was cancelled", None));
            }
        };
        let Some(question) = question else {
            // The asker is gone: the call is ending on its own.
            return finished((&mut running.call).await);
        };
        let n = self.asked.fetch_add(1, Ordering::Relaxed);
        let key = format!("weir-{n}");
        let state = format!(
            "{STATE_PREFIX}{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..)
        );
        let mut asked = InputRequests::new();
        asked.insert(
            key.clone(),
            InputRequest::Elicitation(ElicitRequest::new(question.request)),
        );
        if let Ok(mut parked) = self.parked.lock() {
            parked.insert(
                state.clone(),
                Parked {
                    running,
                    key,
                    answer: question.answer,
                },
            );
        }
        // Not waited for forever: dropping the parked call declines its
        // question, and the call finishes unheard.
        let rounds = Arc::downgrade(self);
        let expiring = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(PARK_LIMIT).await;
            if let Some(rounds) = rounds.upgrade()
                && let Some(parked) = rounds
                    .parked
                    .lock()
                    .ok()
                    .and_then(|mut p| p.remove(&expiring))
            {
                tracing::info!(
                    "a call waited {} s for its client's answer; declined",
                    PARK_LIMIT.as_secs()
                );
                drop(parked);
            }
        });
        Ok(CallToolResponse::InputRequired(InputRequiredResult::new(
            Some(asked),
            Some(state),
        )))
    }
}

fn finished(
    result: Result<Result<CallToolResponse, ErrorData>, tokio::task::JoinError>,
) -> Result<CallToolResponse, ErrorData> {
    result.unwrap_or_else(|e| {
        Err(ErrorData::internal_error(
            format!("the call's task failed: {e}"),
            None,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{CallToolResult, ContentBlock};
    use serde_json::json;

    /// A call that asks its one question, then answers with what it got.
    async fn asking_call(cancel: CancellationToken) -> Result<CallToolResponse, ErrorData> {
        let question: ElicitRequestParams = serde_json::from_value(json!({
            "message": "Who?", "requestedSchema": {"type": "object", "properties": {}}}))
        .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let asker =
            crate::ask::current().ok_or_else(|| ErrorData::internal_error("no asker", None))?;
        let answer = tokio::select! {
            answer = asker.ask(question) => answer,
            () = cancel.cancelled() => return Err(ErrorData::internal_error("cancelled", None)),
        };
        let said = match answer {
            Ok(answer) => serde_json::to_string(&answer).unwrap_or_default(),
            Err(why) => why,
        };
        Ok(CallToolResponse::Complete(CallToolResult::success(vec![
            ContentBlock::text(said),
        ])))
    }

    fn asked(response: &CallToolResponse) -> (String, String) {
        let CallToolResponse::InputRequired(asked) = response else {
            panic!("expected input_required, got {response:?}");
        };
        let key = asked
            .input_requests
            .as_ref()
            .and_then(|q| q.keys().next().cloned())
            .expect("a question");
        (key, asked.request_state.clone().expect("a state"))
    }

    fn text(response: &CallToolResponse) -> String {
        let CallToolResponse::Complete(result) = response else {
            panic!("expected a result, got {response:?}");
        };
        result.content[0]
            .as_text()
            .map(|t| t.text.clone())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn a_question_becomes_a_round_and_the_retry_gets_the_result() {
        let rounds = Arc::new(Rounds::default());
        let ct = CancellationToken::new();
        let first = rounds.start(asking_call, &ct).await.expect("answered");
        let (key, state) = asked(&first);
        assert!(Rounds::is_ours(&state));
        let mut responses = InputResponses::new();
        responses.insert(key, json!({"action": "accept", "content": {"name": "Ada"}}));
        let done = rounds
            .resume(&state, Some(responses.clone()), &ct)
            .await
            .expect("the result");
        assert_eq!(
            text(&done),
            r#"{"action":"accept","content":{"name":"Ada"}}"#
        );
        // A state is good for one retry: the call it named is over.
        let again = rounds.resume(&state, Some(responses), &ct).await;
        let error = again.expect_err("stale state");
        assert!(error.message.contains("names no call waiting"), "{error:?}");
    }

    #[tokio::test]
    async fn an_unanswered_question_is_cancelled_and_a_bad_answer_refused() {
        let rounds = Arc::new(Rounds::default());
        let ct = CancellationToken::new();
        let (_, state) = asked(&rounds.start(asking_call, &ct).await.expect("answered"));
        let done = rounds.resume(&state, None, &ct).await.expect("the result");
        assert_eq!(text(&done), r#"{"action":"cancel"}"#);

        let (key, state) = asked(&rounds.start(asking_call, &ct).await.expect("answered"));
        let mut responses = InputResponses::new();
        responses.insert(key, json!("yes"));
        let error = rounds
            .resume(&state, Some(responses), &ct)
            .await
            .expect_err("not an ElicitResult");
        assert!(
            error.message.contains("is not an elicitation result"),
            "{error:?}"
        );
    }
}
