//! The HTTP client of one remote server: keep-alive connections pooled
//! and reused by every session and call to it — on 2026-07-28, where a
//! request is not bound to a session, the pool is what keeps the cost of
//! a call to a request, not a TCP (and TLS) handshake. Each connection
//! opened is counted (`weir_upstream_http_connections_total`), so the
//! O(servers), never O(calls), promise can be checked from the metrics.
//!
//! rmcp's default client turns pooling off (against stalls from Nagle
//! and delayed ACKs on a reused connection); here Nagle is off instead
//! (`TCP_NODELAY`), so a reused connection sends at once.

use std::task::{Context, Poll};
use std::time::Duration;

use crate::metrics::Tally;

/// How long an idle connection is kept for the next request.
const IDLE: Duration = Duration::from_secs(90);
/// Redirects followed for one request, at most.
const MAX_REDIRECTS: usize = 10;

/// A client for one server; `connections` counts the connections it opens.
pub fn client(connections: Tally) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .pool_idle_timeout(IDLE)
        .tcp_nodelay(true)
        .redirect(same_origin_redirects())
        .connector_layer(CountConnections(connections))
        .build()
}

/// Only same-origin 307/308 redirects are followed: they keep the method
/// and body (the JSON-RPC message); a 301/302/303 would turn the POST into
/// a GET and lose it, and another origin would get the session's headers.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let keeps_body = matches!(
            attempt.status(),
            reqwest::StatusCode::TEMPORARY_REDIRECT | reqwest::StatusCode::PERMANENT_REDIRECT
        );
        let same_origin = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if !keeps_body || !same_origin {
            attempt.stop()
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
}

/// Counts each connection the client's connector makes.
#[derive(Clone)]
struct CountConnections(Tally);

impl<S> tower_layer::Layer<S> for CountConnections {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            count: self.0.clone(),
        }
    }
}

/// A connector that counts what it connects.
#[derive(Clone)]
struct Counted<S> {
    inner: S,
    count: Tally,
}

impl<S, R> tower_service::Service<R> for Counted<S>
where
    S: tower_service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        self.count.inc();
        self.inner.call(request)
    }
}
