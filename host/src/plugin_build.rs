//! `weir build`: a plugin crate to a checked component. Runs cargo (release,
//! `wasm32-wasip2`), finds the component cargo made, checks it targets
//! weir's world, and puts it beside its manifest (or in `--out`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::plugins::sha256_hex;
use crate::runtime::Host;

/// What was built.
#[derive(Debug)]
pub struct Built {
    pub path: PathBuf,
    pub bytes: usize,
    pub sha256: String,
}

/// Why a plugin crate did not build into a usable component.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0} has no Cargo.toml: point weir build at a plugin crate (weir new makes one)")]
    NotACrate(PathBuf),
    #[error("cannot run cargo: {0} (is the Rust toolchain installed?)")]
    Cargo(std::io::Error),
    #[error(
        "the wasm32-wasip2 target is not installed: run `rustup target add wasm32-wasip2` \
         (or add it to rust-toolchain.toml)"
    )]
    NoTarget,
    #[error(
        "the weir guest SDK (crate weir-guest) cannot be found; point the plugin's Cargo.toml \
         at a weir checkout's guest-sdk: weir-guest = {{ path = \".../weir/guest-sdk\" }}\n{0}"
    )]
    NoSdk(String),
    #[error("cargo build failed:\n{0}")]
    Failed(String),
    #[error("cargo built no component (is `crate-type = [\"cdylib\"]` set?)")]
    NoArtifact,
    #[error("{path} does not target weir's world: {why}")]
    WrongWorld { path: PathBuf, why: String },
    #[error("cannot copy the component to {path}: {source}")]
    Copy {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Builds the crate in `dir`; the component goes beside the crate's
/// manifest `NAME.toml` (or into `out`, with the manifest).
pub fn build(host: &Host, dir: &Path, out: Option<&Path>) -> Result<Built, BuildError> {
    let manifest_path = dir.join("Cargo.toml");
    if !manifest_path.is_file() {
        return Err(BuildError::NotACrate(dir.to_owned()));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--manifest-path")
        .arg(&manifest_path)
        .output()
        .map_err(BuildError::Cargo)?;
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
                BuildError::Failed(last_lines(&stderr, 30))
            },
        );
    }
    // The artifact cargo reports, not a guess at its path.
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
    let bytes = std::fs::read(&built).map_err(|source| BuildError::Copy {
        path: built.clone(),
        source,
    })?;
    let sha256 = sha256_hex(&bytes);
    let what = built.display().to_string();
    let shape = host
        .shape(&crate::plugins::PluginFile {
            name: String::new(),
            location: what.clone(),
            bytes: bytes.clone(),
            sha256: sha256.clone(),
            manifest: None,
        })
        .map_err(|e| BuildError::WrongWorld {
            path: built.clone(),
            why: e.to_string(),
        })?;
    if let Err(why) = shape.links {
        return Err(BuildError::WrongWorld { path: built, why });
    }
    // Named after its manifest if it has one, else after the file.
    let manifest = find_manifest(dir, &built);
    let name = manifest
        .as_ref()
        .and_then(|m| m.file_stem())
        .or_else(|| built.file_stem())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let target_dir = out.unwrap_or(dir);
    std::fs::create_dir_all(target_dir).map_err(|source| BuildError::Copy {
        path: target_dir.to_owned(),
        source,
    })?;
    let path = target_dir.join(format!("{name}.wasm"));
    std::fs::write(&path, &bytes).map_err(|source| BuildError::Copy {
        path: path.clone(),
        source,
    })?;
    if let (Some(out), Some(manifest)) = (out, &manifest) {
        let copy = out.join(format!("{name}.toml"));
        std::fs::copy(manifest, &copy).map_err(|source| BuildError::Copy { path: copy, source })?;
    }
    Ok(Built {
        path,
        bytes: bytes.len(),
        sha256,
    })
}

/// The plugin manifest of the crate in `dir`: the `NAME.toml` whose name
/// matches the component cargo built (`my_agent.wasm` ↔ `my-agent.toml`),
/// else the only candidate there is. Cargo's and rustup's own files are
/// not manifests.
fn find_manifest(dir: &Path, built: &Path) -> Option<PathBuf> {
    const NOT_MANIFESTS: [&str; 4] = [
        "Cargo.toml",
        "rust-toolchain.toml",
        "rustfmt.toml",
        "clippy.toml",
    ];
    let candidates: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !NOT_MANIFESTS.contains(&n) && !n.starts_with('.'))
        })
        .collect();
    let normalize = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().replace('-', "_"))
            .unwrap_or_default()
    };
    let wanted = normalize(built);
    candidates
        .iter()
        .find(|c| normalize(c) == wanted)
        .cloned()
        .or_else(|| (candidates.len() == 1).then(|| candidates[0].clone()))
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifest is the NAME.toml matching the component, never
    /// Cargo's or rustup's files.
    #[test]
    fn finds_the_plugin_manifest() {
        let dir = std::env::temp_dir().join(format!("weir-build-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        for f in [
            "Cargo.toml",
            "rust-toolchain.toml",
            "my-agent.toml",
            "other.toml",
        ] {
            std::fs::write(dir.join(f), "").expect("write");
        }
        let found = find_manifest(&dir, Path::new("/t/my_agent.wasm"));
        assert_eq!(found, Some(dir.join("my-agent.toml")));
        std::fs::remove_file(dir.join("other.toml")).expect("rm");
        let found = find_manifest(&dir, Path::new("/t/renamed.wasm"));
        assert_eq!(found, Some(dir.join("my-agent.toml")), "the only candidate");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
