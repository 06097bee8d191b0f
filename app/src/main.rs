//! The `weir` binary: everything is in the application library, see
//! [`weir_app::cli`].

fn main() -> std::process::ExitCode {
    weir_app::cli::main()
}
