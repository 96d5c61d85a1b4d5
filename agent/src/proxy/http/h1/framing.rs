//! Follows a request body on the wire, so the next head is known to start
//! where hyper will look for it: `Content-Length` bytes, or chunked coding
//! (RFC 9112 section 7.1) down to its last chunk and trailer section. It
//! reads the same boundaries hyper reads and refuses what it cannot follow.

use super::head::BodyLength;

/// Longest chunk-size line (size and extensions) accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// Why the body could not be followed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// Bad chunked coding.
    #[error("malformed chunked body: {0}")]
    Chunked(&'static str),
    /// Trailers over the head size limit.
    #[error("chunked trailers over {0} bytes")]
    TrailersTooLarge(usize),
}

/// Where the reader is in a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// The body (if any) is over: the next byte starts a head.
    Done,
    /// `n` more bytes of a `Content-Length` body.
    Fixed(u64),
    /// Inside chunked coding.
    Chunked(Chunk),
}

/// A point in chunked coding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Reading the chunk size: its value so far and the line's length.
    Size {
        value: u64,
        digits: usize,
        len: usize,
    },
    /// In the extensions after the size, until CR.
    Extension { value: u64, len: usize },
    /// After the size line's CR, expecting LF.
    SizeLf { value: u64 },
    /// `n` more data bytes.
    Data(u64),
    /// After a chunk's data, expecting CR then LF.
    DataCr,
    /// Expecting the LF after a chunk's data.
    DataLf,
    /// In the trailer section: bytes of it so far, bytes of this line.
    Trailer { total: usize, line: usize },
    /// After a trailer line's CR, expecting LF.
    TrailerLf { total: usize, line: usize },
}

impl Body {
    /// The state at the start of a body framed as `length`.
    pub fn start(length: BodyLength) -> Self {
        match length {
            BodyLength::Empty | BodyLength::Fixed(0) => Body::Done,
            BodyLength::Fixed(n) => Body::Fixed(n),
            BodyLength::Chunked => Body::Chunked(Chunk::Size {
                value: 0,
                digits: 0,
                len: 0,
            }),
        }
    }

    /// Consumes the part of `bytes` that belongs to this body and returns
    /// its length; the rest (after [`Body::Done`]) is the next message.
    /// `max_trailers` bounds the trailer section.
    pub fn advance(&mut self, bytes: &[u8], max_trailers: usize) -> Result<usize, FramingError> {
        let mut used = 0;
        while used < bytes.len() {
            match self {
                Body::Done => break,
                Body::Fixed(n) => {
                    let take = (*n).min((bytes.len() - used) as u64);
                    *n -= take;
                    used += take as usize;
                    if *n == 0 {
                        *self = Body::Done;
                    }
                }
                Body::Chunked(chunk) => {
                    if let Chunk::Data(n) = chunk {
                        let take = (*n).min((bytes.len() - used) as u64);
                        *n -= take;
                        used += take as usize;
                        if *n == 0 {
                            *chunk = Chunk::DataCr;
                        }
                        continue;
                    }
                    let done = chunk.step(bytes[used], max_trailers)?;
                    used += 1;
                    if done {
                        *self = Body::Done;
                    }
                }
            }
        }
        Ok(used)
    }

    /// Whether the body is over.
    pub fn is_done(&self) -> bool {
        matches!(self, Body::Done)
    }
}

