//! Finding ansible-core for the tests that run it.

use std::path::{Path, PathBuf};

/// `ansible-playbook` from `PIPEGUARD_ANSIBLE_PLAYBOOK` or `<repo>/.venv-ansible`
/// (`.ci/setup-ansible.sh`).
fn ansible_playbook() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PIPEGUARD_ANSIBLE_PLAYBOOK") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Some(p);
        }
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-ansible/bin/ansible-playbook");
    p.is_file().then_some(p)
}

/// The playbook binary, or `None` after saying why the test is skipped (a failure under CI).
pub fn playbook_or_skip() -> Option<PathBuf> {
    super::require::require(
        "ansible-core (run .ci/setup-ansible.sh or set PIPEGUARD_ANSIBLE_PLAYBOOK)",
        ansible_playbook(),
    )
}

/// The playbook binary, or return from the test (skipped; a failure under CI).
macro_rules! require_ansible {
    () => {
        match ansible_support::playbook_or_skip() {
            Some(p) => p,
            None => return,
        }
    };
}
