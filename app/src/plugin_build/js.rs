//! JavaScript and TypeScript plugins: the JS guest SDK's `build.mjs` (run
//! by node) type-checks TypeScript, bundles the agent with the SDK, and
//! has componentize-js (SpiderMonkey) or componentize-qjs (QuickJS), both
//! from npm, make the component — never with wasi:http: the sandbox gives
//! no network, so the component must not ask for one.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::scratch::{Scratch, WORLD};
use super::{Artifact, BuildError, JsEngine, read_artifact, run_tool};

pub(super) fn build(dir: &Path, entry: &Path, engine: JsEngine) -> Result<Artifact, BuildError> {
    let sdk = find_sdk(dir)?;
    let scratch = Scratch::new()?;
    let out = scratch.path("agent.wasm");
    let node = std::env::var_os("WEIR_NODE").unwrap_or_else(|| "node".into());
    run_tool(
        Command::new(node)
            .arg(sdk.join("build.mjs"))
            .arg(entry)
            .arg("--wit")
            .arg(scratch.wit())
            .args(["--world", WORLD, "--engine", engine.name(), "--out"])
            .arg(&out),
        "node",
        "install Node.js 20 or later (or set WEIR_NODE)",
    )?;
    read_artifact(out, None)
}

/// Where the JS guest SDK is: `WEIR_JS_SDK` if set (it must hold
/// `build.mjs`), else the first `guest-sdk/js` or `node_modules/weir-guest`
/// holding one above `dir` or above this weir binary (a weir checkout).
/// `weir new` asks it too, for the types its tsconfig points at.
pub(crate) fn locate_sdk(dir: &Path) -> Result<PathBuf, BuildError> {
    if let Some(explicit) = std::env::var_os("WEIR_JS_SDK") {
        let explicit = PathBuf::from(explicit);
        if !explicit.join("build.mjs").is_file() {
            return Err(BuildError::NoJsSdk(format!(
                "WEIR_JS_SDK is {}, which has no build.mjs\n→ point it at the guest-sdk/js \
                 directory of a weir checkout",
                explicit.display()
            )));
        }
        return Ok(explicit);
    }
    let starts = [
        std::fs::canonicalize(dir).ok(),
        std::env::current_exe().ok(),
    ];
    starts
        .iter()
        .flatten()
        .flat_map(|from| from.ancestors())
        .flat_map(|a| [a.join("guest-sdk/js"), a.join("node_modules/weir-guest")])
        .find(|c| c.join("build.mjs").is_file())
        .ok_or_else(|| {
            BuildError::NoJsSdk(
                "weir's JS guest SDK (guest-sdk/js of a weir checkout) cannot be found above \
                 the plugin or the weir binary\n→ set WEIR_JS_SDK to its directory"
                    .into(),
            )
        })
}

/// The JS guest SDK, with its build tools installed.
fn find_sdk(dir: &Path) -> Result<PathBuf, BuildError> {
    let sdk = locate_sdk(dir)?;
    if !sdk
        .join("node_modules/@bytecodealliance/componentize-js")
        .is_dir()
    {
        return Err(BuildError::NoJsSdk(format!(
            "the JS guest SDK at {} has no build tools installed\n→ run `npm ci` there",
            sdk.display()
        )));
    }
    Ok(sdk)
}
