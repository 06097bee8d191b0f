//! What weir's build scripts share: building wasm32-wasip2 components of
//! this workspace with a nested `cargo build`, once, when their sources
//! change — the code-mode runtime the `weir` binary embeds, and the
//! plugins the integration tests run.
//!
//! They go into a target directory of their own (`target/wasm`): sharing
//! the outer one could deadlock on its lock.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Variables of the outer build that must not leak into a build for
/// another target (host RUSTFLAGS, clippy's wrapper, the jobserver).
const SCRUB: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
];

/// The workspace root, from a member's `CARGO_MANIFEST_DIR`.
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    manifest
        .parent()
        .expect("a member crate sits in the workspace root")
        .to_owned()
}

/// Builds `packages` (release, wasm32-wasip2) and returns the directory
/// their `.wasm` files are in. `inputs` (relative to the root) are what a
/// rebuild follows. Panics, saying how to see why, when the build fails.
pub fn build_components(root: &Path, packages: &[&str], inputs: &[&str]) -> PathBuf {
    for input in inputs.iter().chain(["wit", "Cargo.lock"].iter()) {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("wasm");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    ensure_wasm_target(root);

    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir)
        .args(packages.iter().flat_map(|p| ["-p", p]))
        // Cargo reads a build script's stdout for directives; keep it clean.
        .stdout(Stdio::from(std::io::stderr()));
    for var in SCRUB {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build the wasm components");
    let listed: Vec<String> = packages.iter().map(|p| format!("-p {p}")).collect();
    assert!(
        status.success(),
        "building {packages:?} failed ({status}); run \
         `cargo build --release --target wasm32-wasip2 {}` to see why",
        listed.join(" ")
    );
    target_dir.join("wasm32-wasip2").join("release")
}

/// A fresh machine's toolchain lacks the `wasm32-wasip2` standard library
/// even though `rust-toolchain.toml` lists it (rustup installs listed
/// targets only on `rustup toolchain install`). Install it here, so no one
/// has to do it by hand.
fn ensure_wasm_target(root: &Path) {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if sysroot.is_some_and(|s| s.join("lib/rustlib/wasm32-wasip2").is_dir()) {
        return;
    }
    let status = Command::new("rustup")
        .current_dir(root)
        .args(["toolchain", "install"])
        .stdout(Stdio::from(std::io::stderr()))
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        println!(
            "cargo:warning=could not install the wasm32-wasip2 target with rustup ({status:?}); \
             the component build will say what is missing"
        );
    }
}
