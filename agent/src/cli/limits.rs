//! The `egret run` / `egret waypoint` flags bounding what workloads may send
//! and hold open (defaults and their reasons: [`crate::proxy::limits`]).

use std::time::Duration;

use crate::proxy::limits::{self, Limits};

/// Limits on downstream requests and connections.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Largest request line plus headers of one request, in KiB (431 past it).
    #[arg(long, default_value_t = (limits::DEFAULT_MAX_REQUEST_HEADERS_BYTES / 1024) as u32,
          value_parser = clap::value_parser!(u32).range(1..=8192),
          env = "EGRET_MAX_REQUEST_HEADERS_KB")]
    pub max_request_headers_kb: u32,
    /// Most header fields in one request (431 past it).
    #[arg(long, default_value_t = limits::DEFAULT_MAX_REQUEST_HEADERS,
          value_parser = clap::builder::TypedValueParser::map(
              clap::value_parser!(u16).range(1..), usize::from),
          env = "EGRET_MAX_REQUEST_HEADERS")]
    pub max_request_headers: usize,
    /// Time from a request's first byte to the end of its headers (408
    /// after it; `0` turns it off).
    #[arg(long, default_value = "10s", value_parser = duration,
          env = "EGRET_REQUEST_HEADERS_TIMEOUT")]
    pub request_headers_timeout: Duration,
    /// A workload connection with no request in flight is closed after
    /// this (`0` turns it off).
    #[arg(long, default_value = "1h", value_parser = duration, env = "EGRET_IDLE_TIMEOUT")]
    pub idle_timeout: Duration,
    /// A request with nothing moving is ended after this (408 `SI` before
    /// its response headers, a reset after them; `0` turns it off).
    #[arg(long, default_value = "5m", value_parser = duration,
          env = "EGRET_STREAM_IDLE_TIMEOUT")]
    pub stream_idle_timeout: Duration,
    /// A pooled upstream connection no workload has used for this long is
    /// closed (`0`: kept until the pool's bounds evict it).
    #[arg(long, default_value = "1h", value_parser = duration,
          env = "EGRET_UPSTREAM_IDLE_TIMEOUT")]
    pub upstream_idle_timeout: Duration,
    /// HTTP/2 streams one workload connection may have open.
    #[arg(long, default_value_t = limits::DEFAULT_MAX_CONCURRENT_STREAMS,
          value_parser = clap::value_parser!(u32).range(1..),
          env = "EGRET_MAX_CONCURRENT_STREAMS")]
    pub max_concurrent_streams: u32,
    /// Connections one workload may hold open through the waypoint; more
    /// are closed at once (`OM`).
    #[arg(long, default_value_t = limits::DEFAULT_MAX_CONNECTIONS_PER_WORKLOAD,
          env = "EGRET_MAX_CONNECTIONS_PER_WORKLOAD")]
    pub max_connections_per_workload: usize,
    /// Connections all workloads together may hold open.
    #[arg(long, default_value_t = limits::DEFAULT_MAX_CONNECTIONS,
          env = "EGRET_MAX_CONNECTIONS")]
    pub max_connections: usize,
}

impl From<LimitArgs> for Limits {
    fn from(a: LimitArgs) -> Self {
        Limits {
            max_request_headers_bytes: a.max_request_headers_kb as usize * 1024,
            max_request_headers: a.max_request_headers,
            request_headers_timeout: a.request_headers_timeout,
            idle_timeout: a.idle_timeout,
            stream_idle_timeout: a.stream_idle_timeout,
            upstream_idle_timeout: a.upstream_idle_timeout,
            max_concurrent_streams: a.max_concurrent_streams,
            max_connections_per_workload: a.max_connections_per_workload,
            max_connections: a.max_connections,
        }
    }
}

/// A Go-style duration (`10s`, `500ms`, `1h`), or `0`.
pub(super) fn duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    crate::route::duration::parse(text)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        limits: LimitArgs,
    }

    fn parse(args: &[&str]) -> Limits {
        let mut argv = vec!["cmd"];
        argv.extend_from_slice(args);
        Cmd::try_parse_from(argv).unwrap().limits.into()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        assert_eq!(parse(&[]), Limits::default());
    }

    #[test]
    fn every_limit_has_a_flag() {
        let l = parse(&[
            "--max-request-headers-kb=8",
            "--max-request-headers=20",
            "--request-headers-timeout=1500ms",
            "--idle-timeout=0",
            "--stream-idle-timeout=2m",
            "--upstream-idle-timeout=90s",
            "--max-concurrent-streams=7",
            "--max-connections-per-workload=3",
            "--max-connections=9",
        ]);
        assert_eq!(
            l,
            Limits {
                max_request_headers_bytes: 8192,
                max_request_headers: 20,
                request_headers_timeout: Duration::from_millis(1500),
                idle_timeout: Duration::ZERO,
                stream_idle_timeout: Duration::from_secs(120),
                upstream_idle_timeout: Duration::from_secs(90),
                max_concurrent_streams: 7,
                max_connections_per_workload: 3,
                max_connections: 9,
            }
        );
        assert!(Cmd::try_parse_from(["cmd", "--idle-timeout=forever"]).is_err());
    }
}
