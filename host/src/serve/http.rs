//! The HTTP side of `weir serve`: streamable HTTP MCP at `/mcp`, metrics at
//! `/metrics`, on one listener (or metrics alone, beside a stdio server).
//!
//! Every request is checked first against DNS rebinding: its `Host` must
//! be one the operator allows (loopback names by default), and a browser's
//! `Origin`, when sent, must name an allowed host too. A page on some other
//! site cannot drive the agents, or read the metrics, of a weir on
//! localhost. A request with two `Host` headers is refused: the check must
//! see the one the server acts on.
//!
//! An MCP request's body is read here, within a size and a time limit, and
//! checked to be JSON before rmcp sees it (a body that is not JSON is a
//! `400` with JSON-RPC's parse error). Knowing the request's id lets a
//! client's hang-up cancel it: when the event stream carrying a request's
//! answer is dropped before it ends — the client closed the connection —
//! weir sends the session the `notifications/cancelled` the client never
//! could, so the run stops and its upstream calls are cancelled.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::{Method, Request, Response, StatusCode};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use super::handler::WeirServer;
use super::in_flight::InFlight;
use super::sessions::CappedSessions;
use crate::config::HttpLimits;
use crate::fleet::sessions::SharedSessions;
use crate::runtime::Host;

/// The body of every response weir's HTTP front sends.
pub type Body = BoxBody<Bytes, Infallible>;

/// rmcp's MCP service over weir's capped sessions.
type Mcp = StreamableHttpService<WeirServer, CappedSessions>;

/// What of a JSON-RPC message the front needs: is it a request, and its
/// id. Values are skipped, not built.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<&'a RawValue>,
}

/// Host names a loopback listener answers to, unless told otherwise.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Where MCP is served.
pub const MCP_PATH: &str = "/mcp";
/// Where metrics are served.
pub const METRICS_PATH: &str = "/metrics";

/// What one listener serves.
#[derive(Clone)]
pub struct Routes {
    host: Arc<Host>,
    /// `None`: metrics only.
    mcp: Option<Mcp>,
    allowed_hosts: Arc<[String]>,
    /// How long a request's body may take to arrive.
    body_timeout: Duration,
    /// The largest request body.
    max_body_bytes: usize,
    /// Checks bearer tokens, where `weir.auth` asks for them.
    gatekeeper: Option<Arc<super::auth::Gatekeeper>>,
    /// Cancelled when weir serve is stopping: `/readyz` says so.
    stopping: CancellationToken,
    /// The MCP requests being answered, for a stop to wait on.
    in_flight: InFlight,
}

impl Routes {
    /// MCP and metrics; `server` makes one handler per session.
    pub fn mcp_and_metrics(
        host: Arc<Host>,
        server: WeirServer,
        allowed_hosts: Vec<String>,
        stop: CancellationToken,
        limits: &HttpLimits,
    ) -> Self {
        let origins: Vec<String> = allowed_hosts
            .iter()
            .flat_map(|h| {
                let h = if h.contains(':') && !h.starts_with('[') {
                    format!("[{h}]")
                } else {
                    h.clone()
                };
                [format!("http://{h}:*"), format!("https://{h}:*")]
            })
            .collect();
        let stopping = stop.clone();
        let mut config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(allowed_hosts.clone())
            .with_allowed_origins(origins)
            .with_cancellation_token(stop)
            .with_max_request_body_bytes(limits.max_body_bytes)
            // No priming event (an empty event with an id) opening each
            // response stream: it invites a client whose stream broke
            // before the answer — its replica died — to resume it, and
            // weir never resumes a call's stream (`resumes_a_call`).
            // Without one, such a call fails at once ("SSE stream ended
            // without a response") and the client can make it again.
            .with_sse_retry(None);
        // In a fleet, legacy sessions are recorded on Redis, so a client's
        // next request may reach any replica.
        if host.fleet().is_shared() {
            config.session_store = Some(Arc::new(SharedSessions::new(
                host.fleet().clone(),
                limits.session_idle,
            )));
        }
        let mcp = StreamableHttpService::new(
            move || Ok(server.clone()),
            Arc::new(CappedSessions::new(
                limits.max_sessions,
                limits.session_idle,
            )),
            config,
        );
        let gatekeeper = gatekeeper_of(&host);
        Self {
            host,
            mcp: Some(mcp),
            allowed_hosts: allowed_hosts.into(),
            body_timeout: limits.body_timeout,
            max_body_bytes: limits.max_body_bytes,
            gatekeeper,
            stopping,
            in_flight: InFlight::default(),
        }
    }

