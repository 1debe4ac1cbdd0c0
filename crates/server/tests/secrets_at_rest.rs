//! What a reported log leaves in the database file: a private key or an AWS secret key in
//! the log must not be there in any form, through the real intake and worker.

mod common;

use common::TestApp;
use serde_json::json;

const KEY_BODY: [&str; 3] = [
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW",
    "QyNTUxOQAAACDk3Vbl1RZ2h0ZXN0a2V5Ym9keWxpbmV0d29BAAAAJGJvZHlsaW5ldGhyZW",
    "UAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZWQyNTUxOQAAACDk3Vbl1RZ2h0ZXN0a2",
];
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// Every byte of every file of the database (its WAL included).
fn database_bytes(dir: &std::path::Path) -> String {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("pipeguard.db")
        {
            all.extend(std::fs::read(&p).unwrap());
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test]
async fn private_keys_and_aws_secrets_in_a_log_never_reach_the_database() {
    let app = TestApp::start().await;
    let log = format!(
        "$ cat ~/.ssh/deploy_key\n-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n\
         -----END OPENSSH PRIVATE KEY-----\n$ aws configure list\n\
         access_key     ****************MPLE shared-credentials-file\n\
         AKIAIOSFODNN7EXAMPLE\n{AWS_SECRET}\n\
         git@github.com: Permission denied (publickey).\n\
         fatal: Could not read from remote repository.\n",
        KEY_BODY.join("\n")
    );
    let r = app
        .http
        .post(format!("{}/pipeline/webhook", app.base))
        .json(
            &json!({"source": "jenkins", "repository": "acme/api", "job_name": "deploy",
                      "build_number": 3, "log": log, "error_message": log}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = common::session_id(r).await;
    // Diagnosed (and the job payload consumed) before the files are read.
    app.wait_session(&id, |s| s["category"].is_string()).await;
    let session = app.get(&format!("/api/v1/sessions/{id}")).await;
    let (_github, dir, _) = app.stop().await;

    let raw = database_bytes(dir.path());
    assert!(
        raw.contains("Permission denied (publickey)"),
        "the log is stored"
    );
    for body in KEY_BODY {
        assert!(
            !raw.contains(body),
            "a key body line is in the database file"
        );
    }
    assert!(!raw.contains("END OPENSSH PRIVATE KEY"));
    assert!(
        !raw.contains(AWS_SECRET),
        "the AWS secret key is in the database file"
    );
    assert!(!raw.contains("AKIAIOSFODNN7EXAMPLE"));
    let shown = session.to_string();
    assert!(
        !shown.contains(KEY_BODY[0]) && !shown.contains(AWS_SECRET),
        "{shown}"
    );
}
