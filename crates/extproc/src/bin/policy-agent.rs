//! `policy-agent`: runs the compiled-in policies behind a Unix socket.

use std::process::ExitCode;

use extproc::agent::{self, AgentConfig};
use extproc::cli::{self, CliError};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for a bad configuration (EX_CONFIG).
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let args = match cli::parse(
        "policy-agent",
        "/etc/policy-engine/agent-config.yaml",
        std::env::args().skip(1),
    ) {
        Ok(args) => args,
        Err(CliError::Help(usage)) => {
            println!("{usage}");
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::from(64);
        }
    };
    if args.envoy_config.is_some() {
        eprintln!("policy-agent: --envoy-config is a policy-kernel option");
        return ExitCode::from(64);
    }
    if let Err(error) = AgentConfig::load(&args.config) {
        eprintln!("policy-agent: {error}");
        return ExitCode::from(EXIT_CONFIG);
    }
    if args.validate {
        println!("{}: valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    extproc::cli::run_service("policy-agent", agent::run(&args.config))
}
