//! The one factory of the agent's own sockets ([`socket`]).

pub mod socket;

pub use self::socket::ConnectError;
