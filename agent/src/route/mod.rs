//! VirtualService: ordered HTTP routes, matches, rewrites and header operations.
