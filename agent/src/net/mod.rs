//! The one factory of the agent's own sockets ([`socket`]), and the drain
//! that winds listeners and connections down on shutdown ([`drain`]).

pub mod drain;
pub mod socket;

pub use self::socket::ConnectError;
