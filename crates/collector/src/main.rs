//! `policyhub-collector`: the node agent. See the `collector` library.

use std::process::ExitCode;

fn main() -> ExitCode {
    collector::cli::main()
}
