//! What every platform shares: scenarios, the progression of jobs, the simulator's server and
//! clock, webhook sending and HTTP helpers.

pub mod graph;
pub mod http;
pub mod ratelimit;
pub mod scenario;
pub mod sim;
pub mod webhook;
