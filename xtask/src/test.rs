//! `cargo xtask test`: every test.
