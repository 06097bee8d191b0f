//! stdin and stdout as async streams, for MCP over stdio (`weir serve`,
//! the built-in server).
//!
//! tokio's `stdin()` and `stdout()` work for any file, by handing each read
//! and write to the blocking thread pool: two thread hops per message, tens
//! of µs a round trip. MCP clients connect a server's stdio to a pipe
//! (most) or a socket (Node), which can be read and written without
//! blocking, right on the event loop; weir does that when it can, and
//! falls back to tokio's streams for anything else (a file, a terminal).

use std::os::fd::{AsFd, OwnedFd};

use tokio::io::{AsyncRead, AsyncWrite};

/// A boxed async reader.
pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// A boxed async writer.
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// This process's stdin and stdout, as async streams. Must be called from
/// within a tokio runtime.
pub fn stdio() -> (Reader, Writer) {
    let reader = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .and_then(nonblocking_reader)
        .unwrap_or_else(|| Box::new(tokio::io::stdin()));
    let writer = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .and_then(nonblocking_writer)
        .unwrap_or_else(|| Box::new(tokio::io::stdout()));
    (reader, writer)
}

fn nonblocking_reader(fd: OwnedFd) -> Option<Reader> {
    if let Ok(pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd.try_clone().ok()?) {
        return Some(Box::new(pipe));
    }
    socket(fd).map(|s| Box::new(s) as Reader)
}

fn nonblocking_writer(fd: OwnedFd) -> Option<Writer> {
    if let Ok(pipe) = tokio::net::unix::pipe::Sender::from_owned_fd(fd.try_clone().ok()?) {
        return Some(Box::new(pipe));
    }
    socket(fd).map(|s| Box::new(s) as Writer)
}

/// A Unix socket, or `None` for anything else (`getsockname` tells).
fn socket(fd: OwnedFd) -> Option<tokio::net::UnixStream> {
    let socket = std::os::unix::net::UnixStream::from(fd);
    socket.local_addr().ok()?;
    socket.set_nonblocking(true).ok()?;
    tokio::net::UnixStream::from_std(socket).ok()
}
