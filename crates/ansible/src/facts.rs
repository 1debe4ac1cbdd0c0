//! Host facts (from Ansible's setup module, summarised by the callback plugin) and the
//! commands they imply: which package manager installs, which service manager starts.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostFacts {
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
    /// Free and total inodes of `/` (where the setup module reports them).
    pub inodes_free: Option<i64>,
    pub inodes_total: Option<i64>,
    pub hostname: Option<String>,
    pub kernel: Option<String>,
    pub python: Option<String>,
}

impl HostFacts {
    pub fn from_map(m: &serde_json::Map<String, serde_json::Value>) -> HostFacts {
        serde_json::from_value(serde_json::Value::Object(m.clone())).unwrap_or_default()
    }

    /// Facts as `ansible -m setup` prints them (`{"ansible_facts": {...}}` or the bare
    /// `ansible_*` map), summarised the way the callback plugin summarises them.
    pub fn from_setup(v: &serde_json::Value) -> HostFacts {
        let f = v.get("ansible_facts").unwrap_or(v);
        let text = |k: &str| f.get(k).and_then(|x| x.as_str()).map(String::from);
        let num = |k: &str| f.get(k).and_then(|x| x.as_i64());
        let mounts = f.get("ansible_mounts").and_then(|m| m.as_array());
        let root = mounts.and_then(|m| {
            m.iter()
                .find(|x| x.get("mount").and_then(|p| p.as_str()) == Some("/"))
                .or(m.first())
        });
        let mb = |k: &str| {
            root.and_then(|r| r.get(k))
                .and_then(|x| x.as_i64())
                .map(|b| b / (1024 * 1024))
        };
        HostFacts {
            os_family: text("ansible_os_family"),
            distribution: text("ansible_distribution"),
            distribution_version: text("ansible_distribution_version"),
            pkg_mgr: text("ansible_pkg_mgr"),
            service_mgr: text("ansible_service_mgr"),
            architecture: text("ansible_architecture"),
            memtotal_mb: num("ansible_memtotal_mb"),
            memfree_mb: num("ansible_memfree_mb"),
            disk_free_mb: mb("size_available"),
            disk_total_mb: mb("size_total"),
            inodes_free: root
                .and_then(|r| r.get("inode_available"))
                .and_then(|x| x.as_i64()),
            inodes_total: root
                .and_then(|r| r.get("inode_total"))
                .and_then(|x| x.as_i64()),
            hostname: text("ansible_hostname"),
            kernel: text("ansible_kernel"),
            python: f
                .pointer("/ansible_python/executable")
                .and_then(|x| x.as_str())
                .map(String::from),
        }
    }

    /// One line for people and the analyst: `Debian 12 (Debian family), apt, systemd, 812 MB
    /// memory free, 20480 MB disk free`.
    pub fn summary(&self) -> String {
        let or = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".into());
        let mut s = format!(
            "{} {} ({} family), package manager {}, init {}",
            or(&self.distribution),
            self.distribution_version.as_deref().unwrap_or(""),
            or(&self.os_family),
            or(&self.pkg_mgr),
            or(&self.service_mgr)
        );
        if let Some(m) = self.memfree_mb {
            s.push_str(&format!(", {m} MB memory free"));
        }
        if let Some(d) = self.disk_free_mb {
            s.push_str(&format!(", {d} MB disk free on /"));
        }
        s
    }

    pub fn package_manager(&self) -> PackageManager {
        let by_pkg = match self.pkg_mgr.as_deref() {
            Some("apt") => Some(PackageManager::Apt),
            Some("dnf") | Some("dnf5") => Some(PackageManager::Dnf),
            Some("yum") => Some(PackageManager::Yum),
            Some("apk") => Some(PackageManager::Apk),
            Some("zypper") => Some(PackageManager::Zypper),
            Some("pacman") => Some(PackageManager::Pacman),
            _ => None,
        };
        by_pkg.unwrap_or(match self.os_family.as_deref() {
            Some("Debian") => PackageManager::Apt,
            Some("RedHat") => PackageManager::Dnf,
            Some("Alpine") => PackageManager::Apk,
            Some("Suse") => PackageManager::Zypper,
            Some("Archlinux") => PackageManager::Pacman,
            _ => PackageManager::Unknown,
        })
    }

