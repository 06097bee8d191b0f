//! Builds code mode's runtime (`code-runtime/`, a wasm32-wasip2
//! component) for the `weir` binary to embed: a user installs nothing
//! beside weir to run scripts.

fn main() {
    let root = weir_build_support::workspace_root();
    let out =
        weir_build_support::build_components(&root, &["weir-code-runtime"], &["code-runtime"]);
    println!(
        "cargo:rustc-env=WEIR_CODE_RUNTIME={}",
        out.join("weir_code_runtime.wasm").display()
    );
}
