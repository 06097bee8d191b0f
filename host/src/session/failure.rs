//! A failed session start, said in a sentence: "cannot connect to
//! 127.0.0.1:9: connection refused", not the chain of rmcp's transport
//! types. The whole chain goes to the debug log (`weir -vv`), where the
//! log writer masks any secret in it.

use rmcp::service::ClientInitializeError;
use rmcp::transport::streamable_http_client::StreamableHttpError;

/// What went wrong when `initialize` failed, for a server reached at
/// `target` (`host:port`, for an HTTP server).
pub(crate) fn initialize_failure(
    server: &str,
    error: &ClientInitializeError,
    target: Option<&str>,
) -> String {
    tracing::debug!(server, error = %chain(error), "initialize failed");
    let mut cause: &(dyn std::error::Error + 'static) = match error {
        ClientInitializeError::TransportError { error, .. } => error,
        other => other,
    };
    // rmcp's HTTP error holds reqwest's without making it its source.
    if let Some(StreamableHttpError::Client(inner)) =
        find::<StreamableHttpError<reqwest::Error>>(cause)
    {
        cause = inner;
    }
    if let (Some(io), Some(target)) = (find_io(cause), target) {
        return format!("cannot connect to {target}: {}", io_words(io));
    }
    format!(
        "initialize failed: {}",
        without_type_names(&innermost(cause))
    )
}

/// `error` and its causes, `: `-separated.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        text.push_str(": ");
        text.push_str(&e.to_string());
        next = e.source();
    }
    text
}

/// The deepest cause's words: the most specific of the chain.
fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(e) = last.source() {
        last = e;
    }
    last.to_string()
}

fn find_io<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    find::<std::io::Error>(error)
}

/// The first error of type `E` in `error`'s chain.
fn find<'a, E: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// An I/O error as words: "connection refused", without "(os error 111)".
fn io_words(error: &std::io::Error) -> String {
    let text = error.to_string();
    let text = match text.find(" (os error") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `text` without bracketed Rust type names (`[rmcp::transport::…]`).
pub(crate) fn without_type_names(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = matching_bracket(&rest[open..]) else {
            break;
        };
        let inside = &rest[open + 1..open + close];
        out.push_str(&rest[..open]);
        if !inside.contains("::") {
            out.push_str(&rest[open..=open + close]);
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Where the `]` matching the `[` that starts `text` is.
fn matching_bracket(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_left_out() {
        assert_eq!(
            without_type_names(
                "Send message error Transport [rmcp::transport::worker::WorkerTransport<a::B<c::D>>] \
                 error: Client error: boom [1, 2]"
            ),
            "Send message error Transport error: Client error: boom [1, 2]"
        );
    }

    #[test]
    fn io_errors_read_as_words() {
        let refused = std::io::Error::from_raw_os_error(111);
        assert_eq!(io_words(&refused), "connection refused");
    }
}
