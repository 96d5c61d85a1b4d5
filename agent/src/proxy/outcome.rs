//! Why a connection or request did not go as the workload asked, in one
//! value: the response flag (the access log's `response_flags` and the
//! metrics' label) and the reason (the log's `error`), never one without the
//! other. Errors that know their flag say so ([`Flagged`]); a failure with
//! no flag is written as such ([`Failure::unflagged`]), not by leaving one
//! out.

use std::fmt::Display;
use std::net::SocketAddr;

use super::flags::{ResponseFlag, ResponseFlags};
use crate::hbone::HboneError;
use crate::net::ConnectError;

/// An error that knows the response flag it is reported with.
pub trait Flagged: Display {
    /// The flag; `None` where Envoy would set none (a reset between the
    /// peers once bytes flow is theirs, not the proxy's).
    fn flag(&self) -> Option<ResponseFlag>;
}

/// No upstream address accepted the connection: `UF`.
impl Flagged for ConnectError {
    fn flag(&self) -> Option<ResponseFlag> {
        Some(ResponseFlag::UpstreamConnectionFailure)
    }
}

/// No tunnel to the waypoint could be opened: `UF`, as for any upstream.
impl Flagged for HboneError {
    fn flag(&self) -> Option<ResponseFlag> {
        Some(ResponseFlag::UpstreamConnectionFailure)
    }
}

/// One reason a connection or request ended otherwise than asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    flag: Option<ResponseFlag>,
    reason: String,
}

impl Failure {
    /// `reason`, reported with `flag`.
    pub fn flagged(flag: ResponseFlag, reason: impl Display) -> Self {
        Failure {
            flag: Some(flag),
            reason: reason.to_string(),
        }
    }

    /// `reason`, with no flag to report.
    pub fn unflagged(reason: impl Display) -> Self {
        Failure {
            flag: None,
            reason: reason.to_string(),
        }
    }

    /// The failure an error stands for: its message and its flag.
    pub fn of(error: &(impl Flagged + ?Sized)) -> Self {
        Failure {
            flag: error.flag(),
            reason: error.to_string(),
        }
    }

    /// The response flag, if any.
    pub fn flag(&self) -> Option<ResponseFlag> {
        self.flag
    }

    /// The words for the operator.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// How a connection ended, beyond what its context knew at accept.
#[derive(Debug, Default)]
pub struct ConnectionOutcome {
    /// The last upstream endpoint the connection was carried to.
    pub upstream: Option<SocketAddr>,
    flags: ResponseFlags,
    error: Option<String>,
}

impl ConnectionOutcome {
    /// A connection refused before any upstream was tried.
    pub fn refused(failure: Failure) -> Self {
        let mut outcome = ConnectionOutcome::default();
        outcome.fail(failure);
        outcome
    }

    /// Records a failure: its flag joins the others, its reason is the
    /// error the log shows (the last one recorded).
    pub fn fail(&mut self, failure: Failure) {
        if let Some(flag) = failure.flag {
            self.flags.insert(flag);
        }
        self.error = Some(failure.reason);
    }

    /// Every flag recorded.
    pub fn flags(&self) -> ResponseFlags {
        self.flags
    }

    /// The last reason recorded.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("no route to {0}")]
    struct NoRoute(&'static str);

    impl Flagged for NoRoute {
        fn flag(&self) -> Option<ResponseFlag> {
            Some(ResponseFlag::NoRoute)
        }
    }

    #[test]
    fn a_failure_carries_its_flag_and_reason_into_the_outcome() {
        let failure = Failure::of(&NoRoute("a.test"));
        assert_eq!(failure.flag(), Some(ResponseFlag::NoRoute));
        assert_eq!(failure.reason(), "no route to a.test");
        let mut outcome = ConnectionOutcome::refused(failure);
        outcome.fail(Failure::unflagged("then the peer reset"));
        assert_eq!(outcome.flags().to_string(), "NR");
        assert_eq!(outcome.error(), Some("then the peer reset"));
        let denied = ConnectionOutcome::refused(Failure::flagged(ResponseFlag::RbacDenied, "no"));
        assert_eq!(denied.flags().to_string(), "RBAC");
    }
}
