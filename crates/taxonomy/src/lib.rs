//! The names pipeguard's engines share: what a failure is (`Category`), what to do about it
//! (`Strategy`), how dangerous a command is (`Risk`) and which CI system sent it (`Platform`),
//! plus the glob patterns both the analyzer's tool tables and the safety engine match with.
//!
//! The bottom floor: the analyzer, the safety engine and core build on it; it depends on no
//! other pipeguard crate. Names are stable in JSON (snake_case) and in the database.

pub mod category;
pub mod glob;
pub mod platform;
pub mod risk;
pub mod strategy;

pub use category::{Category, UnknownCategory};
pub use platform::Platform;
pub use risk::Risk;
pub use strategy::Strategy;
