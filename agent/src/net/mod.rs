//! The one factory of the agent's own sockets ([`socket`]), host names
//! compared as DNS compares them ([`host`]), and the drain that winds
//! listeners and connections down on shutdown ([`drain`]).

pub mod drain;
pub mod host;
pub mod socket;

pub use self::host::HostName;
pub use self::socket::ConnectError;