    /// Metrics alone (`weir serve --stdio --metrics ADDR`).
    pub fn metrics_only(host: Arc<Host>, allowed_hosts: Vec<String>, limits: &HttpLimits) -> Self {
        let gatekeeper = gatekeeper_of(&host);
        Self {
            host,
            mcp: None,
            allowed_hosts: allowed_hosts.into(),
            body_timeout: limits.body_timeout,
            max_body_bytes: limits.max_body_bytes,
            gatekeeper,
            stopping: CancellationToken::new(),
            in_flight: InFlight::default(),
        }
    }

    /// The MCP requests this listener is answering (shared by its clones).
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.clone()
    }

    /// Answers one request.
    pub(crate) async fn handle(mut self, mut request: Request<Incoming>) -> Response<Body> {
        if let Err((status, why)) = self.check_origin(&request) {
            tracing::warn!(%why, path = %request.uri().path(), "HTTP request refused");
            return text(status, why);
        }
        if let Some(keeper) = self.gatekeeper.clone()
            && let Err(response) = self.authorize(&keeper, &mut request).await
        {
            return response;
        }
        match (request.uri().path(), self.mcp.take()) {
            (MCP_PATH, Some(mut mcp)) => {
                if let Some(event) = resumes_a_call(&request) {
                    return call_stream_gone(&event);
                }
                let (parts, body) = request.into_parts();
                let body = match self.read_body(body).await {
                    Ok(body) => body,
                    Err(response) => return response,
                };
                // A request (not a notification or an answer) in a legacy
                // session: its id, to cancel it if the client hangs up.
                let mut cancel_on_hangup = None;
                // Counted for a stop to wait on, unless it is a stream
                // that only ends when the client or the stop ends it.
                let mut answering = None;
                if parts.method == Method::POST {
                    match serde_json::from_slice::<Envelope>(&body) {
                        Ok(Envelope {
                            method: Some(method),
                            id: Some(id),
                        }) => {
                            if method != "subscriptions/listen" {
                                answering = Some(self.in_flight.begin());
                            }
                            cancel_on_hangup =
                                parts.headers.get(SESSION_HEADER).map(|session| Hangup {
                                    mcp: mcp.clone(),
                                    headers: hangup_headers(&parts.headers, session),
                                    id: id.get().to_owned(),
                                });
                        }
                        Ok(_) => {}
                        Err(e) if e.is_syntax() || e.is_eof() => {
                            return parse_error(&e);
                        }
                        // JSON, not a message: rmcp says what is wrong.
                        Err(_) => {}
                    }
                }
                let delete = parts.method == Method::DELETE;
                let request = Request::from_parts(parts, Full::new(body));
                let mut response = match mcp.call(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                if let Some(hangup) = cancel_on_hangup
                    && is_event_stream(&response)
                {
                    // Dropped before its end: the client hung up.
                    response = response.map(|inner| {
                        Ending::new(
                            inner,
                            Box::new(move |answered| {
                                if !answered {
                                    hangup.send();
                                }
                            }),
                        )
                        .boxed()
                    });
                }
                // A session ended at the client's request is done, not
                // pending: 204, which every client SDK reads as success
                // (rmcp says 202, which the Python SDK reports as failure).
                if delete && response.status() == StatusCode::ACCEPTED {
                    *response.status_mut() = StatusCode::NO_CONTENT;
                }
                if let Some(answering) = answering {
                    response = response.map(|inner| {
                        Ending::new(inner, Box::new(move |_| drop(answering))).boxed()
                    });
                }
                response
            }
            (METRICS_PATH, _) if request.method() == Method::GET => {
                let mut response = text(StatusCode::OK, self.host.render_metrics());
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                response
            }
            (METRICS_PATH, _) => text(StatusCode::METHOD_NOT_ALLOWED, "use GET".into()),
            ("/", _) if request.method() == Method::GET => {
                let stats =
                    super::status::summarize(&super::status::parse(&self.host.render_metrics()));
                // `?part=stats`: the figures alone, for the page to refresh.
                let body = if request.uri().query() == Some("part=stats") {
                    super::status::render_html_fragment(&stats)
                } else {
                    super::status::render_html_page(&stats, env!("CARGO_PKG_VERSION"))
                };
                let mut response = text(StatusCode::OK, body);
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
                );
                response
            }
            ("/healthz", _) if request.method() == Method::GET => text(StatusCode::OK, "ok".into()),
            ("/readyz", _) if request.method() == Method::GET => {
                let stopping = self.stopping.is_cancelled();
                let (ready, mut report) = super::health::readiness(&self.host, stopping).await;
                // Behind `protect_status` the probe still answers, but
                // says no more than yes or no to whoever asks.
                if self
                    .gatekeeper
                    .as_ref()
                    .is_some_and(|k| k.auth().protect_status)
                {
                    report = serde_json::json!({"ready": ready});
                }
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                let mut response = text(status, report.to_string());
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("application/json"),
                );
                response
            }
            (path, _) => text(StatusCode::NOT_FOUND, format!("nothing at {path}")),
        }
    }

    /// `weir.auth`: serves the protected-resource metadata, and lets a
    /// guarded request by only with a good token — noted in the request
    /// for the handler, which hides what its scopes do not reach — or
    /// answers `401` saying where to get one.
    async fn authorize(
        &self,
        keeper: &super::auth::Gatekeeper,
        request: &mut Request<Incoming>,
    ) -> Result<(), Response<Body>> {
        let resource = self.resource_uri(keeper, request);
        let metadata_url = metadata_url(&resource);
        let path = request.uri().path();
        if request.method() == Method::GET
            && (path == super::auth::METADATA_PATH
                || metadata_url.ends_with(path) && path.starts_with(super::auth::METADATA_PATH))
        {
            let mut response = text(StatusCode::OK, keeper.metadata(&resource).to_string());
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            return Err(response);
        }
        let guarded = path == MCP_PATH
            || (keeper.auth().protect_status && (path == METRICS_PATH || path == "/"));
        if !guarded {
            return Ok(());
        }
        let authorization = request
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match keeper.check(authorization).await {
            Ok(granted) => {
                tracing::debug!(subject = ?granted.subject, scopes = ?granted.scopes, "token accepted");
                request.extensions_mut().insert(granted);
                Ok(())
            }
            Err(refusal) => {
                tracing::info!(?refusal, path, "request without a good token refused");
                let why = match &refusal {
                    super::auth::Refusal::Missing => {
                        "this endpoint needs `Authorization: Bearer TOKEN`".to_owned()
                    }
                    super::auth::Refusal::Invalid(why) => why.clone(),
                };
                let mut response = text(StatusCode::UNAUTHORIZED, why);
                if let Ok(value) =
                    hyper::header::HeaderValue::from_str(&keeper.challenge(&refusal, &metadata_url))
                {
                    response
                        .headers_mut()
                        .insert(hyper::header::WWW_AUTHENTICATE, value);
                }
                Err(response)
            }
        }
    }

    /// weir's resource URI: as configured, else this listener's MCP
    /// endpoint as the request reached it.
    fn resource_uri<B>(&self, keeper: &super::auth::Gatekeeper, request: &Request<B>) -> String {
        if let Some(resource) = keeper.auth().resource() {
            return resource.to_owned();
        }
        let authority = request
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{authority}{MCP_PATH}")
    }

    /// A request's body, whole: within the size limit and the body
    /// timeout, or the error response saying which was passed.
    async fn read_body(&self, body: Incoming) -> Result<Bytes, Response<Body>> {
        let limited = Limited::new(body, self.max_body_bytes);
        match tokio::time::timeout(self.body_timeout, limited.collect()).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(error)) => {
                if error.is::<http_body_util::LengthLimitError>() {
                    Err(text(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                            "the request body is over {} bytes (weir.http_max_body_bytes)",
                            self.max_body_bytes
                        ),
                    ))
                } else {
                    Err(text(
                        StatusCode::BAD_REQUEST,
                        format!("cannot read the request body: {error}"),
                    ))
                }
            }
            Err(_) => Err(text(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} s (weir.http_body_timeout_secs)",
                    self.body_timeout.as_secs_f64()
                ),
            )),
        }
    }

    /// The DNS-rebinding check: `Host` and `Origin` name allowed hosts —
    /// each given once, so no other copy can be the one acted on.
    pub(crate) fn check_origin<B>(&self, request: &Request<B>) -> Result<(), (StatusCode, String)> {
        check_origin(request.headers(), |name| self.allowed(name)).map_err(|why| match why {
            OriginRefusal::Duplicate(_) | OriginRefusal::NoHost => {
                (StatusCode::BAD_REQUEST, why.to_string())
            }
            OriginRefusal::Host(_) => (
                StatusCode::FORBIDDEN,
                format!(
                    "{why} (allowed: {}; see --allow-host)",
                    self.allowed_hosts.join(", ")
                ),
            ),
            OriginRefusal::Origin(_) => (StatusCode::FORBIDDEN, why.to_string()),
        })
    }

    fn allowed(&self, name: &str) -> bool {
        self.allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
    }
}

