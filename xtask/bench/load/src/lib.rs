//! What the load tools share with the bench that starts them.

pub mod clock;
