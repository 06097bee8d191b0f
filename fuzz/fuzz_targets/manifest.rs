//! The plugin manifest parser (`NAME.toml` beside a plugin, written by
//! whoever ships the plugin), then what the host does with a manifest it
//! read: the policy it asks for narrowed against the operator's grant, and
//! its input schema turned into the JSON Schema `weir serve` offers.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use weir_host::policy::Policy;

static GRANT: LazyLock<Policy> = LazyLock::new(|| weir_host::Config::default().default_policy);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match weir_host::fuzzing::parse_manifest(text, "hello") {
        Ok(manifest) => {
            if let Some(asked) = &manifest.policy {
                let _ = asked.narrow(&GRANT);
                let _ = asked.over(&GRANT);
            }
            if let Some(schema) = &manifest.input_schema {
                let _ = serde_json::to_value(schema);
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
