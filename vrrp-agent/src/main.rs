//! The `vrrp-agent` command.

fn main() -> std::process::ExitCode {
    vrrp_agent::cli::main()
}
