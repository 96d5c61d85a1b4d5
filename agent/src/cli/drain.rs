//! The `egret run` / `egret waypoint` flag bounding the drain on shutdown
//! (default and its reason: [`crate::net::drain::DEFAULT_DRAIN_TIMEOUT`]),
//! and how both roots end their runtime.

use std::future::Future;
use std::time::Duration;

/// A blocking task still running when the root returns (a DNS lookup, a
/// kernel map walk) is left behind after this.
const BLOCKING_GRACE: Duration = Duration::from_secs(1);

/// How shutdown drains.
#[derive(Debug, Clone, clap::Args)]
pub struct DrainArgs {
    /// After SIGTERM or SIGINT: how long open connections may take to
    /// finish (no new ones are accepted; HTTP ones are told to close) before
    /// the rest are closed and the process exits. Keep it below the pod's
    /// terminationGracePeriodSeconds.
    #[arg(long, default_value = "5s", value_parser = super::limits::duration,
          env = "EGRET_DRAIN_TIMEOUT")]
    pub drain_timeout: Duration,
}

/// Runs `root` on `runtime`, then ends the runtime: every task still
/// running (a connection the drain gave up on) is dropped, which closes
/// its sockets.
pub fn block_on<F: Future>(runtime: tokio::runtime::Runtime, root: F) -> F::Output {
    let out = runtime.block_on(root);
    runtime.shutdown_timeout(BLOCKING_GRACE);
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::net::drain::DEFAULT_DRAIN_TIMEOUT;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        drain: DrainArgs,
    }

    #[test]
    fn the_drain_timeout_defaults_to_five_seconds_and_takes_durations() {
        let parse = |argv: &[&str]| Cmd::try_parse_from(argv).unwrap().drain.drain_timeout;
        assert_eq!(parse(&["egret"]), DEFAULT_DRAIN_TIMEOUT);
        assert_eq!(DEFAULT_DRAIN_TIMEOUT, Duration::from_secs(5));
        assert_eq!(
            parse(&["egret", "--drain-timeout", "1500ms"]),
            Duration::from_millis(1500)
        );
        assert_eq!(parse(&["egret", "--drain-timeout", "0"]), Duration::ZERO);
        assert!(Cmd::try_parse_from(["egret", "--drain-timeout", "soon"]).is_err());
    }
}
