//! The recording reader (`weir run --replay`, `weir test`): any text as a
//! `*.replay.jsonl`. What parses is replayed: every recorded call answered,
//! the tool list given; and every entry read must write back as a line
//! that reads again (what `--record` writes, `--replay` must read).

#![no_main]

use std::collections::BTreeMap;

use futures::FutureExt;
use libfuzzer_sys::fuzz_target;
use weir_host::ToolGateway;
use weir_host::gateway::{Arguments, Caller};
use weir_host::recording::{Entry, Replayer};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let entries = match weir_host::recording::parse(text, "fuzz.replay.jsonl") {
        Ok(entries) => entries,
        Err(error) => {
            let _ = error.to_string();
            return;
        }
    };
    let replayer = Replayer::new(&entries, BTreeMap::new());
    let caller = Caller::new("fuzz");
    for entry in &entries {
        if let Entry::Call {
            server,
            tool,
            arguments,
            ..
        } = entry
        {
            // A recording holds arguments as a map; a call carries text.
            let arguments = arguments.as_ref().and_then(|m| Arguments::from_map(m).ok());
            let answer = replayer
                .call_tool(&caller, server, tool, arguments)
                .now_or_never();
            assert!(answer.is_some(), "a replayed call waits");
        }
        let line = serde_json::to_string(entry).expect("an entry serializes");
        let back: Result<Entry, _> = serde_json::from_str(&line);
        assert!(back.is_ok(), "{line} does not read back: {back:?}");
    }
    let _ = replayer.list_tools(&caller).now_or_never();
});
