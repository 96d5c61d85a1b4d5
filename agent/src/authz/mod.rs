//! AuthorizationPolicy: compiled once per config change, evaluated per request at the waypoint.
