//! Stateful stand-ins for the CI platforms pipeguard talks to: GitHub Actions, GitLab CI,
//! Jenkins and CircleCI.
//!
//! Each simulator serves the REST endpoints pipeguard calls on 127.0.0.1, keeps each platform's
//! state between calls (run attempts, retried jobs, queue items, rerun workflows), moves runs on
//! in real time from a [`RunSpec`], refuses what the real service refuses, and sends the
//! platform's own webhook deliveries. `docs/platform-semantics.md` says which documented
//! behaviour each one follows.

pub mod circleci;
mod core;
pub mod github;
pub mod gitlab;
pub mod jenkins;
pub mod logs;

pub use crate::core::graph::End;
pub use crate::core::scenario::{JobSpec, Outcome, RunSpec, SpecError};
pub use crate::core::sim::{Fault, Model, RecordedRequest, Sim, Timeout};
pub use crate::core::webhook::{hmac_hex, Delivery, SentDelivery, Signing, WebhookTarget};
