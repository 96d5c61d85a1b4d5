//! `cargo xtask demo`: the walkthrough on a built-in example.
