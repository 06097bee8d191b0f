//! `weir build`: a plugin's source to a checked component. Rust crates go
//! through cargo, Python agents through componentize-py, JavaScript and
//! TypeScript ones through componentize-js or componentize-qjs (by the JS
//! guest SDK's `build.mjs`). Whatever the language, the result is checked
//! against weir's world before it is put beside its manifest (or in
//! `--out`): a component that would not link never reaches a plugins
//! directory.

mod js;
mod python;
mod rust;
mod scratch;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) use self::js::locate_sdk as locate_js_sdk;
use weir_host::plugins::sha256_hex;
use weir_host::runtime::Host;

/// What was built: what `weir build` reports, and the sha256 an operator
/// pins the plugin to.
#[derive(Debug)]
pub struct Built {
    /// Where the component was put.
    pub path: PathBuf,
    pub bytes: usize,
    pub sha256: String,
    pub language: Language,
}

/// The languages `weir build` turns into components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Rust,
    Python,
    /// JavaScript or TypeScript.
    JavaScript,
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rust => "Rust",
            Self::Python => "Python",
            Self::JavaScript => "JavaScript",
        })
    }
}

/// The engine a JavaScript or TypeScript agent runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum JsEngine {
    /// SpiderMonkey, by componentize-js: the fuller runtime (~12 MB).
    #[default]
    Starlingmonkey,
    /// QuickJS, by componentize-qjs: ~1.6 MB, compiles in a second.
    Quickjs,
}

impl JsEngine {
    fn name(self) -> &'static str {
        match self {
            Self::Starlingmonkey => "starlingmonkey",
            Self::Quickjs => "quickjs",
        }
    }
}

/// Choices a build may make; the defaults suit most plugins.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildOptions {
    pub js_engine: JsEngine,
}

/// Why a plugin's source did not build into a usable component.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(
        "{0} holds no plugin source: a Rust crate (Cargo.toml), a Python agent (agent.py) \
         or a JavaScript/TypeScript one (agent.js, agent.ts) — weir new makes a Rust one"
    )]
    NoSource(PathBuf),
    #[error("{dir} holds more than one agent ({found}): keep one, or name it agent.py/agent.ts")]
    Ambiguous { dir: PathBuf, found: String },
    #[error("cannot run {tool}: {source}\n→ {hint}")]
    Tool {
        tool: &'static str,
        hint: &'static str,
        #[source]
        source: std::io::Error,
    },
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
    #[error("{0}")]
    NoJsSdk(String),
    #[error("{tool} failed:\n{log}")]
    Failed { tool: &'static str, log: String },
    #[error("cargo built no component (is `crate-type = [\"cdylib\"]` set?)")]
    NoArtifact,
    #[error("{path} does not target weir's world: {why}")]
    WrongWorld { path: PathBuf, why: String },
    #[error("cannot write {path}: {source}")]
    Copy {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A component fresh from its language's tool, before it is checked.
struct Artifact {
    bytes: Vec<u8>,
    /// Where the tool put it, for messages.
    origin: PathBuf,
    /// The name the tool gave it (a Rust crate's), used to pick the
    /// manifest among several.
    stem: Option<String>,
}

/// What a directory holds, as `weir build` sees it.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    Crate,
    Python(PathBuf),
    JavaScript(PathBuf),
}

/// Which language the plugin in `dir` is written in.
pub fn language_of(dir: &Path) -> Result<Language, BuildError> {
    Ok(match detect(dir)? {
        Source::Crate => Language::Rust,
        Source::Python(_) => Language::Python,
        Source::JavaScript(_) => Language::JavaScript,
    })
}

/// Builds the plugin in `dir`; the component goes beside the plugin's
/// manifest `NAME.toml` (or into `out`, with the manifest).
pub fn build(
    host: &Host,
    dir: &Path,
    out: Option<&Path>,
    options: BuildOptions,
) -> Result<Built, BuildError> {
    let (artifact, language) = match detect(dir)? {
        Source::Crate => (rust::build(dir)?, Language::Rust),
        Source::Python(entry) => (python::build(dir, &entry)?, Language::Python),
        Source::JavaScript(entry) => (
            js::build(dir, &entry, options.js_engine)?,
            Language::JavaScript,
        ),
    };
    let Artifact {
        bytes,
        origin,
        stem,
    } = artifact;
    let sha256 = sha256_hex(&bytes);
    let shape = host
        .shape(&weir_host::plugins::PluginFile {
            name: String::new(),
            location: origin.display().to_string(),
            bytes: bytes.clone(),
            sha256: sha256.clone(),
            manifest: None,
        })
        .map_err(|e| BuildError::WrongWorld {
            path: origin.clone(),
            why: e.to_string(),
        })?;
    if let Err(why) = shape.links {
        return Err(BuildError::WrongWorld { path: origin, why });
    }
    // Named after its manifest if it has one, else after what the tool
    // named it, else after its directory.
    let dir_name = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
    let stem = stem.or_else(|| dir_name.clone());
    let manifest = find_manifest(dir, stem.as_deref().unwrap_or_default());
    let name = manifest
        .as_ref()
        .and_then(|m| m.file_stem())
        .map(|n| n.to_string_lossy().into_owned())
        .or(stem)
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
        language,
    })
}

