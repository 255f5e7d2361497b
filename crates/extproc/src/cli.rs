//! Command-line arguments shared by `policy-kernel` and `policy-agent`.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

/// Why the command line was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    /// `--help` was asked for; the payload is the usage text.
    #[error("{0}")]
    Help(String),
    /// An argument is not understood or a value is missing.
    #[error("{0}\n\n{1}")]
    Usage(String, String),
}

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Configuration file.
    pub config: PathBuf,
    /// Check the configuration and exit.
    pub validate: bool,
    /// Envoy's configuration, to check route names against (`policy-kernel` only; implies
    /// `validate`).
    pub envoy_config: Option<PathBuf>,
}

/// Parses `--config PATH` (or `--config=PATH`, `-c PATH`), `--validate` and
/// `--envoy-config PATH` (or `--envoy-config=PATH`, which implies `--validate`).
pub fn parse(
    program: &str,
    default_config: &str,
    args: impl IntoIterator<Item = String>,
) -> Result<Args, CliError> {
    let usage = format!(
        "usage: {program} [--config PATH] [--validate] [--envoy-config PATH]\n\n  --config PATH        configuration file (default {default_config})\n  --validate           check the configuration and exit (0 valid, 78 invalid)\n  --envoy-config PATH  policy-kernel: also check the route names against Envoy's\n                       configuration; implies --validate, exit 1 on warnings\n\nSIGHUP reloads the configuration."
    );
    let mut parsed = Args {
        config: PathBuf::from(default_config),
        validate: false,
        envoy_config: None,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
            _ => (arg.as_str(), None),
        };
        match flag {
            "--validate" if inline.is_none() => parsed.validate = true,
            "-h" | "--help" => return Err(CliError::Help(usage)),
            "-c" | "--config" | "--envoy-config" => {
                let Some(value) = inline.or_else(|| args.next()) else {
                    return Err(CliError::Usage(format!("{flag} needs a value"), usage));
                };
                if flag == "--envoy-config" {
                    parsed.envoy_config = Some(PathBuf::from(value));
                    parsed.validate = true;
                } else {
                    parsed.config = PathBuf::from(value);
                }
            }
            _ => return Err(CliError::Usage(format!("unknown argument `{arg}`"), usage)),
        }
    }
    Ok(parsed)
}

/// Runs a binary's service on a multi-threaded runtime until it returns; a failure is
/// logged and printed as `program: error`, and exits 1.
pub fn run_service<E: std::fmt::Display>(
    program: &str,
    service: impl Future<Output = Result<(), E>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{program}: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(service) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "{program} failed");
            eprintln!("{program}: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_both_config_forms_and_validate() {
        let parsed = parse("p", "/d.yaml", args(&["--config=/a.yaml", "--validate"])).unwrap();
        assert_eq!(parsed.config, PathBuf::from("/a.yaml"));
        assert!(parsed.validate);
        let parsed = parse("p", "/d.yaml", args(&["-c", "/b.yaml"])).unwrap();
        assert_eq!(parsed.config, PathBuf::from("/b.yaml"));
        assert_eq!(
            parse("p", "/d.yaml", args(&[])).unwrap().config,
            PathBuf::from("/d.yaml")
        );
    }

    #[test]
    fn envoy_config_implies_validate() {
        let parsed = parse("p", "/d", args(&["--envoy-config", "/e.yaml"])).unwrap();
        assert_eq!(parsed.envoy_config, Some(PathBuf::from("/e.yaml")));
        assert!(parsed.validate);
        let parsed = parse("p", "/d", args(&["--envoy-config=/f.yaml", "-c", "/k"])).unwrap();
        assert_eq!(parsed.envoy_config, Some(PathBuf::from("/f.yaml")));
        assert_eq!(parsed.config, PathBuf::from("/k"));
        assert_eq!(parse("p", "/d", args(&[])).unwrap().envoy_config, None);
    }

    #[test]
    fn rejects_unknown_and_incomplete_arguments() {
        assert!(matches!(
            parse("p", "/d", args(&["--nope"])),
            Err(CliError::Usage(..))
        ));
        assert!(matches!(
            parse("p", "/d", args(&["--config"])),
            Err(CliError::Usage(..))
        ));
        assert!(matches!(
            parse("p", "/d", args(&["--envoy-config"])),
            Err(CliError::Usage(..))
        ));
        assert!(matches!(
            parse("p", "/d", args(&["--validate=yes"])),
            Err(CliError::Usage(..))
        ));
        assert!(matches!(
            parse("p", "/d", args(&["--help"])),
            Err(CliError::Help(_))
        ));
    }
}
