//! Runs iproute2 (`ip`) and friends with errors that say what failed.

use std::process::Command;

use super::error::WorkloadError;

/// Runs `program args…`, returning stdout; a non-zero exit becomes an error
/// carrying the command line and its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, WorkloadError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| WorkloadError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(WorkloadError::Command {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip args…`
pub fn ip(args: &[&str]) -> Result<String, WorkloadError> {
    run("ip", args)
}
