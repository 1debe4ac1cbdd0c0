//! Ansible healing: what failed where (from the callback plugin's events), what the host
//! is (its facts), what to do about it (a heal plan of diagnose → fix → verify steps chosen
//! for the host's package and service managers), and the healing playbook that does it.
//!
//! Everything here is plain data and text; running `ansible-playbook` is the CLI's job.

pub mod events;
pub mod facts;
pub mod fit;
pub mod hostloop;
pub mod plan;
pub mod playbook;
pub mod predict;

/// The callback plugin, shipped inside the binary so `pipeguard ansible` works anywhere.
pub const CALLBACK_PLUGIN: &str =
    include_str!("../../../contrib/ansible/callback_plugins/pipeguard.py");

pub use events::{Event, RunEvents, TaskFailure};
pub use facts::{HostFacts, PackageManager, ServiceManager};
pub use plan::{classify, Action, Decision, Phase, Step};
