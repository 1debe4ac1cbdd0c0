//! Helpers of the CLI tests that run the binary.
#![allow(dead_code)]

pub mod history;

use std::path::Path;
use std::process::{Command, Output};

/// The binary, run in `dir` (so no ./pipeguard.toml leaks in), without the caller's
/// `PIPEGUARD_*` and `RUST_LOG` settings.
pub fn bin(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pipeguard"));
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("PIPEGUARD_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c
}

/// Standard output then standard error.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `pipeguard serve` on a free port with a SQLite database in `dir`; killed when dropped.
pub struct Served {
    child: std::process::Child,
    pub base: String,
    pub db: String,
}

impl Served {
    pub fn start(dir: &Path) -> Served {
        Served::start_with(dir, &[], &[])
    }

    /// As [`Served::start`], with more arguments to `serve` and more environment.
    pub fn start_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Served {
        let port = free_port();
        let db = format!("sqlite://{}", dir.join("p.db").display());
        let child = bin(dir)
            .arg("serve")
            .args(args)
            .env("PIPEGUARD_LISTEN", format!("127.0.0.1:{port}"))
            .env("PIPEGUARD_DATABASE_URL", &db)
            .env("RUST_LOG", "error")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Owned at once, so the process is killed and waited for even when it never listens.
        let served = Served {
            child,
            base: format!("http://127.0.0.1:{port}"),
            db,
        };
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return served;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("the server did not start");
    }

    /// A token with `role`, made by `pipeguard token create` on the server's database.
    pub fn token(&self, dir: &Path, role: &str) -> String {
        let o = bin(dir)
            .args(["token", "create", "--role", role, "--name", role])
            .env("PIPEGUARD_DATABASE_URL", &self.db)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