/// A crate if there is a Cargo.toml; else the agent file: `agent.py`,
/// `agent.ts`, `agent.js` (or `.mjs`), or the one Python or JS/TS file
/// there is.
fn detect(dir: &Path) -> Result<Source, BuildError> {
    if dir.join("Cargo.toml").is_file() {
        return Ok(Source::Crate);
    }
    for name in ["agent.py", "agent.ts", "agent.js", "agent.mjs"] {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(if name.ends_with(".py") {
                Source::Python(path)
            } else {
                Source::JavaScript(path)
            });
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|_| BuildError::NoSource(dir.to_owned()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            !name.ends_with(".d.ts")
                && [".py", ".ts", ".js", ".mjs"]
                    .iter()
                    .any(|x| name.ends_with(x))
        })
        .collect();
    found.sort();
    match found.as_slice() {
        [] => Err(BuildError::NoSource(dir.to_owned())),
        [one] if one.extension().is_some_and(|x| x == "py") => Ok(Source::Python(one.clone())),
        [one] => Ok(Source::JavaScript(one.clone())),
        many => Err(BuildError::Ambiguous {
            dir: dir.to_owned(),
            found: many
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Runs a build tool, naming it (and what to install) when it is missing,
/// and giving the end of its output when it fails.
fn run_tool(
    command: &mut Command,
    tool: &'static str,
    hint: &'static str,
) -> Result<Output, BuildError> {
    let output = command
        .output()
        .map_err(|source| BuildError::Tool { tool, hint, source })?;
    if !output.status.success() {
        let mut log = String::from_utf8_lossy(&output.stderr).into_owned();
        if log.trim().is_empty() {
            log = String::from_utf8_lossy(&output.stdout).into_owned();
        }
        return Err(BuildError::Failed {
            tool,
            log: last_lines(&log, 30),
        });
    }
    Ok(output)
}

/// Reads what a tool wrote.
fn read_artifact(path: PathBuf, stem: Option<String>) -> Result<Artifact, BuildError> {
    let bytes = std::fs::read(&path).map_err(|source| BuildError::Copy {
        path: path.clone(),
        source,
    })?;
    Ok(Artifact {
        bytes,
        origin: path,
        stem,
    })
}

/// The plugin manifest in `dir`: the `NAME.toml` whose name matches the
/// component (`my_agent` ↔ `my-agent.toml`), else the only candidate there
/// is. Cargo's, rustup's and Python's own files are not manifests.
fn find_manifest(dir: &Path, stem: &str) -> Option<PathBuf> {
    const NOT_MANIFESTS: [&str; 6] = [
        "Cargo.toml",
        "rust-toolchain.toml",
        "rustfmt.toml",
        "clippy.toml",
        "pyproject.toml",
        "ruff.toml",
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
    let normalize = |s: &str| s.replace('-', "_");
    let wanted = normalize(stem);
    candidates
        .iter()
        .find(|c| {
            c.file_stem()
                .is_some_and(|s| normalize(&s.to_string_lossy()) == wanted)
        })
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
        let found = find_manifest(&dir, "my_agent");
        assert_eq!(found, Some(dir.join("my-agent.toml")));
        std::fs::remove_file(dir.join("other.toml")).expect("rm");
        let found = find_manifest(&dir, "renamed");
        assert_eq!(found, Some(dir.join("my-agent.toml")), "the only candidate");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
