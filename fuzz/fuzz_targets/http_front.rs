//! The front of `weir serve --http`: any bytes as an HTTP/1 request (its
//! `Content-Length` set to the body's, so mutations of the body reach the
//! routes rather than stall them). First the DNS-rebinding check alone, on
//! the request's header lines (`Host`, `Origin`, duplicates), and the host
//! name found in each value; then the whole request through hyper into
//! `Routes::handle` over an in-memory connection: the check, the body read
//! within its limits, the JSON-RPC classification of an MCP body, rmcp's
//! session handling, `/metrics` and the status page. Each exchange runs on
//! a paused clock: an event stream that never ends costs no real time.

#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use weir_host::Host;
use weir_host::fuzzing;

/// One host for every exec: building one makes a wasmtime engine.
static HOST: LazyLock<Arc<Host>> =
    LazyLock::new(|| fuzzing::http_host().expect("a host from the default config"));

/// Virtual time an exchange may take: past the body timeout (30 s).
const EXCHANGE: Duration = Duration::from_secs(40);

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&data[..i], &data[i + 4..]),
        None => (data, &[][..]),
    };
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let headers: Vec<(&[u8], &[u8])> = lines
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            Some((trim(&line[..colon]), trim(&line[colon + 1..])))
        })
        .collect();

    // The check alone.
    let _ = fuzzing::check_origin(HOST.clone(), &headers);
    for (_, value) in &headers {
        if let Ok(value) = std::str::from_utf8(value) {
            let name = fuzzing::host_name(value);
            assert!(value.contains(name), "{name:?} is not in {value:?}");
        }
    }

    // The whole request, with its body's length.
    let mut request = request_line.to_vec();
    request.extend_from_slice(b"\r\n");
    for (name, value) in &headers {
        if name.eq_ignore_ascii_case(b"content-length") {
            continue;
        }
        request.extend_from_slice(name);
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let host = HOST.clone();
    runtime.block_on(async {
        let _ = tokio::time::timeout(EXCHANGE, fuzzing::http_exchange(host, &request)).await;
    });
});
