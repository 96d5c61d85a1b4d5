//! Response flags: the one vocabulary for "why" a request or connection did
//! not go as the workload asked. The same codes appear in access log lines and
//! (later) metric labels, using Envoy's spelling where Envoy has one.

use std::fmt;

/// One reason a request or connection ended differently than asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResponseFlag {
    /// `NR`: the destination is not a mesh service, or not one of its
    /// declared ports (later also: no VirtualService route matched).
    NoRoute,
    /// `WM`: the service is bound to a waypoint that does not exist.
    WaypointMissing,
    /// `UH`: no upstream address to try (resolution failed or gave nothing).
    NoHealthyUpstream,
    /// `UF`: no upstream address accepted the connection.
    UpstreamConnectionFailure,
    /// `UC`: the upstream connection closed before the response completed.
    UpstreamConnectionTermination,
    /// `DPE`: the workload sent a request egret refuses to read: malformed
    /// HTTP, headers over the limits, or a path or method Istio rejects.
    DownstreamProtocolError,
    /// `RBAC`: an AuthorizationPolicy denied the request or connection.
    RbacDenied,
    /// `FI`: a VirtualService fault aborted the request.
    FaultInjected,
    /// `UT`: the route's timeout passed before the upstream answered.
    UpstreamRequestTimeout,
    /// `SI`: the request saw no activity for the stream idle timeout.
    StreamIdleTimeout,
    /// `OM`: refused because the workload or the agent holds as many
    /// connections as it may (Envoy's overload-manager flag).
    OverloadManager,
}

impl ResponseFlag {
    /// Every flag, in the order they are printed.
    pub const ALL: [ResponseFlag; 11] = [
        ResponseFlag::NoRoute,
        ResponseFlag::WaypointMissing,
        ResponseFlag::NoHealthyUpstream,
        ResponseFlag::UpstreamConnectionFailure,
        ResponseFlag::UpstreamConnectionTermination,
        ResponseFlag::DownstreamProtocolError,
        ResponseFlag::RbacDenied,
        ResponseFlag::FaultInjected,
        ResponseFlag::UpstreamRequestTimeout,
        ResponseFlag::StreamIdleTimeout,
        ResponseFlag::OverloadManager,
    ];

    /// The short code, as Envoy and Istio spell it.
    pub const fn code(self) -> &'static str {
        match self {
            ResponseFlag::NoRoute => "NR",
            ResponseFlag::WaypointMissing => "WM",
            ResponseFlag::NoHealthyUpstream => "UH",
            ResponseFlag::UpstreamConnectionFailure => "UF",
            ResponseFlag::UpstreamConnectionTermination => "UC",
            ResponseFlag::DownstreamProtocolError => "DPE",
            ResponseFlag::RbacDenied => "RBAC",
            ResponseFlag::FaultInjected => "FI",
            ResponseFlag::UpstreamRequestTimeout => "UT",
            ResponseFlag::StreamIdleTimeout => "SI",
            ResponseFlag::OverloadManager => "OM",
        }
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for ResponseFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A set of [`ResponseFlag`]s; prints as Envoy does (`UF,UC`), or `-` when empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResponseFlags(u16);

impl ResponseFlags {
    /// Adds a flag.
    pub fn insert(&mut self, flag: ResponseFlag) {
        self.0 |= flag.bit();
    }

    /// Whether `flag` is set.
    pub fn contains(self, flag: ResponseFlag) -> bool {
        self.0 & flag.bit() != 0
    }

    /// Whether no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The flags set, in printing order.
    pub fn iter(self) -> impl Iterator<Item = ResponseFlag> {
        ResponseFlag::ALL
            .into_iter()
            .filter(move |f| self.contains(*f))
    }

    /// `Some(self)` when any flag is set: access log lines carry the field
    /// only then.
    pub fn non_empty(self) -> Option<Self> {
        (!self.is_empty()).then_some(self)
    }
}

impl From<ResponseFlag> for ResponseFlags {
    fn from(flag: ResponseFlag) -> Self {
        ResponseFlags(flag.bit())
    }
}

impl fmt::Display for ResponseFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        for (i, flag) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(flag.code())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_envoy_codes_joined_by_comma() {
        let mut flags = ResponseFlags::default();
        assert_eq!(flags.to_string(), "-");
        assert_eq!(flags.non_empty(), None);
        flags.insert(ResponseFlag::UpstreamConnectionTermination);
        flags.insert(ResponseFlag::UpstreamConnectionFailure);
        assert_eq!(flags.to_string(), "UF,UC");
        assert!(flags.contains(ResponseFlag::UpstreamConnectionFailure));
        assert!(!flags.contains(ResponseFlag::NoRoute));
    }

    #[test]
    fn every_flag_has_a_distinct_code() {
        let codes: std::collections::HashSet<_> =
            ResponseFlag::ALL.iter().map(|f| f.code()).collect();
        assert_eq!(codes.len(), ResponseFlag::ALL.len());
        assert_eq!(ResponseFlag::WaypointMissing.to_string(), "WM");
    }
}
