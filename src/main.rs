//! The `rum-bridge` command line: parses arguments, loads the configuration, sets up the
//! daemon's own logging and runs it. Everything else lives in the `rum_bridge` library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use rum_bridge::config::{Config, CONFIG_PATH_VAR};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Real User Monitoring to APM bridge: browser beacons in, correlated OTLP out.
#[derive(Debug, Parser)]
#[command(name = "rum-bridge", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Options of `run`, which is what happens when no subcommand is given.
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon (the default).
    Run(RunArgs),
    /// Validate a config file (with the OpenTelemetry environment variables applied) and print
    /// the effective configuration as TOML, header values and URL credentials masked. Exit
    /// status 2 when invalid.
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Gate a build on performance budgets: percentiles of the web-vital histograms, read from
    /// the bridge's OTLP-JSON output or from Prometheus, against `[[budget]]` limits. Exit
    /// status 0 when every budget holds, 1 when one is exceeded or regressed, 2 on a usage or
    /// data error (docs/budgets.md).
    Budget(BudgetArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("data").required(true).args(["from", "prometheus"]))]
struct BudgetArgs {
    /// The budget file (`[[budget]]` tables).
    #[arg(long, value_name = "FILE")]
    budgets: PathBuf,
    /// The bridge's OTLP-JSON metrics file (`rum-bridge-data/metrics.jsonl`).
    #[arg(long, value_name = "FILE")]
    from: Option<PathBuf>,
    /// A Prometheus server that scraped the bridge's `/metrics/rum` (`http://host:9090`).
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
    /// Only this app (`rum.app.name`).
    #[arg(long, value_name = "NAME")]
    app: Option<String>,
    /// The version under test (`rum.app.version`); all versions together when absent.
    #[arg(long, value_name = "V")]
    version: Option<String>,
    /// The version `max_regression` compares against.
    #[arg(long, value_name = "B")]
    baseline: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: BudgetFormat,
    /// Also write a JUnit XML report, one test case per budget.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BudgetFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// TOML config file; without one, defaults and OTEL_* environment variables apply.
    #[arg(long, value_name = "FILE", env = CONFIG_PATH_VAR)]
    config: Option<PathBuf>,
    /// Public ingest listener, overriding `server.listen`.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// Admin listener (health, readiness, metrics), overriding `server.admin_listen`.
    #[arg(long, value_name = "ADDR:PORT")]
    admin_listen: Option<SocketAddr>,
}

/// The process environment, as the config loader reads it.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run(cli.run)) {
        Command::Run(args) => match run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rum-bridge: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig { file } => check_config(&file),
        Command::Budget(args) => match budget(&args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("rum-bridge budget: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

/// Runs the budget gate; `Ok(true)` when every budget holds.
fn budget(args: &BudgetArgs) -> anyhow::Result<bool> {
    use rum_bridge::budget::{self, FileSource, PrometheusSource, Source, Target, Verdict};
    let budgets = budget::load_budgets(&args.budgets)?;
    let source = match (&args.from, &args.prometheus) {
        (Some(path), _) => Source::File(FileSource::load(path)?),
        (None, Some(url)) => Source::Prometheus(PrometheusSource::new(url)?),
        (None, None) => anyhow::bail!("--from FILE or --prometheus URL is required"),
    };
    let target = Target {
        app: args.app.clone(),
        version: args.version.clone(),
        baseline: args.baseline.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?;
    let outcomes = runtime.block_on(budget::evaluate(&budgets, &source, &target))?;
    match args.format {
        BudgetFormat::Text => print!("{}", budget::render_text(&outcomes)),
        BudgetFormat::Json => println!("{}", budget::render_json(&outcomes)),
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, budget::junit(&outcomes))
            .with_context(|| format!("writing the JUnit report {}", path.display()))?;
    }
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.failure_message())
        .collect();
    for message in &failed {
        eprintln!("{message}");
    }
    Ok(outcomes.iter().all(|o| o.verdict == Verdict::Pass))
}

fn check_config(file: &Path) -> ExitCode {
    let config = match Config::load(Some(file), &process_env) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    for warning in &config.warnings {
        eprintln!("warning: {warning}");
    }
    if config.development_mode() {
        eprintln!("warning: {DEVELOPMENT_MODE_WARNING}");
    }
    match config.to_redacted_toml() {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot print the configuration: {e}");
            ExitCode::FAILURE
        }
    }
}

const DEVELOPMENT_MODE_WARNING: &str =
    "no [[apps]] configured: development mode, ANY app key is accepted from ANY origin";

fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut config = Config::load_unvalidated(args.config.as_deref(), &process_env)?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    if let Some(admin_listen) = args.admin_listen {
        config.server.admin_listen = admin_listen;
    }
    config.validate()?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rum-bridge")
        .build()
        .context("starting the Tokio runtime")?;
    runtime.block_on(async {
        let telemetry = rum_bridge::telemetry::init(&config)?;
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        if config.development_mode() {
            tracing::warn!("{DEVELOPMENT_MODE_WARNING}");
        }
        let result = rum_bridge::run(config).await;
        if let Err(e) = &result {
            tracing::error!("{e:#}");
        }
        // Flush self traces while the runtime still drives their gRPC channel.
        telemetry.shutdown();
        Ok(result?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_is_the_default_and_takes_overrides() {
        let cli = Cli::try_parse_from([
            "rum-bridge",
            "--config",
            "a.toml",
            "--listen",
            "0.0.0.0:8080",
            "--admin-listen",
            "127.0.0.1:9090",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.config.as_deref(), Some(Path::new("a.toml")));
        assert_eq!(cli.run.listen, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(
            cli.run.admin_listen,
            Some("127.0.0.1:9090".parse().unwrap())
        );

        let cli = Cli::try_parse_from(["rum-bridge", "run", "--listen", "[::]:4380"]).unwrap();
        let Some(Command::Run(args)) = cli.command else {
            panic!("expected run")
        };
        assert_eq!(args.listen, Some("[::]:4380".parse().unwrap()));
    }

    #[test]
    fn check_config_takes_a_file() {
        let cli = Cli::try_parse_from(["rum-bridge", "check-config", "x.toml"]).unwrap();
        let Some(Command::CheckConfig { file }) = cli.command else {
            panic!("expected check-config")
        };
        assert_eq!(file, Path::new("x.toml"));
        assert!(Cli::try_parse_from(["rum-bridge", "check-config"]).is_err());
        assert!(Cli::try_parse_from(["rum-bridge", "--listen", "nope"]).is_err());
    }
}
