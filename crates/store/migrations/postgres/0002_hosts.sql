-- Hosts pipeguard has seen through Ansible, with the facts fixes are chosen by.
CREATE TABLE hosts (
    name TEXT PRIMARY KEY,
    os_family TEXT,
    distribution TEXT,
    distribution_version TEXT,
    pkg_mgr TEXT,
    service_mgr TEXT,
    architecture TEXT,
    memtotal_mb BIGINT,
    memfree_mb BIGINT,
    disk_free_mb BIGINT,
    disk_total_mb BIGINT,
    python TEXT,
    facts TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT 'ansible',
    first_seen_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
