//! `policy-kernel`: Envoy's ext_proc server in front of the policy agents.

use std::path::Path;
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
        return validate(&args.config, args.envoy_config.as_deref());
    }
    if let Err(error) = KernelConfig::load(&args.config) {
        eprintln!("policy-kernel: {error}");
        return ExitCode::from(EXIT_CONFIG);
    }
    extproc::cli::run_service("policy-kernel", kernel::run(args.config))
}

/// `--validate`: 0 valid, 78 invalid; with `--envoy-config`, 1 when the route names of the
/// two files disagree (each warning printed).
fn validate(config: &Path, envoy: Option<&Path>) -> ExitCode {
    match kernel::validate_file(config) {
        Ok(problems) if problems.is_empty() => {}
        Ok(problems) => {
            eprintln!(
                "policy-kernel: {} does not fit the compiled-in policies:",
                config.display()
            );
            for problem in problems {
                eprintln!("  {problem}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
        Err(error) => {
            eprintln!("policy-kernel: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    let Some(envoy) = envoy else {
        println!("{}: valid", config.display());
        return ExitCode::SUCCESS;
    };
    match kernel::lint_envoy_file(config, envoy) {
        Ok(warnings) if warnings.is_empty() => {
            println!(
                "{}: valid; its routes match {}",
                config.display(),
                envoy.display()
            );
            ExitCode::SUCCESS
        }
        Ok(warnings) => {
            for warning in warnings {
                eprintln!("policy-kernel: warning: {warning}");
            }
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("policy-kernel: {error}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
