//! The pure domain of pipeguard: no I/O beyond reading a log stream handed in.
//!
//! `analyze(log) -> Diagnosis`, `planner::decide(&Facts) -> Next` (every decision about a
//! session, beside its state machine in `lifecycle`) and
//! `safety::assess(argv) -> Assessment` live here so every decision can be unit-tested
//! without a server, a database or a CI platform.

pub mod analysis;
pub mod category;
pub mod classifier;
pub mod event;
// Drives the fuzz targets and the replay of their corpus; not part of the service.
#[doc(hidden)]
pub mod fuzzing;
pub mod heal;
pub mod learning;
pub mod lifecycle;
pub mod planner;
pub mod policy;
pub mod readiness;
pub mod safety;
pub mod secrets;
pub mod simulate;
pub mod stats;

pub use analysis::{Analyzer, Diagnosis, Evidence};
pub use category::Category;
pub use event::{FailureEvent, Platform};
pub use policy::{HealPlan, PlanStep, Policy, Risk, Strategy};
