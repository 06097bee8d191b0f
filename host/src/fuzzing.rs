//! Thin public wrappers of weir's private parsers, for the cargo-fuzz
//! targets in `fuzz/` (its own workspace, which builds this crate with
//! `--features fuzzing`). Not an API: each wrapper calls the function the
//! host itself calls, the way it calls it, so the fuzzer tests what runs.
//! The fuzz targets own their tokio runtimes; the wrappers here that need
//! one are `async`.

use std::convert::Infallible;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rmcp::transport::Transport;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, HttpLimits};
use crate::plugins::{Manifest, PluginError};
use crate::runtime::{Host, HostError};
use crate::serve::catalog::Catalog;
use crate::serve::clients::Clients;
use crate::serve::handler::WeirServer;
use crate::serve::http::{LOOPBACK_HOSTS, Routes};
use crate::session::wire::{ProtocolFault, StdioWire};

/// `plugins::parse_manifest` (private) on the text of `FILE_NAME.toml`,
/// as `plugins::read` calls it: the manifest parser is fed by whoever
/// ships a plugin.
pub fn parse_manifest(text: &str, file_name: &str) -> Result<Manifest, PluginError> {
    crate::plugins::parse_manifest(&format!("/plugins/{file_name}.toml"), text, file_name)
}

/// What a session's wire made of a server's output, for the `wire` fuzz
/// target to check.
#[derive(Debug, Default)]
pub struct WireRead {
    /// Messages handed to rmcp.
    pub messages: usize,
    /// The protocol fault the session ended with, if it did.
    pub fault: Option<String>,
}

/// Feeds `output` to a stdio session's wire (`session::wire`, private)
/// as the server's stdout, in pieces of `chunk` bytes (at least one), with
/// `pending` of weir's own `tools/call` requests waiting for answers (ids
/// `"weir-1"`…), and reads until the session ends. A server writes
/// whatever it likes: nothing it writes may panic the host.
pub async fn wire_read(output: &[u8], chunk: usize, pending: usize) -> WireRead {
    let fault = ProtocolFault::default();
    let reader = Trickle {
        data: output.to_vec(),
        at: 0,
        chunk: chunk.max(1),
    };
    let mut wire = StdioWire::new(
        reader,
        Box::new(tokio::io::sink()),
        Arc::from("fuzz"),
        fault.clone(),
    );
    let lane = wire.lane();
    let calls: Vec<_> = (0..pending).map(|_| lane.call_tool("t", None)).collect();
    let mut read = WireRead::default();
    while wire.receive().await.is_some() {
        read.messages += 1;
    }
    // The session has ended: every call must have its answer, or fail.
    for call in calls {
        let _ = call.await;
    }
    let _ = wire.close().await;
    read.fault = fault.lock().ok().and_then(|f| f.clone());
    read
}

/// A server's stdout that gives its bytes a few at a time, so that lines
/// also come in pieces.
struct Trickle {
    data: Vec<u8>,
    at: usize,
    chunk: usize,
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let rest = this.data.get(this.at..).unwrap_or_default();
        let n = rest.len().min(this.chunk).min(buf.remaining());
        buf.put_slice(&rest[..n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

/// A host for the HTTP front: `Config::default()` (the built-in server,
/// never started here; no plugins directory, no compile cache). Building
/// one makes a wasmtime engine, so the `http_front` target builds it once.
pub fn http_host() -> Result<Arc<Host>, HostError> {
    let config = Config {
        cache_dir: None,
        ..Config::default()
    };
    Host::new(config, Some(PathBuf::from("/nonexistent/weir"))).map(Arc::new)
}

/// The name `serve::http::host_name` (private) finds in an authority: it
/// decides which `Host` and `Origin` headers weir answers.
pub fn host_name(authority: &str) -> &str {
    crate::serve::http::host_name(authority)
}

/// The DNS-rebinding check of `weir serve --http` (`Routes::check_origin`,
/// private: the check and the status it answers with) on a request with
/// these headers, in order (a pair is left out when its name or value is
/// not valid in a header), with the default allowed hosts.
pub fn check_origin(
    host: Arc<Host>,
    headers: &[(&[u8], &[u8])],
) -> Result<(), (hyper::StatusCode, String)> {
    let routes = Routes::metrics_only(host, loopback(), &HttpLimits::default());
    let mut request = hyper::Request::new(());
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name),
            hyper::header::HeaderValue::from_bytes(value),
        ) {
            request.headers_mut().append(name, value);
        }
    }
    routes.check_origin(&request)
}

/// One HTTP/1 connection to `weir serve --http`'s routes (MCP at `/mcp`,
/// metrics, the status page; `Routes::handle`, private) over an in-memory
/// pipe: `request` is every byte the client sends, then it closes its side;
/// the answer is every byte it got back. A response that never ends (an
/// SSE stream) never lets this return: the caller bounds it with a
/// timeout, on a paused clock.
pub async fn http_exchange(host: Arc<Host>, request: &[u8]) -> Vec<u8> {
    let stop = CancellationToken::new();
    let server = WeirServer::new(
        host.clone(),
        Arc::new(Catalog::new(host.clone())),
        Arc::new(Clients::default()),
        None,
    );
    let routes = Routes::mcp_and_metrics(
        host,
        server,
        loopback(),
        stop.child_token(),
        &HttpLimits::default(),
    );
    let (mut client, connection) = tokio::io::duplex(1 << 16);
    let service = hyper::service::service_fn(move |request| {
        let routes = routes.clone();
        async move { Ok::<_, Infallible>(routes.handle(request).await) }
    });
    // Half-close: the client shuts its side once the request is written,
    // and still reads the answer.
    let serving = hyper::server::conn::http1::Builder::new()
        .half_close(true)
        .serve_connection(hyper_util::rt::TokioIo::new(connection), service);
    let asking = async {
        let mut response = Vec::new();
        if client.write_all(request).await.is_ok() && client.shutdown().await.is_ok() {
            let _ = client.read_to_end(&mut response).await;
        }
        response
    };
    let (_, response) = tokio::join!(serving, asking);
    stop.cancel();
    response
}

fn loopback() -> Vec<String> {
    LOOPBACK_HOSTS.iter().map(|h| (*h).to_owned()).collect()
}
