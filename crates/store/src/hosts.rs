//! Host facts gathered by `pipeguard ansible` (OS, package and service manager, resources),
//! kept so fixes can be chosen per host and `pipeguard hosts` can list them.

use crate::{now_ms, opt_str, Result, Store};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    pub name: String,
    pub os_family: Option<String>,
    pub distribution: Option<String>,
    pub distribution_version: Option<String>,
    pub pkg_mgr: Option<String>,
    pub service_mgr: Option<String>,
    pub architecture: Option<String>,
    pub memtotal_mb: Option<i64>,
    pub memfree_mb: Option<i64>,
    pub disk_free_mb: Option<i64>,
    pub disk_total_mb: Option<i64>,
    pub python: Option<String>,
    /// Every fact summarised, as JSON.
    pub facts: serde_json::Value,
    pub source: String,
    #[serde(default)]
    pub first_seen_at: i64,
    #[serde(default)]
    pub updated_at: i64,
}

impl HostRecord {
    fn from_row(row: &AnyRow) -> Result<HostRecord> {
        let facts: String = row.try_get("facts")?;
        Ok(HostRecord {
            name: row.try_get("name")?,
            os_family: opt_str(row, "os_family")?,
            distribution: opt_str(row, "distribution")?,
            distribution_version: opt_str(row, "distribution_version")?,
            pkg_mgr: opt_str(row, "pkg_mgr")?,
            service_mgr: opt_str(row, "service_mgr")?,
            architecture: opt_str(row, "architecture")?,
            memtotal_mb: row.try_get("memtotal_mb")?,
            memfree_mb: row.try_get("memfree_mb")?,
            disk_free_mb: row.try_get("disk_free_mb")?,
            disk_total_mb: row.try_get("disk_total_mb")?,
            python: opt_str(row, "python")?,
            facts: serde_json::from_str(&facts).unwrap_or(serde_json::Value::Null),
            source: row.try_get("source")?,
            first_seen_at: row.try_get("first_seen_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

impl Store {
    /// Insert or refresh one host's facts; `first_seen_at` is kept from the first insert.
    pub async fn upsert_host(&self, h: &HostRecord) -> Result<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO hosts (name, os_family, distribution, distribution_version, pkg_mgr, \
             service_mgr, architecture, memtotal_mb, memfree_mb, disk_free_mb, disk_total_mb, \
             python, facts, source, first_seen_at, updated_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$15) \
             ON CONFLICT (name) DO UPDATE SET os_family = excluded.os_family, \
             distribution = excluded.distribution, \
             distribution_version = excluded.distribution_version, pkg_mgr = excluded.pkg_mgr, \
             service_mgr = excluded.service_mgr, architecture = excluded.architecture, \
             memtotal_mb = excluded.memtotal_mb, memfree_mb = excluded.memfree_mb, \
             disk_free_mb = excluded.disk_free_mb, disk_total_mb = excluded.disk_total_mb, \
             python = excluded.python, facts = excluded.facts, source = excluded.source, \
             updated_at = excluded.updated_at",
        )
        .bind(&h.name)
        .bind(h.os_family.clone())
        .bind(h.distribution.clone())
        .bind(h.distribution_version.clone())
        .bind(h.pkg_mgr.clone())
        .bind(h.service_mgr.clone())
        .bind(h.architecture.clone())
        .bind(h.memtotal_mb)
        .bind(h.memfree_mb)
        .bind(h.disk_free_mb)
        .bind(h.disk_total_mb)
        .bind(h.python.clone())
        .bind(h.facts.to_string())
        .bind(if h.source.is_empty() {
            "ansible"
        } else {
            h.source.as_str()
        })
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every known host, by name.
    pub async fn list_hosts(&self) -> Result<Vec<HostRecord>> {
        let rows = sqlx::query("SELECT * FROM hosts ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(HostRecord::from_row).collect()
    }
}

/// What healed one failure on hosts of one OS family (the host loop's memory).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostFix {
    /// The failure: `task|module|kind`.
    pub fingerprint: String,
    pub os_family: String,
    pub diagnostics: Vec<String>,
    pub fixes: Vec<String>,
    pub verification: Vec<String>,
    /// Heals by these fixes.
    pub healed: i64,
    /// The host healed last.
    pub last_host: String,
    #[serde(default)]
    pub last_healed_at: i64,
}

fn json_list(row: &AnyRow, col: &str) -> Result<Vec<String>> {
    let text: String = row.try_get(col)?;
    Ok(serde_json::from_str(&text).unwrap_or_default())
}

impl HostFix {
    fn from_row(row: &AnyRow) -> Result<HostFix> {
        Ok(HostFix {
            fingerprint: row.try_get("fingerprint")?,
            os_family: row.try_get("os_family")?,
            diagnostics: json_list(row, "diagnostics")?,
            fixes: json_list(row, "fixes")?,
            verification: json_list(row, "verification")?,
            healed: row.try_get("healed")?,
            last_host: row.try_get("last_host")?,
            last_healed_at: row.try_get("last_healed_at")?,
        })
    }
}

impl Store {
    /// Count one heal of `fix.fingerprint` on an `fix.os_family` host by `fix.fixes`
    /// (`healed` is ignored: each call adds one); the latest diagnostics and verification
    /// replace the earlier ones.
    pub async fn record_host_fix(&self, fix: &HostFix) -> Result<()> {
        let now = now_ms();
        let list = |l: &[String]| serde_json::to_string(l).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO host_fixes (fingerprint, os_family, fixes, diagnostics, verification, \
             healed, last_host, first_healed_at, last_healed_at) \
             VALUES ($1,$2,$3,$4,$5,1,$6,$7,$7) \
             ON CONFLICT (fingerprint, os_family, fixes) DO UPDATE SET \
             healed = host_fixes.healed + 1, diagnostics = excluded.diagnostics, \
             verification = excluded.verification, last_host = excluded.last_host, \
             last_healed_at = excluded.last_healed_at",
        )
        .bind(&fix.fingerprint)
        .bind(&fix.os_family)
        .bind(list(&fix.fixes))
        .bind(list(&fix.diagnostics))
        .bind(list(&fix.verification))
        .bind(&fix.last_host)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Everything the host loop learned, by failure and OS family, most heals first.
    pub async fn list_host_fixes(&self) -> Result<Vec<HostFix>> {
        let rows = sqlx::query(
            "SELECT * FROM host_fixes \
             ORDER BY fingerprint, os_family, healed DESC, last_healed_at DESC",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(HostFix::from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn upsert_keeps_first_seen_and_refreshes_facts() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url).await.unwrap();
        let mut h = HostRecord {
            name: "web1".into(),
            os_family: Some("Debian".into()),
            pkg_mgr: Some("apt".into()),
            memtotal_mb: Some(2048),
            facts: serde_json::json!({"os_family": "Debian"}),
            ..HostRecord::default()
        };
        store.upsert_host(&h).await.unwrap();
        let first = store.list_hosts().await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].pkg_mgr.as_deref(), Some("apt"));
        assert_eq!(first[0].disk_free_mb, None);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        h.disk_free_mb = Some(1234);
        store.upsert_host(&h).await.unwrap();
        let second = store.list_hosts().await.unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].disk_free_mb, Some(1234));
        assert_eq!(second[0].first_seen_at, first[0].first_seen_at);
        assert!(second[0].updated_at >= first[0].updated_at);
        assert_eq!(second[0].source, "ansible");
    }

    #[tokio::test]
    async fn a_heal_by_the_same_fixes_counts_up_per_fingerprint_and_os_family() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::connect(&url).await.unwrap();
        let mut fix = HostFix {
            fingerprint: "start|command|unknown".into(),
            os_family: "Debian".into(),
            diagnostics: vec!["ls -ld /etc".into()],
            fixes: vec!["mkdir -p /etc/app".into()],
            verification: vec!["test -d /etc/app".into()],
            last_host: "web1".into(),
            ..HostFix::default()
        };
        store.record_host_fix(&fix).await.unwrap();
        fix.last_host = "web2".into();
        fix.verification = vec!["test -d /etc/app/".into()];
        store.record_host_fix(&fix).await.unwrap();
        let other = HostFix {
            fixes: vec!["install -d /etc/app".into()],
            ..fix.clone()
        };
        store.record_host_fix(&other).await.unwrap();

        let got = store.list_host_fixes().await.unwrap();
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].fixes, fix.fixes, "most heals first");
        assert_eq!(got[0].healed, 2);
        assert_eq!(got[0].last_host, "web2");
        assert_eq!(got[0].verification, ["test -d /etc/app/"]);
        assert_eq!(got[1].healed, 1);
        assert!(got.iter().all(|f| f.os_family == "Debian"));
    }
}
