//! The one factory of the agent's own sockets ([`socket`]), and host
//! names compared as DNS compares them ([`host`]).

pub mod host;
pub mod socket;

pub use self::host::HostName;
pub use self::socket::ConnectError;
