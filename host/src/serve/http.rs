//! The HTTP side of `weir serve`: streamable HTTP MCP at `/mcp`, metrics at
//! `/metrics`, on one listener (or metrics alone, beside a stdio server).
//!
//! Every request is checked first against DNS rebinding: its `Host` must
//! be one the operator allows (loopback names by default), and a browser's
//! `Origin`, when sent, must name an allowed host too. A page on some other
//! site cannot drive the agents, or read the metrics, of a weir on
//! localhost.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use super::handler::WeirServer;
use crate::runtime::Host;

type Body = BoxBody<Bytes, Infallible>;

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
    mcp: Option<StreamableHttpService<WeirServer, LocalSessionManager>>,
    allowed_hosts: Arc<[String]>,
}

impl Routes {
    /// MCP and metrics; `server` makes one handler per session.
    pub fn mcp_and_metrics(
        host: Arc<Host>,
        server: WeirServer,
        allowed_hosts: Vec<String>,
        stop: CancellationToken,
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
        let config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(allowed_hosts.clone())
            .with_allowed_origins(origins)
            .with_cancellation_token(stop);
        let mcp = StreamableHttpService::new(
            move || Ok(server.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        Self {
            host,
            mcp: Some(mcp),
            allowed_hosts: allowed_hosts.into(),
        }
    }

    /// Metrics alone (`weir serve --stdio --metrics ADDR`).
    pub fn metrics_only(host: Arc<Host>, allowed_hosts: Vec<String>) -> Self {
        Self {
            host,
            mcp: None,
            allowed_hosts: allowed_hosts.into(),
        }
    }

    async fn handle(mut self, request: Request<Incoming>) -> Response<Body> {
        if let Err(why) = self.check_origin(&request) {
            tracing::warn!(%why, path = %request.uri().path(), "HTTP request refused");
            return text(StatusCode::FORBIDDEN, why);
        }
        match (request.uri().path(), &mut self.mcp) {
            (MCP_PATH, Some(mcp)) => {
                let delete = request.method() == Method::DELETE;
                let mut response = match mcp.call(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                // A session ended at the client's request is done, not
                // pending: 204, which every client SDK reads as success
                // (rmcp says 202, which the Python SDK reports as failure).
                if delete && response.status() == StatusCode::ACCEPTED {
                    *response.status_mut() = StatusCode::NO_CONTENT;
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
                    crate::stats::summarize(&crate::stats::parse(&self.host.render_metrics()));
                // `?part=stats`: the figures alone, for the page to refresh.
                let body = if request.uri().query() == Some("part=stats") {
                    crate::stats::render_html_fragment(&stats)
                } else {
                    crate::stats::render_html_page(&stats, env!("CARGO_PKG_VERSION"))
                };
                let mut response = text(StatusCode::OK, body);
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
                );
                response
            }
            (path, _) => text(StatusCode::NOT_FOUND, format!("nothing at {path}")),
        }
    }

    /// The DNS-rebinding check: `Host` and `Origin` name allowed hosts.
    fn check_origin(&self, request: &Request<Incoming>) -> Result<(), String> {
        let host = request
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .ok_or("the request has no Host header")?;
        if !self.allowed(host_name(host)) {
            return Err(format!(
                "Host `{host}` is not one weir answers to (allowed: {}; see --allow-host)",
                self.allowed_hosts.join(", ")
            ));
        }
        if let Some(origin) = request.headers().get(hyper::header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            let authority = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            if !authority.is_some_and(|a| self.allowed(host_name(a))) {
                return Err(format!("Origin `{origin}` is not allowed"));
            }
        }
        Ok(())
    }

    fn allowed(&self, name: &str) -> bool {
        self.allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
    }
}

/// The host name of an authority: `[::1]:80` → `::1`, `a:80` → `a`.
fn host_name(authority: &str) -> &str {
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

/// Serves `routes` on `listener` until `stop`; connections in progress are
/// then closed.
pub async fn serve(listener: TcpListener, routes: Routes, stop: CancellationToken) {
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors, say: wait a little, go on.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let routes = routes.clone();
        let stop = stop.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let routes = routes.clone();
                async move { Ok::<_, Infallible>(routes.handle(request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop.cancelled() => {
                    // Finish the request in progress, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.as_mut().await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "HTTP connection ended");
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), connections.wait()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Host names are found in every form an authority takes.
    #[test]
    fn finds_host_names() {
        assert_eq!(host_name("localhost:8080"), "localhost");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("[::1]:9000"), "::1");
        assert_eq!(host_name("[::1]"), "::1");
    }
}
