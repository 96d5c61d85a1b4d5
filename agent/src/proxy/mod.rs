//! The waypoint: captured connections in, policy and routing, upstream out.
