//! The command line: keepalived's options where they mean something here, plus `status`.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::{
    config,
    control::{self, Reply, Request},
};

/// Prints a line without panicking when the reader went away (`vrrp-agent -t ... | head`):
/// `println!` and `eprintln!` panic on a closed pipe.
macro_rules! say {
    ($stream:ident, $($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::$stream(), $($arg)*);
    }};
}

/// keepalived's default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/keepalived/keepalived.conf";

/// Exit code when the configuration cannot run (keepalived's).
pub const EXIT_CONFIG: u8 = 3;
/// `-t` exit code when the configuration has warnings but would run (keepalived's).
pub const EXIT_CONFIG_WARNINGS: u8 = 4;
/// `-t` exit code when scripts are configured without `enable_script_security`.
pub const EXIT_SCRIPT_SECURITY: u8 = 5;

/// keepalived-compatible VRRP daemon with an eBPF fast path.
#[derive(Debug, Parser)]
#[command(name = "vrrp-agent", version, about)]
pub struct Cli {
    /// Configuration file (keepalived.conf syntax).
    #[arg(short = 'f', long = "use-file", value_name = "FILE", default_value = DEFAULT_CONFIG, global = true)]
    pub config: PathBuf,
    /// Check the configuration and exit: 0 if it is good, 4 if it would run with warnings, 3
    /// with located errors if it cannot run (keepalived's codes).
    #[arg(short = 't', long = "config-test")]
    pub config_test: bool,
    /// The config id that `@id` / `@^id` lines are matched against and `${_INSTANCE}` names
    /// (default: the host name up to its first dot), as keepalived's `-i`.
    #[arg(short = 'i', long = "config-id", value_name = "ID")]
    pub config_id: Option<String>,
    /// Stay in the foreground (the only mode; accepted for keepalived compatibility).
    #[arg(short = 'n', long = "dont-fork")]
    pub dont_fork: bool,
    /// Log to the console (the only destination; accepted for keepalived compatibility).
    #[arg(short = 'l', long = "log-console")]
    pub log_console: bool,
    /// Detailed (debug) logging.
    #[arg(short = 'D', long = "log-detail")]
    pub log_detail: bool,
    /// Force how the receive program attaches. Default: native XDP, falling back to generic
    /// where the driver refuses and to TC ingress where XDP cannot attach; generic on veth,
    /// where native XDP_TX replies reach the peer only if the peer runs an XDP program too.
    #[arg(long, value_name = "MODE")]
    pub xdp_mode: Option<crate::dataplane::XdpMode>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9650), at /metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Where SIGUSR1 (DATA), SIGUSR2 (STATS) and the JSON signal write their dumps
    /// (vrrp-agent.data, .stats, .json), as keepalived writes /tmp/keepalived.*.
    #[arg(long, value_name = "DIR", default_value = "/tmp")]
    pub dump_dir: PathBuf,
    /// Print the signal number for STOP, RELOAD, DATA, STATS or JSON and exit, as
    /// keepalived's `--signum` (`kill -s $(vrrp-agent --signum=DATA) PID`).
    #[arg(long, value_name = "SIGFUNC")]
    pub signum: Option<String>,
    /// Control socket of the daemon.
    #[arg(long, value_name = "PATH", default_value = control::DEFAULT_SOCKET, global = true)]
    pub control_socket: PathBuf,
    /// A query to a running daemon instead of running one.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Queries to a running daemon.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print each instance's state, master, addresses and the dataplane counters.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make the daemon read its configuration again (as SIGHUP does): unchanged instances
    /// keep running untouched; a configuration with errors changes nothing.
    Reload,
    /// Act on one instance: `fault` holds it in FAULT (a master hands over at once),
    /// `resume` releases it, `send-garp` makes a master announce its addresses again.
    Instance {
        /// The vrrp_instance name.
        name: String,
        /// What to do.
        action: control::InstanceAction,
    },
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = if cli.log_detail {
        "info,vrrp_agent=debug"
    } else {
        "info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            say!(stderr, "vrrp-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(name) = &cli.signum {
        return match crate::daemon::dumps::signum(name) {
            Some(n) => {
                say!(stdout, "{n}");
                ExitCode::SUCCESS
            }
            None => {
                say!(
                    stderr,
                    "vrrp-agent: unknown sigfunc {name} (STOP, RELOAD, DATA, STATS, JSON)"
                );
                ExitCode::FAILURE
            }
        };
    }
    match cli.command {
        Some(Command::Status { json }) => runtime.block_on(status(&cli.control_socket, json)),
        Some(Command::Reload) => runtime.block_on(command(&cli.control_socket, &Request::Reload)),
        Some(Command::Instance { name, action }) => runtime.block_on(command(
            &cli.control_socket,
            &Request::Instance { name, action },
        )),
        None => {
            let mut options = config::Options::default();
            if let Some(id) = &cli.config_id {
                options.config_id = id.clone();
            }
            let config = match config::load_with(&cli.config, &options) {
                Ok(c) => c,
                Err(diagnostics) => {
                    say!(stderr, "{diagnostics}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            for w in &config.warnings {
                say!(
                    stderr,
                    "{}",
                    w.to_string().replacen(": error: ", ": warning: ", 1)
                );
            }
            if config.unsafe_scripts {
                say!(
                    stderr,
                    "{}: warning: scripts are configured but enable_script_security is not: they run as {} without checks that only root can change them",
                    cli.config.display(),
                    config
                        .scripts
                        .script_user
                        .as_ref()
                        .map_or("root", |(user, _)| user.as_str())
                );
            }
            if cli.config_test {
                if config.unsafe_scripts {
                    return ExitCode::from(EXIT_SCRIPT_SECURITY);
                }
                if config.warnings.is_empty() {
                    say!(stderr, "{}: configuration is valid", cli.config.display());
                    return ExitCode::SUCCESS;
                }
                say!(
                    stderr,
                    "{}: configuration would run, with the warnings above",
                    cli.config.display()
                );
                return ExitCode::from(EXIT_CONFIG_WARNINGS);
            }
            let options = crate::daemon::Options {
                control_socket: cli.control_socket,
                xdp_mode: cli.xdp_mode,
                metrics_listen: cli.metrics_listen,
                config_path: cli.config.clone(),
                config_options: options,
                dump_dir: cli.dump_dir,
            };
            match runtime.block_on(crate::daemon::run(config, options)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    say!(stderr, "vrrp-agent: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `vrrp-agent reload` and `vrrp-agent instance ...`: the daemon carries the request out and
/// says what it did, or why not.
async fn command(socket: &std::path::Path, request: &Request) -> ExitCode {
    match control::request(socket, request).await {
        Ok(Reply::Done { message }) => {
            say!(stdout, "{message}");
            ExitCode::SUCCESS
        }
        Ok(Reply::Error { error }) => {
            say!(stderr, "vrrp-agent: {error}");
            ExitCode::FAILURE
        }
        Ok(Reply::Status(_)) => {
            say!(stderr, "vrrp-agent: unexpected status reply");
            ExitCode::FAILURE
        }
        Err(e) => {
            say!(stderr, "vrrp-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn status(socket: &std::path::Path, json: bool) -> ExitCode {
    let reply = match control::request(socket, &Request::Status).await {
        Ok(r) => r,
        Err(e) => {
            say!(stderr, "vrrp-agent: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match reply {
        Reply::Error { error } => {
            say!(
                stderr,
                "vrrp-agent: the daemon refused the request: {error}"
            );
            ExitCode::FAILURE
        }
        Reply::Done { message } => {
            say!(stderr, "vrrp-agent: unexpected reply to status: {message}");
            ExitCode::FAILURE
        }
        Reply::Status(status) if json => match serde_json::to_string_pretty(&status) {
            Ok(text) => {
                say!(stdout, "{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                say!(stderr, "vrrp-agent: {e}");
                ExitCode::FAILURE
            }
        },
        Reply::Status(status) => {
            // Written in one go, ignoring a closed pipe (`vrrp-agent status | head`).
            let _ = std::io::Write::write_all(&mut std::io::stdout(), status.render().as_bytes());
            ExitCode::SUCCESS
        }
    }
}
