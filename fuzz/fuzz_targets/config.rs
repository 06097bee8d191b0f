//! The config file parser: `Config::from_json` (every check it makes,
//! `${VAR}` expansion included) and `expand_vars` alone, on any text. An
//! operator's typo must be an error naming it, never a panic.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

/// A small fixed environment, so expansions both succeed and fail.
fn env(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/fuzz".into()),
        "TOKEN" => Some("s3cret".into()),
        "EMPTY" => Some(String::new()),
        "NESTED" => Some("${TOKEN}".into()),
        "PORT" => Some("8080".into()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match weir_host::Config::from_json(Path::new("/x/weir.json"), text, env) {
        Ok(config) => {
            let _ = config.grant_for("hello");
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
    let _ = weir_host::config::expand_vars(text, env);
});
