//! Builds the wasm plugins the integration tests run — once, when their
//! sources change, not once per test.
//!
//! They are built by a nested `cargo build --target wasm32-wasip2` into a
//! target directory of their own (`target/wasm`): sharing the outer one
//! could deadlock on its lock. Tests find them through `WEIR_TEST_PLUGINS`.

use std::path::PathBuf;
use std::process::{Command, Stdio};

const PLUGINS: &[&str] = &["hello", "fanout", "testbed"];

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

fn main() {
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let root = manifest
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_owned();
    for input in ["wit", "guest-sdk", "plugins", "tests/plugins", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(input).display());
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("wasm");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    ensure_wasm_target(&root);

    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target_dir)
        .args(PLUGINS.iter().flat_map(|p| ["-p", p]))
        // Cargo reads a build script's stdout for directives; keep it clean.
        .stdout(Stdio::from(std::io::stderr()));
    for var in SCRUB {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build the test plugins");
    assert!(
        status.success(),
        "building the test plugins failed ({status}); run \
         `cargo build --release --target wasm32-wasip2 -p hello -p fanout -p testbed` to see why"
    );
    let out = target_dir.join("wasm32-wasip2").join("release");
    // Each plugin's manifest goes beside its component, as in a plugins
    // directory.
    for plugin in PLUGINS {
        for crate_dir in ["plugins", "tests/plugins"] {
            let manifest = root
                .join(crate_dir)
                .join(plugin)
                .join(format!("{plugin}.toml"));
            if manifest.is_file() {
                std::fs::copy(&manifest, out.join(format!("{plugin}.toml")))
                    .expect("copy a plugin manifest beside its component");
            }
        }
    }
    println!("cargo:rustc-env=WEIR_TEST_PLUGINS={}", out.display());
}

/// A fresh machine's toolchain lacks the `wasm32-wasip2` standard library
/// even though `rust-toolchain.toml` lists it (rustup installs listed
/// targets only on `rustup toolchain install`). Install it here, so no one
/// has to do it by hand.
fn ensure_wasm_target(root: &std::path::Path) {
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
             the plugin build will say what is missing"
        );
    }
}
