//! The strict reading of one HTTP/1.1 request head, before hyper sees it:
//! request line and fields as httparse (hyper's own parser) reads them, the
//! request target as the `http` crate parses it, and the framing rules Envoy
//! enforces (RFC 9112 section 6). Anything else is refused with the status
//! Envoy answers, so a request is never read one way here and another way
//! upstream.

use super::limits::HeadLimits;

/// How the body after a head is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLength {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Fixed(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A complete, valid head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Bytes of the head, final empty line included.
    pub len: usize,
    /// The body that follows.
    pub body: BodyLength,
}

/// The outcome of reading the bytes received so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet (and within the limits so far).
    Partial,
    /// A valid head.
    Complete(Head),
}

/// Why a head was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Not HTTP/1.x syntax: bad token, header name, NUL, line folding...
    #[error("malformed request: {0}")]
    Malformed(String),
    /// Request line and headers over the size limit.
    #[error("request headers over {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// More header fields than allowed.
    #[error("more than {limit} header fields")]
    TooMany {
        /// The limit.
        limit: usize,
    },
    /// A transfer coding other than `chunked`.
    #[error("unsupported transfer-encoding {0:?}")]
    UnsupportedTransferEncoding(String),
}

/// Reads the head at the start of `buf` (which may hold more after it).
pub fn parse(buf: &[u8], limits: &HeadLimits) -> Result<Parsed, HeadError> {
    let mut fields = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_bytes => {
            return Err(HeadError::TooLarge {
                limit: limits.max_bytes,
            })
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::TooMany {
                limit: limits.max_headers,
            })
        }
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    if len > limits.max_bytes {
        return Err(HeadError::TooLarge {
            limit: limits.max_bytes,
        });
    }
    let target = req.path.unwrap_or_default();
    check_target(req.method.unwrap_or_default(), target)?;
    let http10 = req.version == Some(0);
    let body = framing(req.headers, http10)?;
    Ok(Parsed::Complete(Head { len, body }))
}

/// The target must parse as a URI the way hyper parses it, in the form its
/// method allows (RFC 9112 section 3.2), and carry no fragment: Envoy
/// refuses `#` in the path rather than guess what it meant.
fn check_target(method: &str, target: &str) -> Result<(), HeadError> {
    let bad = |why: String| {
        Err(HeadError::Malformed(format!(
            "request target {target:?}: {why}"
        )))
    };
    if target.contains('#') {
        return bad("fragment".into());
    }
    let uri = match target.parse::<http::Uri>() {
        Ok(uri) => uri,
        Err(e) => return bad(e.to_string()),
    };
    let form_ok = match target.as_bytes().first() {
        Some(b'/') => method != "CONNECT",
        Some(b'*') => method == "OPTIONS" && target == "*",
        _ if uri.scheme().is_some() => method != "CONNECT",
        _ => method == "CONNECT" && uri.authority().is_some() && uri.path_and_query().is_none(),
    };
    if form_ok {
        Ok(())
    } else {
        bad(format!("not a valid target for {method}"))
    }
}

/// The body framing, per RFC 9112 section 6.3 with Envoy's strictness:
/// `Transfer-Encoding` is HTTP/1.1 only, must be exactly `chunked`, and may
/// not come with `Content-Length`; every `Content-Length` must be the same
/// plain number.
fn framing(fields: &[httparse::Header<'_>], http10: bool) -> Result<BodyLength, HeadError> {
    let mut transfer_encoding: Option<String> = None;
    let mut content_length: Option<u64> = None;
    for field in fields {
        if field.name.eq_ignore_ascii_case("transfer-encoding") {
            let value = String::from_utf8_lossy(field.value);
            let joined = match transfer_encoding.take() {
                Some(before) => format!("{before}, {value}"),
                None => value.into_owned(),
            };
            transfer_encoding = Some(joined);
        } else if field.name.eq_ignore_ascii_case("content-length") {
            let len = content_length_value(field.value)?;
            if content_length.is_some_and(|seen| seen != len) {
                return Err(HeadError::Malformed(
                    "differing content-length values".into(),
                ));
            }
            content_length = Some(len);
        }
    }
    match (transfer_encoding, content_length) {
        (None, None) => Ok(BodyLength::Empty),
        (None, Some(len)) => Ok(BodyLength::Fixed(len)),
        (Some(_), _) if http10 => Err(HeadError::Malformed(
            "transfer-encoding in an HTTP/1.0 request".into(),
        )),
        (Some(_), Some(_)) => Err(HeadError::Malformed(
            "both transfer-encoding and content-length".into(),
        )),
        (Some(te), None) if te.trim().eq_ignore_ascii_case("chunked") => Ok(BodyLength::Chunked),
        (Some(te), None) => Err(HeadError::UnsupportedTransferEncoding(te)),
    }
}

fn content_length_value(value: &[u8]) -> Result<u64, HeadError> {
    let text = std::str::from_utf8(value)
        .ok()
        .map(|v| v.trim_matches(|c| c == ' ' || c == '\t'))
        .filter(|v| !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()));
    text.and_then(|v| v.parse().ok()).ok_or_else(|| {
        HeadError::Malformed(format!(
            "invalid content-length {:?}",
            String::from_utf8_lossy(value)
        ))
    })
}

/// Best-effort request-line facts of a refused head, for its log line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The method, when the request line got that far.
    pub method: Option<String>,
    /// The request target, likewise.
    pub target: Option<String>,
    /// The `Host` value, when one was read.
    pub host: Option<String>,
    /// The `User-Agent` value, likewise.
    pub user_agent: Option<String>,
}

impl Summary {
    /// What can be read of a head that failed.
    pub fn of(buf: &[u8]) -> Self {
        let line_end = buf
            .iter()
            .position(|b| *b == b'\n')
            .unwrap_or(buf.len())
            .min(8192);
        let line = String::from_utf8_lossy(&buf[..line_end]);
        let mut words = line.trim_end_matches('\r').split(' ');
        let printable = |w: &str| {
            (!w.is_empty() && w.bytes().all(|b| b.is_ascii_graphic())).then(|| w.to_string())
        };
        let method = words.next().and_then(printable);
        let target = words.next().and_then(printable);
        let field = |name: &str| {
            buf[line_end.min(buf.len())..]
                .split(|b| *b == b'\n')
                .take(256)
                .find_map(|l| {
                    let l = String::from_utf8_lossy(l);
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case(name)
                        .then(|| v.trim().chars().take(256).collect())
                })
        };
        Summary {
            method,
            target,
            host: field("host"),
            user_agent: field("user-agent"),
        }
    }
}

#[cfg(test)]
mod tests;
