//! The pipeguard service: webhook intake, the healing worker and the API, on one axum server.

pub mod adhoc;
pub mod analyst;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod commands;
pub mod config;
pub mod connections;
pub mod dashboard;
pub mod error;
pub mod flaky;
pub mod import;
pub mod learned;
pub mod mcp;
pub mod metrics;
pub mod notify;
pub mod parse_errors;
pub mod quarantine;
pub mod ratelimit;
pub mod rerun;
pub mod routes;
pub mod runners;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tenants;
pub mod tls;
pub mod worker;

pub use routes::router;
pub use startup::{run, serve};
pub use state::{AppState, Shared, Tenant};
