//! `policy-kernel`: Envoy's ext_proc server in front of the policy agents.

use std::process::ExitCode;

use extproc::cli::{self, CliError};
use extproc::kernel::{self, KernelConfig};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for a bad configuration (EX_CONFIG).
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let args = match cli::parse(
        "policy-kernel",
        "/etc/policy-engine/kernel-config.yaml",
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
    if args.validate {
        return match kernel::validate_file(&args.config) {
            Ok(problems) if problems.is_empty() => {
                println!("{}: valid", args.config.display());
                ExitCode::SUCCESS
            }
            Ok(problems) => {
                eprintln!(
                    "policy-kernel: {} does not fit the compiled-in policies:",
                    args.config.display()
                );
                for problem in problems {
                    eprintln!("  {problem}");
                }
                ExitCode::from(EXIT_CONFIG)
            }
            Err(error) => {
                eprintln!("policy-kernel: {error}");
                ExitCode::from(EXIT_CONFIG)
            }
        };
    }
    if let Err(error) = KernelConfig::load(&args.config) {
        eprintln!("policy-kernel: {error}");
        return ExitCode::from(EXIT_CONFIG);
    }
    extproc::cli::run_service("policy-kernel", kernel::run(args.config))
}
