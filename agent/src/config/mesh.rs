//! Mesh-wide settings istiod reads from MeshConfig (the `istio` ConfigMap in
//! `istio-system`, key `mesh`) and the per-namespace `Sidecar` override of
//! the outbound traffic policy.

/// MeshConfig `outboundTrafficPolicy.mode` (and Sidecar `outboundTrafficPolicy.mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OutboundMode {
    /// Destinations outside the registry are reached directly (Istio's default).
    #[default]
    AllowAny,
    /// Only registry destinations: anything else is refused, in the kernel.
    RegistryOnly,
}

/// MeshConfig `pathNormalization.normalization`: how request paths are
/// normalized before AuthorizationPolicy and before going upstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PathNormalization {
    /// No normalization.
    None,
    /// RFC 3986 normalization, backslashes as `/` (Istio's default, `DEFAULT` too).
    #[default]
    Base,
    /// BASE, then runs of `/` merged.
    MergeSlashes,
    /// BASE, `%2F`/`%5C` decoded, then slashes merged.
    DecodeAndMergeSlashes,
}

/// The mesh-wide settings egret honours.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeshConfig {
    /// `outboundTrafficPolicy.mode`, before any Sidecar override.
    pub outbound: OutboundMode,
    /// `pathNormalization.normalization`.
    pub path_normalization: PathNormalization,
}