    pub fn service_manager(&self) -> ServiceManager {
        match self.service_mgr.as_deref() {
            Some("systemd") => ServiceManager::Systemd,
            Some("openrc") => ServiceManager::OpenRc,
            Some("upstart") => ServiceManager::Upstart,
            // sysvinit, "service", container init shims: the LSB `service` wrapper.
            _ => ServiceManager::SysV,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageManager {
    Apt,
    Dnf,
    Yum,
    Apk,
    Zypper,
    Pacman,
    Unknown,
}

fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl PackageManager {
    pub fn install(self, packages: &[String]) -> Option<Vec<String>> {
        let mut c = match self {
            PackageManager::Apt => v(&["apt-get", "install", "-y", "--no-install-recommends"]),
            PackageManager::Dnf => v(&["dnf", "install", "-y"]),
            PackageManager::Yum => v(&["yum", "install", "-y"]),
            PackageManager::Apk => v(&["apk", "add", "--no-cache"]),
            PackageManager::Zypper => v(&["zypper", "--non-interactive", "install"]),
            PackageManager::Pacman => v(&["pacman", "-S", "--noconfirm", "--needed"]),
            PackageManager::Unknown => return None,
        };
        c.extend(packages.iter().cloned());
        Some(c)
    }

    /// Refresh the package index (a stale cache is the usual "package not found").
    pub fn refresh(self) -> Option<Vec<String>> {
        Some(match self {
            PackageManager::Apt => v(&["apt-get", "update"]),
            PackageManager::Dnf => v(&["dnf", "makecache", "--refresh"]),
            PackageManager::Yum => v(&["yum", "makecache"]),
            PackageManager::Apk => v(&["apk", "update"]),
            PackageManager::Zypper => v(&["zypper", "--non-interactive", "refresh"]),
            PackageManager::Pacman => v(&["pacman", "-Sy"]),
            PackageManager::Unknown => return None,
        })
    }

    /// Delete downloaded package files: space that is always safe to take back.
    pub fn clean(self) -> Option<Vec<String>> {
        Some(match self {
            PackageManager::Apt => v(&["apt-get", "clean"]),
            PackageManager::Dnf => v(&["dnf", "clean", "all"]),
            PackageManager::Yum => v(&["yum", "clean", "all"]),
            PackageManager::Apk => v(&["apk", "cache", "clean"]),
            PackageManager::Zypper => v(&["zypper", "--non-interactive", "clean", "--all"]),
            PackageManager::Pacman => v(&["pacman", "-Sc", "--noconfirm"]),
            PackageManager::Unknown => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceManager {
    Systemd,
    OpenRc,
    Upstart,
    SysV,
}

impl ServiceManager {
    pub fn start(self, name: &str) -> Vec<String> {
        match self {
            ServiceManager::Systemd => v(&["systemctl", "start", name]),
            ServiceManager::OpenRc => v(&["rc-service", name, "start"]),
            ServiceManager::Upstart => v(&["initctl", "start", name]),
            ServiceManager::SysV => v(&["service", name, "start"]),
        }
    }

    pub fn status(self, name: &str) -> Vec<String> {
        match self {
            ServiceManager::Systemd => v(&["systemctl", "is-active", name]),
            ServiceManager::OpenRc => v(&["rc-service", name, "status"]),
            ServiceManager::Upstart => v(&["initctl", "status", name]),
            ServiceManager::SysV => v(&["service", name, "status"]),
        }
    }

    /// Clear a failed state so a start is attempted again (systemd's start-limit).
    pub fn reset(self, name: &str) -> Option<Vec<String>> {
        match self {
            ServiceManager::Systemd => Some(v(&["systemctl", "reset-failed", name])),
            _ => None,
        }
    }

    /// Recent log lines of the service, for the diagnosis.
    pub fn logs(self, name: &str) -> Option<Vec<String>> {
        match self {
            ServiceManager::Systemd => {
                Some(v(&["journalctl", "-u", name, "-n", "50", "--no-pager"]))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(os: &str, pkg: Option<&str>, svc: &str) -> HostFacts {
        HostFacts {
            os_family: Some(os.into()),
            pkg_mgr: pkg.map(String::from),
            service_mgr: Some(svc.into()),
            ..HostFacts::default()
        }
    }

    #[test]
    fn commands_follow_the_host() {
        let debian = facts("Debian", Some("apt"), "systemd");
        assert_eq!(
            debian.package_manager().install(&["nginx".into()]).unwrap()[0],
            "apt-get"
        );
        assert_eq!(
            debian.service_manager().start("nginx"),
            ["systemctl", "start", "nginx"]
        );
        let rhel = facts("RedHat", None, "systemd");
        assert_eq!(rhel.package_manager(), PackageManager::Dnf);
        let centos7 = facts("RedHat", Some("yum"), "systemd");
        assert_eq!(
            centos7.package_manager().refresh().unwrap(),
            ["yum", "makecache"]
        );
        let alpine = facts("Alpine", Some("apk"), "openrc");
        assert_eq!(
            alpine.service_manager().start("nginx"),
            ["rc-service", "nginx", "start"]
        );
        assert_eq!(
            alpine.package_manager().clean().unwrap(),
            ["apk", "cache", "clean"]
        );
        let suse = facts("Suse", Some("zypper"), "systemd");
        assert_eq!(
            suse.package_manager().install(&["vim".into()]).unwrap()[0],
            "zypper"
        );
        let container = facts("Debian", Some("apt"), "process_api");
        assert_eq!(
            container.service_manager().start("demo"),
            ["service", "demo", "start"]
        );
        assert_eq!(
            HostFacts::default().package_manager(),
            PackageManager::Unknown
        );
    }
}
