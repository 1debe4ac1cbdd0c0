//! `pipeguard import`'s side in the service: whether a past run is already stored, the replay
//! of a past failure through the worker ([`observe_past`]), the push fixes a green run shows
//! ([`push_fixed`], for live deliveries too) and the repository's readiness afterwards, as
//! `GET /api/v1/readiness` shows it.

use crate::Shared;
use pipeguard_core::event::Platform;
use pipeguard_core::readiness::RepositoryReadiness;
use pipeguard_platforms::OnCommit;
use pipeguard_store::{now_ms, Revision, StoreError};

pub use crate::worker::past::{observe_past, Imported};

/// Whether a session covers the run already (imported before, or healed live).
pub async fn imported(
    st: &Shared,
    platform: Platform,
    repository: &str,
    run_id: &str,
) -> Result<bool, StoreError> {
    st.store.has_run_session(platform, repository, run_id).await
}

/// A green run of `workflow` for a commit on a branch, finished at `at_ms`: the earlier
/// failures of that workflow and branch on other commits that no re-run measured were fixed by
/// a push. Returns how many were recorded so.
pub async fn push_fixed(
    st: &Shared,
    platform: Platform,
    repository: &str,
    workflow: &str,
    commit: &OnCommit,
    at_ms: Option<i64>,
) -> Result<u64, StoreError> {
    let green = Revision {
        workflow: workflow.to_string(),
        branch: Some(commit.branch.clone()),
        head_sha: Some(commit.head_sha.clone()),
    };
    let at = at_ms.unwrap_or_else(now_ms);
    st.store
        .record_push_fix(platform.as_str(), repository, &green, at)
        .await
}

/// The repository's readiness row, as `GET /api/v1/readiness` lists it; all figures zero when
/// nothing was measured.
pub async fn readiness(
    st: &Shared,
    platform: Platform,
    repository: &str,
) -> Result<RepositoryReadiness, StoreError> {
    let rows = crate::routes::readiness::report(st, Some(repository)).await?;
    if let Some(row) = rows.into_iter().find(|r| r.platform == platform.as_str()) {
        return Ok(row);
    }
    Ok(RepositoryReadiness {
        repository: repository.to_string(),
        platform: platform.as_str().to_string(),
        mode: st.mode_for(platform, repository).await?,
        figures: Default::default(),
        since: None,
    })
}
