//! What a path is to the host: `/` or a top-level directory, a home, a critical file, a
//! block device, a system path, a service's data. The lists are in filesystem.toml.

use super::tables::{DataDir, Paths};

/// Lexically normalise a path: `//`, `/./`, `..` and trailing slashes, without touching disk.
pub(super) fn normalize(p: &str) -> String {
    if !p.starts_with('/') {
        return p.to_string();
    }
    let mut out: Vec<&str> = vec![];
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

pub(super) fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

pub(super) fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

fn listed(list: &[String], s: &str) -> bool {
    list.iter().any(|x| x == s)
}

/// Whether the normalised path `n` is below `root` (not `root` itself).
fn strictly_below(n: &str, root: &str) -> bool {
    n.strip_prefix(root)
        .is_some_and(|x| x.len() > 1 && x.starts_with('/'))
}

/// Whether the normalised path `n` is one of `roots` or below one.
fn under(roots: &[String], n: &str) -> bool {
    roots.iter().any(|r| {
        n == r
            || n.strip_prefix(r.as_str())
                .is_some_and(|x| x.starts_with('/'))
    })
}

/// A path with its home written as `~` (`$HOME`, `~user`, `/root`, `/home/NAME`).
pub(super) fn is_home(p: &str) -> bool {
    let n = normalize(p);
    p == "~"
        || p == "~/"
        || (p.starts_with("~/") && normalize(&p[1..]) == "/")
        || n == "/root"
        || (n.starts_with("/home/") && n[6..].split('/').filter(|s| !s.is_empty()).count() == 1)
}

impl Paths {
    /// True for `/`, a top-level directory, an essential subdirectory, or a glob reaching them.
    pub fn is_root_or_top(&self, p: &str) -> bool {
        if !p.starts_with('/') {
            return false;
        }
        let n = normalize(p);
        if n == "/" {
            return true;
        }
        let comps: Vec<&str> = n[1..].split('/').collect();
        match comps.as_slice() {
            [one] => listed(&self.top_level, one) || has_glob(one),
            [top, rest] => {
                let everything_in = has_glob(rest) && rest.chars().all(|c| "*?".contains(c));
                ((listed(&self.top_level, top) || has_glob(top)) && everything_in && *top != "tmp")
                    || listed(&self.essential, &n)
            }
            _ => false,
        }
    }

    pub fn is_block_device(&self, p: &str) -> bool {
        let n = normalize(p);
        let Some(dev) = n.strip_prefix("/dev/") else {
            return false;
        };
        self.block_devices
            .iter()
            .any(|pre| dev.starts_with(pre.as_str()))
            || listed(&self.raw_devices, dev)
    }

    pub fn is_harmless_device(&self, p: &str) -> bool {
        let n = normalize(p);
        listed(&self.harmless_devices, &n)
            || n.starts_with("/dev/fd/")
            || n.starts_with("/dev/pts/")
    }

    pub fn is_critical_file(&self, p: &str) -> bool {
        let n = normalize(p);
        listed(&self.critical_files, &n) || n.starts_with("/boot/") || n == "/proc/sysrq-trigger"
    }

    /// Paths whose change is a system change: binaries, libraries, boot, kernel interfaces.
    pub fn is_system_path(&self, p: &str) -> bool {
        if p.starts_with('~') {
            return self.login_files.iter().any(|f| p.ends_with(f.as_str()));
        }
        if !p.starts_with('/') {
            return false;
        }
        let n = normalize(p);
        if n == "/" {
            return true;
        }
        let top = n[1..].split('/').next().unwrap_or("");
        listed(&self.system_tops, top)
            || listed(&self.system_exact, &n)
            || self
                .system_prefixes
                .iter()
                .any(|s| n.starts_with(s.as_str()))
            || self
                .sensitive_etc
                .iter()
                .any(|s| n == *s || n.starts_with(&format!("{s}/")))
            || listed(&self.critical_files, &n)
            || self.login_files.iter().any(|f| n.ends_with(f.as_str()))
    }

    /// A CI job's own place (a checkout, the temporary directory): what is there is the job's.
    pub fn in_workspace(&self, p: &str) -> bool {
        under(&self.workspaces, &normalize(p))
    }

    /// A cache a system tool downloads again (`/var/lib/apt/lists`).
    pub fn is_regenerable(&self, p: &str) -> bool {
        p.starts_with('/') && under(&self.regenerable_paths, &normalize(p))
    }

    /// Why deleting `p` (absolute) recursively loses data, if it does: it is below a place
    /// data lives (`/srv`, `/var/lib`, `/opt/APP`, `/home/USER/…`, mounts, backups) or has a
    /// data directory's name, and is neither a CI workspace nor rebuilt (`node_modules`…).
    pub fn holds_data(&self, p: &str) -> Option<&'static str> {
        let n = normalize(p);
        match self.holds_data_by_place(p) {
            Some(why) => Some(why),
            None if self.plain_data(p) && self.app_roots.iter().any(|r| strictly_below(&n, r)) => {
                Some("an application's or a user's files and data")
            }
            None => None,
        }
    }

    /// Whether deleting `p` may lose data (neither a workspace, nor rebuilt).
    fn plain_data(&self, p: &str) -> bool {
        let n = normalize(p);
        p.starts_with('/')
            && !self.in_workspace(p)
            && !self.is_regenerable(p)
            && !n.split('/').any(|c| listed(&self.regenerable, c))
    }

    /// Like [`Paths::holds_data`] without the places applications are deployed to.
    pub fn holds_data_by_place(&self, p: &str) -> Option<&'static str> {
        if !self.plain_data(p) {
            return None;
        }
        let n = normalize(p);
        let named = |c: &str| {
            listed(
                &self.data_names,
                c.trim_end_matches(|d: char| d.is_ascii_digit()),
            )
        };
        if n.split('/').any(named) {
            return Some("a directory named for the data it holds");
        }
        self.data_roots
            .iter()
            .any(|r| strictly_below(&n, r))
            .then_some("where services, mounts or backups keep their data")
    }

    /// A database file (by its name) outside a CI workspace: emptying or deleting it loses
    /// data.
    pub fn is_db_file(&self, p: &str) -> bool {
        if !p.starts_with('/') || self.in_workspace(p) {
            return false;
        }
        let n = normalize(p);
        let name = basename(&n);
        self.db_files.iter().any(|e| name.ends_with(e.as_str()))
    }

    /// The data directory of a stateful service that `p` is or holds (`true`), or that
    /// holds `p` (`false`).
    pub fn data_dir(&self, p: &str) -> Option<(&DataDir, bool)> {
        let n = normalize(p);
        self.data.iter().find_map(|d| {
            if n == d.path || (d.path.starts_with(&format!("{n}/")) && n.matches('/').count() > 2) {
                Some((d, true))
            } else if n.starts_with(&format!("{}/", d.path)) {
                Some((d, false))
            } else {
                None
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safety::tables::tables;

    #[test]
    fn normalize_collapses_tricks() {
        let t = &tables().expect("tables").paths;
        assert_eq!(normalize("//"), "/");
        assert_eq!(normalize("/bin/.."), "/");
        assert_eq!(normalize("/./etc/"), "/etc");
        assert!(t.is_root_or_top("/*"));
        assert!(t.is_root_or_top("/usr/*"));
        assert!(!t.is_root_or_top("/tmp/*"));
        assert!(!t.is_root_or_top("/var/cache/apt/archives"));
        assert!(t
            .data_dir("/var/lib/postgresql/")
            .is_some_and(|(_, whole)| whole));
        assert!(t
            .data_dir("/var/lib/postgresql/16/main")
            .is_some_and(|(_, whole)| !whole));
        assert!(t.data_dir("/var/lib").is_none());
    }

    #[test]
    fn homes_devices_critical_and_system_paths_are_recognised() {
        let t = &tables().expect("tables").paths;
        for home in [
            "~",
            "~/",
            "~/.",
            "~//",
            "/root",
            "/root/",
            "/home/alice",
            "/home//alice/",
        ] {
            assert!(is_home(home), "{home} is a home");
        }
        for other in ["~/src", "/home", "/home/alice/src", "/rooted"] {
            assert!(!is_home(other), "{other} is not a home");
        }
        // Some entries of a system directory are not all of it.
        assert!(!t.is_root_or_top("/usr/lib*"));
        assert!(t.is_harmless_device("/dev/fd/1"));
        assert!(t.is_harmless_device("/dev/pts/0"));
        assert!(!t.is_harmless_device("/dev/sda"));
        assert!(t.is_critical_file("/proc/sysrq-trigger"));
        assert!(t.is_critical_file("/boot/vmlinuz"));
        // Listed exactly, or a critical file, outside the system top-level directories.
        assert!(t.is_system_path("/var/lib"));
        assert!(t.is_system_path("/etc/hosts"));
        assert!(!t.is_system_path("/var/lib/myapp"));
        // A top-level directory is not the data directory of a service below it.
        assert!(t.data_dir("/var").is_none());
    }

    #[test]
    fn data_places_workspaces_and_database_files() {
        let t = &tables().expect("tables").paths;
        for data in [
            "/data/x",
            "/var/lib/grafana",
            "/pgdata",
            "/opt/app",
            "/home/u/app",
            "/srv/x",
        ] {
            assert!(t.holds_data(data).is_some(), "{data} holds data");
        }
        for not in [
            "/opt",
            "/mnt",
            "/tmp/data",
            "/home/runner/work/a/data",
            "/srv/app/node_modules",
            "/var/lib/apt/lists",
            "build/data",
        ] {
            assert!(
                t.holds_data(not).is_none(),
                "{not} holds no data of its own"
            );
        }
        // Deploys replace what is below /srv, /opt and /home; /var/lib is a service's own.
        assert!(t.holds_data_by_place("/srv/app").is_none());
        assert!(t.holds_data_by_place("/var/lib/grafana").is_some());
        assert!(t.holds_data_by_place("/srv/db").is_some());
        assert!(t.in_workspace("/builds/g/p") && !t.in_workspace("/buildsx"));
        assert!(t.is_regenerable("/var/lib/apt/lists/x") && !t.is_regenerable("lists"));
        assert!(t.is_db_file("/srv/app.db") && t.is_db_file("/var/lib/mysql/ibdata1"));
        assert!(!t.is_db_file("/tmp/app.db") && !t.is_db_file("app.db"));
    }
}
