//! Predicting on hosts: from the facts the Ansible path gathers, which hosts are about to run
//! out of disk, inodes or memory, and the cleanup offered before a task fails on it. The
//! cleanup is the one a full disk gets (`disk_full`); it is offered, never run here: a
//! person runs it (approval by default).

use crate::facts::HostFacts;
use crate::plan::{Action, Decision};
use serde::Serialize;

/// A resource a host can run out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Disk,
    Inodes,
    Memory,
}

/// When a host is warned about, as data: below `min_free_percent` of the total, or below
/// `min_free` (in the resource's unit: MB for disk and memory, inodes for inodes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub resource: Resource,
    pub min_free_percent: f64,
    pub min_free: i64,
    /// Whether the disk cleanup helps (it frees space and files, not memory).
    pub cleanup: bool,
}

pub const LIMITS: &[Limit] = &[
    Limit {
        resource: Resource::Disk,
        min_free_percent: 10.0,
        min_free: 1024,
        cleanup: true,
    },
    Limit {
        resource: Resource::Inodes,
        min_free_percent: 10.0,
        min_free: 10_000,
        cleanup: true,
    },
    // Ansible's `memfree_mb` leaves out the page cache, so only a near-empty memory warns.
    Limit {
        resource: Resource::Memory,
        min_free_percent: 5.0,
        min_free: 128,
        cleanup: false,
    },
];

/// A host about to run out of a resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warning {
    pub host: String,
    pub resource: Resource,
    pub free: i64,
    pub total: i64,
    pub percent_free: f64,
    pub message: String,
}

fn name(r: Resource) -> &'static str {
    match r {
        Resource::Disk => "disk /",
        Resource::Inodes => "inodes of /",
        Resource::Memory => "memory",
    }
}

fn unit(r: Resource) -> &'static str {
    match r {
        Resource::Disk | Resource::Memory => "MB",
        Resource::Inodes => "inodes",
    }
}

fn measured(f: &HostFacts, r: Resource) -> Option<(i64, i64)> {
    let pair = match r {
        Resource::Disk => (f.disk_free_mb, f.disk_total_mb),
        Resource::Inodes => (f.inodes_free, f.inodes_total),
        Resource::Memory => (f.memfree_mb, f.memtotal_mb),
    };
    match pair {
        (Some(free), Some(total)) if total > 0 => Some((free.max(0), total)),
        _ => None,
    }
}

/// The warnings the host's facts call for, in the order of [`LIMITS`].
pub fn warnings(host: &str, f: &HostFacts) -> Vec<Warning> {
    LIMITS
        .iter()
        .filter_map(|l| {
            let (free, total) = measured(f, l.resource)?;
            let percent_free = free as f64 * 100.0 / total as f64;
            let low = percent_free < l.min_free_percent || free < l.min_free;
            low.then(|| Warning {
                host: host.to_string(),
                resource: l.resource,
                free,
                total,
                percent_free,
                message: format!(
                    "{host}: {} {free} of {total} {} free ({percent_free:.1}%), below {}% or {} {}: it will run out{}",
                    name(l.resource),
                    unit(l.resource),
                    l.min_free_percent,
                    l.min_free,
                    unit(l.resource),
                    if l.cleanup { "; a cleanup playbook is offered" } else { "" }
                ),
            })
        })
        .collect()
}

/// The cleanup offered ahead of the failure when a warning is one the cleanup helps with.
pub fn cleanup(host: &str, f: &HostFacts, warned: &[Warning]) -> Option<Decision> {
    let why: Vec<&str> = warned
        .iter()
        .filter(|w| w.host == host)
        .filter(|w| LIMITS.iter().any(|l| l.resource == w.resource && l.cleanup))
        .map(|w| w.message.as_str())
        .collect();
    if why.is_empty() {
        return None;
    }
    let action = crate::plan::disk_cleanup(Some(f));
    debug_assert!(matches!(action, Action::Heal { .. }));
    Some(Decision {
        host: host.to_string(),
        task: "(before any task fails)".into(),
        module: "facts".into(),
        kind: "disk_filling".into(),
        reason: "the disk is filling up: clean package caches and old temporary files before a task fails (never user data)".into(),
        action,
        evidence: why.iter().map(|s| s.to_string()).collect(),
        unsure: false,
    })
}
