//! The guide `docs/first-agent.md`, followed as a new user would: every
//! `sh` block, in order, in one shell, in a fresh directory.

mod support;

use std::path::Path;
use std::process::Command;

use support::{Scratch, WEIR};

/// The `sh` code blocks of a Markdown text, in order.
fn sh_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn the_first_agent_guide_works_as_written() {
    let guide_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/first-agent.md");
    let guide = std::fs::read_to_string(&guide_path).expect("the guide");
    let blocks = sh_blocks(&guide);
    assert!(blocks.len() >= 5, "{blocks:?}");

    let scratch = Scratch::new("guide");
    let weir_dir = Path::new(WEIR).parent().expect("bin dir");
    let path = format!(
        "{}:{}",
        weir_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // Each block is echoed before it runs, so a failure says which step.
    let script: String = blocks
        .iter()
        .enumerate()
        .map(|(i, b)| format!("echo '--- step {}'\n{b}", i + 1))
        .collect();
    let out = Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(&script)
        .current_dir(&scratch.dir)
        .env("PATH", path)
        // A target directory of the guide's own, kept between runs (the
        // first compiles the SDK's dependencies, later ones reuse them);
        // not the test plugins' one, where a `greeter.wasm` would appear
        // among the plugins other tests list.
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("WEIR_TEST_PLUGINS"))
                .ancestors()
                .nth(3)
                .expect("the target directory")
                .join("guide"),
        )
        .output()
        .expect("run the guide");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the guide failed:\n{stdout}\n{stderr}"
    );
    for expected in [
        "created ",
        "built ./greeter.wasm",
        "Hello, you! (1 tools visible)",
        "world       weir:agent/agent@0.1.0 (links)",
        "1 recordings, 1 passed, 0 failed",
        "the recording no longer matches",
        "replay: the recording has no call of `builtin/echo`",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} in:\n{stdout}\n{stderr}"
        );
    }
    assert!(
        stdout
            .trim_end()
            .ends_with("1 recordings, 1 passed, 0 failed"),
        "re-recorded, the test passes again:\n{stdout}"
    );
}
