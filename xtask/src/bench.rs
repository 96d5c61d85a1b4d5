//! `cargo xtask bench`: the benchmarks.

/// Runs the benchmarks.
pub fn run() -> anyhow::Result<()> {
    anyhow::bail!("`cargo xtask bench` is not built yet")
}
