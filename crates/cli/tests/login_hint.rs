//! The dashboard's login page tells how to make a token: that very command works.

mod common;

use common::{bin, text};

const PAGE: &str = include_str!("../../server/src/dashboard/assets/index.html");

/// The command inside `<code id="token-command">…</code>`.
fn command_on_the_page() -> Vec<&'static str> {
    let start = PAGE
        .find(r#"<code id="token-command">"#)
        .expect("the login page shows a token command");
    let rest = &PAGE[start..];
    let code = &rest[rest.find('>').unwrap() + 1..rest.find("</code>").unwrap()];
    code.split_whitespace().collect()
}

#[test]
fn the_login_pages_token_command_creates_a_token() {
    let words = command_on_the_page();
    assert_eq!(words.first(), Some(&"pipeguard"), "{words:?}");
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    let out = bin(dir.path())
        .args(&words[1..])
        .env("PIPEGUARD_DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{}` failed: {}",
        words.join(" "),
        text(&out)
    );
    assert!(
        text(&out).contains("pgt_"),
        "no token printed: {}",
        text(&out)
    );
    // The token it made is listed, so the page's command is the one that works.
    let list = bin(dir.path())
        .args(["token", "list"])
        .env("PIPEGUARD_DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(text(&list).contains("you"), "{}", text(&list));
}
