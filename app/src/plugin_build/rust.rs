//! Rust plugins: cargo builds the crate for `wasm32-wasip2`, and the
//! artifact is the one cargo reports, not a guess at its path.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Artifact, BuildError, last_lines, read_artifact};

pub(super) fn build(dir: &Path) -> Result<Artifact, BuildError> {
    let manifest_path = dir.join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&manifest_path)
        .output()
        .map_err(|source| BuildError::Tool {
            tool: "cargo",
            hint: "install the Rust toolchain (https://rustup.rs)",
            source,
        })?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(
            if stderr.contains("target may not be installed")
                || stderr.contains("can't find crate for `core`")
                || stderr.contains("can't find crate for `std`")
            {
                BuildError::NoTarget
            } else if stderr.contains("weir-guest")
                && (stderr.contains("failed to") || stderr.contains("no matching package"))
            {
                BuildError::NoSdk(last_lines(&stderr, 6))
            } else {
                BuildError::Failed {
                    tool: "cargo build",
                    log: last_lines(&stderr, 30),
                }
            },
        );
    }
    let built = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        })
        .filter_map(|m| {
            m["filenames"].as_array().and_then(|f| {
                f.iter()
                    .filter_map(|p| p.as_str())
                    .find(|p| p.ends_with(".wasm"))
                    .map(PathBuf::from)
            })
        })
        .next_back()
        .ok_or(BuildError::NoArtifact)?;
    let stem = built.file_stem().map(|s| s.to_string_lossy().into_owned());
    read_artifact(built, stem)
}
