//! The HTTP client of a server behind OAuth: every request of rmcp's
//! streamable HTTP transport goes out with the server's token, and a `401`
//! or `403 insufficient_scope` is answered here — a refreshed token or a
//! new sign-in, then the same request once more — so neither the session
//! nor the plugin whose call it is ever sees a token or a challenge.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};

use super::{Authorizer, MAX_STEP_UPS, Refusal};

/// `inner` with `authorizer`'s tokens.
#[derive(Clone)]
pub(crate) struct Authorized<C> {
    inner: C,
    authorizer: Arc<Authorizer>,
}

impl<C> Authorized<C> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: C, authorizer: Arc<Authorizer>) -> Self {
        Self { inner, authorizer }
    }
}

impl<C: StreamableHttpClient + Sync> Authorized<C> {
    /// Runs `request` with a token, recovering from refusals.
    async fn with_token<T, F, Fut>(&self, request: F) -> Result<T, StreamableHttpError<C::Error>>
    where
        F: Fn(Option<String>) -> Fut,
        Fut: Future<Output = Result<T, StreamableHttpError<C::Error>>>,
    {
        let mut token = self.authorizer.token().await?;
        let mut recovered_unauthorized = false;
        let mut step_ups = 0;
        loop {
            let (challenge, refusal) = match request(token.clone()).await {
                Err(StreamableHttpError::AuthRequired(refused)) if !recovered_unauthorized => {
                    recovered_unauthorized = true;
                    (refused.www_authenticate_header, Refusal::Unauthorized)
                }
                Err(StreamableHttpError::InsufficientScope(refused)) if step_ups < MAX_STEP_UPS => {
                    step_ups += 1;
                    (refused.www_authenticate_header, Refusal::InsufficientScope)
                }
                Err(StreamableHttpError::InsufficientScope(refused)) => {
                    return Err(StreamableHttpError::Auth(
                        rmcp::transport::auth::AuthError::AuthorizationFailed(format!(
                            "the server still refuses weir's token for lack of a scope after \
                             {MAX_STEP_UPS} new sign-ins ({}); the account may not be allowed it",
                            refused.www_authenticate_header
                        )),
                    ));
                }
                other => return other,
            };
            token = Some(
                self.authorizer
                    .recover(token.as_deref(), &challenge, refusal)
                    .await?,
            );
        }
    }
}

impl<C: StreamableHttpClient + Sync> StreamableHttpClient for Authorized<C> {
    type Error = C::Error;

    fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> impl Future<Output = Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>>>
    + Send
    + '_ {
        self.with_token(move |token| {
            self.inner.post_message(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                token,
                custom_headers.clone(),
            )
        })
    }

    fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> impl Future<Output = Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>>>
    + Send
    + '_ {
        self.with_token(move |token| {
            self.inner.post_message_with_max_sse_event_size(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                token,
                custom_headers.clone(),
                max_sse_event_size,
            )
        })
    }

    fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> impl Future<Output = Result<StreamableHttpPostResponse, StreamableHttpError<Self::Error>>>
    + Send
    + '_ {
        self.with_token(move |token| {
            self.inner.post_message_with_response_limits(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                token,
                custom_headers.clone(),
                limits,
            )
        })
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<Self::Error>> {
        // Closing a session is no reason to sign in: the token in hand.
        let token = self.authorizer.token().await.ok().flatten();
        self.inner
            .delete_session(uri, session_id, token, custom_headers)
            .await
    }

    fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> impl Future<
        Output = Result<
            BoxStream<'static, Result<sse_stream::Sse, sse_stream::Error>>,
            StreamableHttpError<Self::Error>,
        >,
    > + Send
    + '_ {
        self.with_token(move |token| {
            self.inner.get_stream(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                token,
                custom_headers.clone(),
            )
        })
    }

    fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> impl Future<
        Output = Result<
            BoxStream<'static, Result<sse_stream::Sse, sse_stream::Error>>,
            StreamableHttpError<Self::Error>,
        >,
    > + Send
    + '_ {
        self.with_token(move |token| {
            self.inner.get_stream_with_max_sse_event_size(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                token,
                custom_headers.clone(),
                max_sse_event_size,
            )
        })
    }
}
