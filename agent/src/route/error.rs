//! Why a VirtualService was refused; every message names it and the field.

/// A VirtualService that cannot be compiled; its routes are not installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("VirtualService {namespace}/{name}: {field}: {reason}")]
pub struct RouteError {
    /// VirtualService namespace.
    pub namespace: String,
    /// VirtualService name.
    pub name: String,
    /// Path of the field, e.g. `spec.http[0].match[1].uri.regex`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}