/// The host name of an authority: `[::1]:80` → `::1`, `a:80` → `a`.
/// The gatekeeper `weir.auth` asks for, if it does.
fn gatekeeper_of(host: &Host) -> Option<Arc<super::auth::Gatekeeper>> {
    host.config()
        .serve_auth
        .clone()
        .map(|auth| Arc::new(super::auth::Gatekeeper::new(auth)))
}

/// Where the protected-resource metadata of `resource` is (RFC 9728: the
/// well-known path, then the resource's own path).
fn metadata_url(resource: &str) -> String {
    let (scheme, rest) = resource.split_once("://").unwrap_or(("http", resource));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    format!("{scheme}://{authority}{}{path}", super::auth::METADATA_PATH)
}

pub(crate) fn host_name(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed());
    *response.status_mut() = status;
    if !response.headers().contains_key(hyper::header::CONTENT_TYPE) {
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    response
}

/// Why a request's `Host` or `Origin` is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OriginRefusal {
    #[error("the request has no Host header")]
    NoHost,
    #[error("the request has more than one {0} header")]
    Duplicate(&'static str),
    #[error("Host `{0}` is not one weir answers to")]
    Host(String),
    #[error("Origin `{0}` is not allowed")]
    Origin(String),
}

/// The DNS-rebinding check on a request's headers: one `Host`, naming an
/// allowed host, and at most one `Origin`, naming one too.
pub fn check_origin(
    headers: &hyper::HeaderMap,
    allowed: impl Fn(&str) -> bool,
) -> Result<(), OriginRefusal> {
    let mut hosts = headers.get_all(hyper::header::HOST).iter();
    let host = hosts.next().ok_or(OriginRefusal::NoHost)?;
    if hosts.next().is_some() {
        return Err(OriginRefusal::Duplicate("Host"));
    }
    let host = host.to_str().map_err(|_| OriginRefusal::NoHost)?;
    if !allowed(host_name(host)) {
        return Err(OriginRefusal::Host(host.to_owned()));
    }
    let mut origins = headers.get_all(hyper::header::ORIGIN).iter();
    if let Some(origin) = origins.next() {
        if origins.next().is_some() {
            return Err(OriginRefusal::Duplicate("Origin"));
        }
        let origin = origin.to_str().unwrap_or("");
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if !authority.is_some_and(|a| allowed(host_name(a))) {
            return Err(OriginRefusal::Origin(origin.to_owned()));
        }
    }
    Ok(())
}

