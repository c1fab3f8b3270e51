//! The `herald` command line: run the push server, or stop / query a
//! running one. `flags` is the table, `args` reads it into a `Cli`; the
//! commands are `serve` (start, and a worker under `--workers`), `daemon`
//! (start -d, stop, reload, restart) and
//! `query` (status, connections, rendered by `status`).

mod args;
mod daemon;
mod flags;
mod query;
mod secrets;
mod serve;
mod status;

use std::process::ExitCode;

/// Reads the command line and the environment, and does what they ask:
/// exit code 2 for a usage error, 1 for a failure.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env = |k: &str| std::env::var(k).ok();
    let cli = match args::with_env(&args, env).and_then(|a| args::parse_args(&a)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("herald: {}", args::blame_env(e, &args, env));
            return ExitCode::from(2);
        }
    };
    let res = match cli.command.as_str() {
        "help" => {
            print!("{}", flags::help());
            Ok(())
        }
        "version" => {
            println!("herald {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        "stop" => daemon::stop(&cli),
        "reload" => daemon::reload(&cli),
        "restart" => daemon::restart(&cli),
        "status" => query::status(&cli),
        "connections" => query::connections(&cli),
        _ => serve::run(cli),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("herald: {e}");
            ExitCode::FAILURE
        }
    }
}
