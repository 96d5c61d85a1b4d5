//! A ClientHello reader that never terminates TLS: it walks the handshake
//! records a client sends first and takes the server name (SNI) out of them.
//!
//! Written for hostile input: every length is checked against what is
//! actually there, nothing is allocated beyond the bytes given, and any
//! input either parses, asks for more bytes, or is rejected — never a panic.

use crate::net::HostName;

/// The most bytes the waypoint buffers while waiting for a whole ClientHello
/// (records included). Real ClientHellos, post-quantum key shares too, stay
/// well under it.
pub const MAX_HELLO_BYTES: usize = 16 * 1024;

/// TLS record content type `handshake`.
const CONTENT_HANDSHAKE: u8 = 22;
/// Handshake message type `client_hello`.
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
/// Extension `server_name` (RFC 6066).
const EXTENSION_SERVER_NAME: u16 = 0;
/// `NameType.host_name`.
const NAME_TYPE_HOST: u8 = 0;
/// A record's plaintext may be at most 2^14 bytes (RFC 8446 §5.1).
const MAX_RECORD_LEN: usize = 1 << 14;
/// Record header: type, version, length.
const RECORD_HEADER_LEN: usize = 5;
/// Handshake header: type, 24-bit length.
const HANDSHAKE_HEADER_LEN: usize = 4;
/// A DNS name is at most 253 characters written out.
const MAX_NAME_LEN: usize = 253;

/// What the first bytes of a TLS connection said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientHello {
    /// The `server_name` host name, lowercase; `None` when the client sent none.
    pub server_name: Option<HostName>,
}

/// Why the bytes are not a ClientHello the waypoint can route.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The first record is not a TLS handshake record (plain text, SSLv2, …).
    #[error("not a TLS handshake record (content type {0})")]
    NotHandshake(u8),
    /// The record header names a protocol version that is not TLS.
    #[error("record version {0:#06x} is not TLS")]
    BadVersion(u16),
    /// A record is empty or longer than TLS allows.
    #[error("record length {0} is out of range")]
    BadRecordLength(usize),
    /// The first handshake message is something else.
    #[error("first handshake message is type {0}, not ClientHello")]
    NotClientHello(u8),
    /// The ClientHello would not fit the waypoint's buffer.
    #[error("ClientHello of {0} bytes exceeds the {MAX_HELLO_BYTES}-byte limit")]
    TooLarge(usize),
    /// A length inside the ClientHello points past its end.
    #[error("ClientHello is malformed at {0}")]
    Malformed(&'static str),
    /// The server name is not a DNS host name.
    #[error("server name is not a valid host name: {0}")]
    BadServerName(String),
}

/// Parses `buf`, the bytes received so far. `Ok(None)`: a valid prefix that
/// needs more bytes; `Ok(Some(_))`: a whole ClientHello was found (bytes
/// after it, if any, are left alone).
pub fn parse(buf: &[u8]) -> Result<Option<ClientHello>, HelloError> {
    let Some(message) = handshake_message(buf)? else {
        return Ok(None);
    };
    client_hello_body(&message).map(Some)
}

/// Reassembles the first handshake message from however many records carry
/// it; `None` until all of it has arrived.
fn handshake_message(buf: &[u8]) -> Result<Option<Vec<u8>>, HelloError> {
    let mut payload = Vec::new();
    let mut rest = buf;
    loop {
        if rest.len() < RECORD_HEADER_LEN {
            // The header fields that have arrived can already be wrong.
            if let Some(&t) = rest.first() {
                check_content_type(t)?;
            }
            if let Some(&major) = rest.get(1) {
                check_version(u16::from(major) << 8 | 1)?;
            }
            return Ok(None);
        }
        check_content_type(rest[0])?;
        check_version(u16::from_be_bytes([rest[1], rest[2]]))?;
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        if len == 0 || len > MAX_RECORD_LEN {
            return Err(HelloError::BadRecordLength(len));
        }
        let Some(fragment) = rest.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
            return Ok(None);
        };
        payload.extend_from_slice(fragment);
        rest = &rest[RECORD_HEADER_LEN + len..];

        if let Some(&kind) = payload.first() {
            if kind != HANDSHAKE_CLIENT_HELLO {
                return Err(HelloError::NotClientHello(kind));
            }
        }
        if payload.len() >= HANDSHAKE_HEADER_LEN {
            let body_len = usize::from(payload[1]) << 16
                | usize::from(payload[2]) << 8
                | usize::from(payload[3]);
            let total = HANDSHAKE_HEADER_LEN + body_len;
            // Each record adds its header: the smallest framing it can come in.
            let framed = total + RECORD_HEADER_LEN * total.div_ceil(MAX_RECORD_LEN);
            if framed > MAX_HELLO_BYTES {
                return Err(HelloError::TooLarge(total));
            }
            if payload.len() >= total {
                payload.truncate(total);
                payload.drain(..HANDSHAKE_HEADER_LEN);
                return Ok(Some(payload));
            }
        }
    }
}

