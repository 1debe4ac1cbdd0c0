//! The pure domain of pipeguard: no I/O beyond reading a log stream handed in.
//!
//! `planner::decide(&Facts) -> Next` (every decision about a session, beside its state
//! machine in `lifecycle`) lives here so every decision can be unit-tested without a server,
//! a database or a CI platform. The engines it builds on are crates of their own, re-exported
//! at their old paths: `analysis` (pipeguard-analysis, `analyze(log) -> Diagnosis`), `safety`
//! (pipeguard-safety, `assess(argv) -> Assessment`), and the shared names `category`, `glob`,
//! `Platform`, `Strategy` and `Risk` (pipeguard-taxonomy).

pub mod backoff;
pub mod classifier;
pub mod codeowners;
pub mod event;
// Drives the fuzz targets and the replay of their corpus; not part of the service.
#[doc(hidden)]
pub mod fuzzing;
pub mod heal;
pub mod incident;
pub mod learning;
pub mod lifecycle;
pub mod planner;
pub mod policy;
pub mod readiness;
pub mod runners;
pub mod secrets;
pub mod simulate;
pub mod stats;

pub use pipeguard_analysis as analysis;
pub use pipeguard_safety as safety;
pub use pipeguard_taxonomy::{category, glob};

pub use analysis::{Analyzer, Diagnosis, Evidence};
pub use category::Category;
pub use event::{FailureEvent, Platform};
pub use policy::{HealPlan, PlanStep, Policy, Risk, Strategy};
