//! The `weir` binary: everything is in the library, see [`weir_host::cli`].

fn main() -> std::process::ExitCode {
    weir_host::cli::main()
}