fn check_content_type(t: u8) -> Result<(), HelloError> {
    if t == CONTENT_HANDSHAKE {
        Ok(())
    } else {
        Err(HelloError::NotHandshake(t))
    }
}

/// Record versions 3.x (SSL 3.0 framing up to TLS 1.3, which keeps 3.1/3.3).
fn check_version(version: u16) -> Result<(), HelloError> {
    if version >> 8 == 3 {
        Ok(())
    } else {
        Err(HelloError::BadVersion(version))
    }
}

/// Walks the ClientHello body to its extensions and finds `server_name`.
fn client_hello_body(body: &[u8]) -> Result<ClientHello, HelloError> {
    let mut r = Reader(body);
    r.skip(2, "client_version")?;
    r.skip(32, "random")?;
    let session_id = r.u8("session_id length")?;
    if session_id > 32 {
        return Err(HelloError::Malformed("session_id length"));
    }
    r.skip(usize::from(session_id), "session_id")?;
    let suites = r.u16("cipher_suites length")?;
    if suites == 0 || suites % 2 != 0 {
        return Err(HelloError::Malformed("cipher_suites length"));
    }
    r.skip(usize::from(suites), "cipher_suites")?;
    let compression = r.u8("compression_methods length")?;
    if compression == 0 {
        return Err(HelloError::Malformed("compression_methods length"));
    }
    r.skip(usize::from(compression), "compression_methods")?;
    // Extensions are optional (pre-TLS 1.2 clients); then there is no SNI.
    if r.0.is_empty() {
        return Ok(ClientHello { server_name: None });
    }
    let ext_len = r.u16("extensions length")?;
    let mut exts = Reader(r.take(usize::from(ext_len), "extensions")?);
    if !r.0.is_empty() {
        return Err(HelloError::Malformed("bytes after extensions"));
    }
    let mut server_name = None;
    while !exts.0.is_empty() {
        let kind = exts.u16("extension type")?;
        let len = exts.u16("extension length")?;
        let data = exts.take(usize::from(len), "extension data")?;
        if kind == EXTENSION_SERVER_NAME {
            // RFC 8446 §4.2: one extension of each type at most.
            if server_name.is_some() {
                return Err(HelloError::Malformed("duplicate server_name extension"));
            }
            server_name = Some(host_name(data)?);
        }
    }
    Ok(ClientHello {
        server_name: server_name.flatten(),
    })
}

/// The `host_name` entry of a `server_name` extension (RFC 6066 §3).
fn host_name(data: &[u8]) -> Result<Option<HostName>, HelloError> {
    let mut r = Reader(data);
    let list_len = r.u16("server_name_list length")?;
    let mut list = Reader(r.take(usize::from(list_len), "server_name_list")?);
    if !r.0.is_empty() || list.0.is_empty() {
        return Err(HelloError::Malformed("server_name_list length"));
    }
    let mut found = None;
    while !list.0.is_empty() {
        let name_type = list.u8("server name type")?;
        let len = list.u16("server name length")?;
        let name = list.take(usize::from(len), "server name")?;
        if name_type != NAME_TYPE_HOST {
            continue;
        }
        // "The ServerNameList MUST NOT contain more than one name of the same name_type."
        if found.is_some() {
            return Err(HelloError::Malformed("two host names"));
        }
        found = Some(valid_host(name)?);
    }
    Ok(found)
}

/// A DNS host name in ASCII, lowercased: labels of letters, digits, `-`
/// and `_`, no empty labels, no trailing dot (RFC 6066 forbids it).
fn valid_host(name: &[u8]) -> Result<HostName, HelloError> {
    let bad =
        || HelloError::BadServerName(String::from_utf8_lossy(name).escape_debug().to_string());
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(bad());
    }
    let label_ok = |label: &[u8]| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    };
    if !name.split(|b| *b == b'.').all(label_ok) {
        return Err(bad());
    }
    // Only ASCII got here, so this cannot fail.
    let name = std::str::from_utf8(name).map_err(|_| bad())?;
    Ok(HostName::new(name))
}

/// A cursor over a byte slice whose every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HelloError> {
        if self.0.len() < n {
            return Err(HelloError::Malformed(what));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn skip(&mut self, n: usize, what: &'static str) -> Result<(), HelloError> {
        self.take(n, what).map(|_| ())
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, HelloError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, HelloError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
mod tests;
