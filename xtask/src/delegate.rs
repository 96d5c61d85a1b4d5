//! Tasks that live in their own crate: `cargo run` of that crate's binary,
//! so the agent and the test harness are compiled only for the tasks that
//! use them.

use std::process::ExitCode;

use xtask::prereq::cargo_status;

/// Runs the binary `package` (named as its package) with `args` and exits
/// as it did; it prints its own errors.
pub fn run(package: &str, args: &[String]) -> anyhow::Result<ExitCode> {
    let mut cargo_args = vec![
        "run",
        "--quiet",
        "--package",
        package,
        "--bin",
        package,
        "--",
    ];
    cargo_args.extend(args.iter().map(String::as_str));
    let status = cargo_status(&cargo_args, &[])?;
    // A signal has no exit code: a failure all the same.
    Ok(status
        .code()
        .map_or(ExitCode::FAILURE, |code| ExitCode::from(code as u8)))
}
