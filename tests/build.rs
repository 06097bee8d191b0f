//! Builds the wasm plugins the integration tests run — once, when their
//! sources change, not once per test (see `weir-build-support`). Tests
//! find them through `WEIR_TEST_PLUGINS`.

const PLUGINS: &[&str] = &["hello", "fanout", "testbed"];

fn main() {
    let root = weir_build_support::workspace_root();
    let out = weir_build_support::build_components(
        &root,
        PLUGINS,
        &["guest-sdk", "plugins", "tests/plugins"],
    );
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
