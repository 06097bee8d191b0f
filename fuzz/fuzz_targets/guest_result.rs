//! The guest SDK's parse of the tool results the host hands a plugin
//! (`ToolResult::from_json`), then what a plugin reads from one: its text
//! and its structured content as JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_guest::ToolResult;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(result) = ToolResult::from_json(text) {
        let _ = result.text();
        let _ = result.json::<serde_json::Value>();
    }
});
