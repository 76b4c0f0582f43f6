//! The `skyplan` command-line tool: a thin layer over the library that parses flags, prints
//! tables or `--json`, and maps errors to exit codes.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
