//! The stdio wire of a session: arbitrary bytes as an MCP server's stdout,
//! read line by line (in pieces, `\r\n`, BOMs, blank lines), each line's
//! envelope classified, answers to weir's own `tools/call` requests handed
//! to their callers, the rest parsed for rmcp. A server may write anything;
//! the session may end, the host may not panic.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
});

fuzz_target!(|data: &[u8]| {
    // Derived from the input, not taken out of it, so seeds stay plain
    // server output: how the bytes are split. Three of weir's own calls
    // wait, ids `"weir-1"` to `"weir-3"`.
    let chunk = 1 + data.len() % 97;
    let pending = 3;
    let read = RUNTIME.block_on(weir_host::fuzzing::wire_read(data, chunk, pending));
    let lines = data.split(|&b| b == b'\n').count();
    assert!(read.messages <= lines, "more messages than lines");
});
