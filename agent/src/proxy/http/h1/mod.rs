//! HTTP/1.1 from workloads, read strictly before hyper serves it: each head
//! is parsed and judged whole ([`head`]), bodies are followed ([`framing`]),
//! and the [`guard`] holds back whatever it refuses so egret answers it.

pub mod framing;
pub mod guard;
pub mod head;
pub mod limits;
