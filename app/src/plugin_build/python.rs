//! Python plugins: componentize-py (from PyPI) turns the agent module, the
//! guest SDK `weir_guest` (built into weir, so a build needs nothing but
//! componentize-py) and a snapshot of the interpreter after importing them
//! into one component. Modules are imported at build time: an import error
//! is a build error here, not a trap in production.

use std::path::Path;
use std::process::Command;

use super::scratch::{Scratch, WORLD};
use super::{Artifact, BuildError, read_artifact, run_tool};

/// The Python guest SDK, as shipped in `guest-sdk/python`.
const SDK: &str = include_str!("../../../guest-sdk/python/weir_guest/__init__.py");

pub(super) fn build(dir: &Path, entry: &Path) -> Result<Artifact, BuildError> {
    let module = entry
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .ok_or_else(|| BuildError::NoSource(dir.to_owned()))?;
    let scratch = Scratch::new()?;
    scratch.write("sdk/weir_guest/__init__.py", SDK)?;
    let out = scratch.path("agent.wasm");
    let tool = std::env::var_os("WEIR_COMPONENTIZE_PY").unwrap_or_else(|| "componentize-py".into());
    run_tool(
        Command::new(tool)
            .arg("-d")
            .arg(scratch.wit())
            .args(["-w", WORLD, "componentize", "-p"])
            .arg(dir)
            .arg("-p")
            .arg(scratch.root().join("sdk"))
            .arg(&module)
            .arg("-o")
            .arg(&out)
            // The agent's Python traceback is the news, not a backtrace of
            // componentize-py's own Rust code burying it.
            .env("RUST_BACKTRACE", "0"),
        "componentize-py",
        "install it: pip install componentize-py==0.25.1 (or set WEIR_COMPONENTIZE_PY)",
    )?;
    read_artifact(out, None)
}
