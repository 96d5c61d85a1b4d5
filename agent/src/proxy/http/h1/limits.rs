//! The bounds one request head is read under.

use crate::proxy::limits::Limits;

/// Size and count limits of a request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLimits {
    /// Request line plus header fields, in bytes.
    pub max_bytes: usize,
    /// Header fields.
    pub max_headers: usize,
}

impl From<&Limits> for HeadLimits {
    fn from(l: &Limits) -> Self {
        HeadLimits {
            max_bytes: l.max_request_headers_bytes,
            max_headers: l.max_request_headers,
        }
    }
}
