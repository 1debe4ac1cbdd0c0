//! `pipeguard import`'s side in the service: whether a past run is already stored, the replay
//! of a past failure through the worker ([`observe_past`]) and the repository's readiness
//! afterwards, as `GET /api/v1/readiness` shows it.

use crate::Shared;
use pipeguard_core::event::Platform;
use pipeguard_core::readiness::RepositoryReadiness;
use pipeguard_store::StoreError;

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