/// The header naming a legacy MCP session.
const SESSION_HEADER: &str = "mcp-session-id";

/// Headers of the request a hang-up sends on the client's behalf: those
/// rmcp checks a session's messages by.
fn hangup_headers(
    from: &hyper::HeaderMap,
    session: &hyper::header::HeaderValue,
) -> hyper::HeaderMap {
    let mut headers = hyper::HeaderMap::new();
    for name in [
        hyper::header::HOST,
        hyper::header::HeaderName::from_static("mcp-protocol-version"),
    ] {
        if let Some(value) = from.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    headers.insert(SESSION_HEADER, session.clone());
    headers.insert(
        hyper::header::ACCEPT,
        hyper::header::HeaderValue::from_static("application/json, text/event-stream"),
    );
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    headers
}

/// The `Last-Event-ID` of a legacy-session GET that asks to resume a
/// call's response stream (rmcp's ids for those are `INDEX/REQUEST`; the
/// session's common stream has bare numbers). weir never resumes one: a
/// call whose client hung up is cancelled (see `Hangup`), and in a fleet
/// the stream may have been on another replica, or one that died.
fn resumes_a_call<B>(request: &Request<B>) -> Option<String> {
    if request.method() != Method::GET || !request.headers().contains_key(SESSION_HEADER) {
        return None;
    }
    let event = request.headers().get("last-event-id")?.to_str().ok()?;
    event.contains('/').then(|| event.to_owned())
}

/// The answer to [`resumes_a_call`]: 405, the spec's "no stream here" for
/// a GET. rmcp would send an empty stream, which the Python SDK takes as a
/// cue to reconnect, forever; an error status ends its retries and fails
/// the call, which the client can then make again.
fn call_stream_gone(event: &str) -> Response<Body> {
    let mut response = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "the response stream of event {event} cannot be resumed: weir cancels a call whose \
             client hangs up, and its replica may be gone; send the request again"
        ),
    );
    response.headers_mut().insert(
        hyper::header::ALLOW,
        hyper::header::HeaderValue::from_static("GET, POST, DELETE"),
    );
    response
}