impl Chunk {
    /// One byte of framing; `true` when it ended the body.
    fn step(&mut self, b: u8, max_trailers: usize) -> Result<bool, FramingError> {
        let bad = |why| Err(FramingError::Chunked(why));
        *self = match *self {
            Chunk::Size { value, digits, len } => {
                if len >= MAX_CHUNK_LINE {
                    return bad("chunk-size line too long");
                }
                match (b as char).to_digit(16) {
                    Some(d) if digits < 16 => Chunk::Size {
                        value: value << 4 | u64::from(d),
                        digits: digits + 1,
                        len: len + 1,
                    },
                    Some(_) => return bad("chunk size too large"),
                    None if digits == 0 => return bad("chunk size missing"),
                    None => match b {
                        b'\r' => Chunk::SizeLf { value },
                        b';' | b' ' | b'\t' => Chunk::Extension {
                            value,
                            len: len + 1,
                        },
                        _ => return bad("invalid chunk size"),
                    },
                }
            }
            Chunk::Extension { value, len } => match b {
                _ if len >= MAX_CHUNK_LINE => return bad("chunk extensions too long"),
                b'\r' => Chunk::SizeLf { value },
                b'\n' | 0 => return bad("invalid chunk extension"),
                _ => Chunk::Extension {
                    value,
                    len: len + 1,
                },
            },
            Chunk::SizeLf { value } => match b {
                b'\n' if value == 0 => Chunk::Trailer { total: 0, line: 0 },
                b'\n' => Chunk::Data(value),
                _ => return bad("chunk-size line not ended by CRLF"),
            },
            Chunk::Data(_) => unreachable!("data is consumed in bulk"),
            Chunk::DataCr => match b {
                b'\r' => Chunk::DataLf,
                _ => return bad("chunk data not followed by CRLF"),
            },
            Chunk::DataLf => match b {
                b'\n' => Chunk::Size {
                    value: 0,
                    digits: 0,
                    len: 0,
                },
                _ => return bad("chunk data not followed by CRLF"),
            },
            Chunk::Trailer { total, line } => {
                if total >= max_trailers {
                    return Err(FramingError::TrailersTooLarge(max_trailers));
                }
                match b {
                    b'\r' => Chunk::TrailerLf {
                        total: total + 1,
                        line,
                    },
                    b'\n' | 0 => return bad("invalid trailer line"),
                    _ => Chunk::Trailer {
                        total: total + 1,
                        line: line + 1,
                    },
                }
            }
            Chunk::TrailerLf { total, line } => match b {
                // An empty line ends the trailer section and the body.
                b'\n' if line == 0 => return Ok(true),
                b'\n' => Chunk::Trailer {
                    total: total + 1,
                    line: 0,
                },
                _ => return bad("trailer line not ended by CRLF"),
            },
        };
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn follow(length: BodyLength, wire: &[u8]) -> Result<(usize, bool), FramingError> {
        let mut body = Body::start(length);
        let used = body.advance(wire, 1024)?;
        Ok((used, body.is_done()))
    }

    #[test]
    fn fixed_length_bodies_end_after_their_bytes() {
        assert_eq!(follow(BodyLength::Fixed(3), b"abcGET"), Ok((3, true)));
        assert_eq!(follow(BodyLength::Fixed(5), b"abc"), Ok((3, false)));
        assert_eq!(follow(BodyLength::Empty, b"GET"), Ok((0, true)));
    }

    #[test]
    fn chunked_bodies_end_after_the_trailer_section() {
        let wire = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nx-t: 1\r\n\r\nGET / HTTP/1.1";
        let end = wire.len() - b"GET / HTTP/1.1".len();
        assert_eq!(follow(BodyLength::Chunked, wire), Ok((end, true)));
        assert_eq!(
            follow(BodyLength::Chunked, b"0\r\n\r\nX"),
            Ok((5, true)),
            "empty body"
        );
        // Byte by byte gives the same boundary.
        let mut body = Body::start(BodyLength::Chunked);
        let mut used = 0;
        for b in wire.iter() {
            used += body.advance(std::slice::from_ref(b), 1024).unwrap();
        }
        assert_eq!(used, end);
        assert!(body.is_done());
    }

    #[test]
    fn bad_chunked_coding_is_refused() {
        for wire in [
            &b"x\r\n"[..],
            b"\r\n",
            b"4\nWiki",
            b"4\r\nWikiXX",
            b"11111111111111111\r\n",
            b"0\r\nbad\ntrailer",
            b"4;a\x00\r\n",
        ] {
            let got = follow(BodyLength::Chunked, wire);
            assert!(got.is_err(), "{wire:?}: {got:?}");
        }
        let mut body = Body::start(BodyLength::Chunked);
        assert_eq!(
            body.advance(b"0\r\nx-long: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n", 16),
            Err(FramingError::TrailersTooLarge(16))
        );
    }
}
