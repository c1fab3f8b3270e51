//! The `herald` binary: the command line in `cli/`, the server in the
//! library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