fn is_event_stream(response: &Response<Body>) -> bool {
    response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// JSON-RPC's answer to a body that is not JSON.
fn parse_error(error: &serde_json::Error) -> Response<Body> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": -32700, "message": format!("Parse error: the body is not JSON ({error})")},
    });
    let mut response = text(StatusCode::BAD_REQUEST, body.to_string());
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

/// How to cancel one request of a session for a client that went away.
struct Hangup {
    mcp: Mcp,
    headers: hyper::HeaderMap,
    /// The request's id, as the client wrote it.
    id: String,
}

impl Hangup {
    /// Sends the session `notifications/cancelled` for the request.
    fn send(self) {
        let Self {
            mut mcp,
            headers,
            id,
        } = self;
        let body = format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{id},"reason":"the client hung up"}}}}"#
        );
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = hyper::Uri::from_static(MCP_PATH);
        *request.headers_mut() = headers;
        // Outside a runtime (the process is ending) there is nothing to stop.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let response = match mcp.call(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                tracing::info!(request = %id, status = %response.status(), "client hung up; its request is cancelled");
            });
        }
    }
}

/// What to do when a response body is done; told whether it was read to
/// its end (`true`) or dropped before (`false`: the client went away).
pub(super) type OnEnd = Box<dyn FnOnce(bool) + Send + Sync>;

/// A response body that says how it ended, exactly once.
pub(super) struct Ending {
    inner: Body,
    on_end: Option<OnEnd>,
}

impl Ending {
    pub(super) fn new(inner: Body, on_end: OnEnd) -> Self {
        Self {
            inner,
            on_end: Some(on_end),
        }
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        if let Some(on_end) = self.on_end.take() {
            on_end(false);
        }
    }
}

impl HttpBody for Ending {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None))
            && let Some(on_end) = self.on_end.take()
        {
            on_end(true);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only a legacy session's GET naming a call's stream is refused; the
    /// common stream (bare numbers) and 2026-07-28's resumes go to rmcp.
    #[test]
    fn only_a_calls_stream_is_not_resumed() {
        let get = |headers: &[(&'static str, &'static str)]| {
            let mut request = Request::builder().method(Method::GET).uri("/mcp");
            for (k, v) in headers {
                request = request.header(*k, *v);
            }
            resumes_a_call(&request.body(()).expect("request"))
        };
        let session = ("mcp-session-id", "s");
        assert_eq!(
            get(&[session, ("last-event-id", "0/3")]).as_deref(),
            Some("0/3")
        );
        assert_eq!(get(&[session, ("last-event-id", "7")]), None);
        assert_eq!(get(&[session]), None);
        assert_eq!(get(&[("last-event-id", "0/3")]), None);
        let post = Request::builder()
            .method(Method::POST)
            .header("mcp-session-id", "s")
            .header("last-event-id", "0/3")
            .body(())
            .expect("request");
        assert_eq!(resumes_a_call(&post), None);
        let refused = call_stream_gone("0/3");
        assert_eq!(refused.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(refused.headers().contains_key(hyper::header::ALLOW));
    }

    /// Host names are found in every form an authority takes.
    #[test]
    fn finds_host_names() {
        assert_eq!(host_name("localhost:8080"), "localhost");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("[::1]:9000"), "::1");
        assert_eq!(host_name("[::1]"), "::1");
    }

    /// One Host naming an allowed host passes; two Hosts, or two Origins,
    /// are refused whatever they name.
    #[test]
    fn host_and_origin_are_checked_once_each() {
        let allowed = |name: &str| name == "localhost";
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = hyper::HeaderMap::new();
            for (k, v) in pairs {
                map.append(*k, hyper::header::HeaderValue::from_static(v));
            }
            map
        };
        type Case<'a> = (&'a [(&'a str, &'a str)], Result<(), OriginRefusal>);
        let cases: &[Case] = &[
            (&[("host", "localhost:1")], Ok(())),
            (&[], Err(OriginRefusal::NoHost)),
            (
                &[("host", "localhost:1"), ("host", "evil.example")],
                Err(OriginRefusal::Duplicate("Host")),
            ),
            (
                &[("host", "evil.example")],
                Err(OriginRefusal::Host("evil.example".into())),
            ),
            (
                &[("host", "localhost"), ("origin", "http://localhost:3")],
                Ok(()),
            ),
            (
                &[
                    ("host", "localhost"),
                    ("origin", "http://localhost"),
                    ("origin", "http://evil.example"),
                ],
                Err(OriginRefusal::Duplicate("Origin")),
            ),
            (
                &[("host", "localhost"), ("origin", "null")],
                Err(OriginRefusal::Origin("null".into())),
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(&check_origin(&headers(pairs), allowed), want, "{pairs:?}");
        }
    }
}
