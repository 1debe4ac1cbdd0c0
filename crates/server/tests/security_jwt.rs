//! JWTs from an OIDC provider (a fake one serving its discovery document and JWKS): a good
//! token works and names the approver; an expired one, one signed with another key, `alg:
//! none`, an HMAC downgrade, the wrong audience or issuer, or no role are refused.

mod common;

use base64::Engine;
use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use pipeguard_server::auth::oidc::OidcConfig;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const AUD: &str = "pipeguard";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A P-256 signing key: its PKCS#8 DER for signing, its public JWK for the provider.
struct Key {
    der: Vec<u8>,
    jwk: Value,
}

fn key(kid: &str) -> Key {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let raw = kp.public_key_raw();
    assert_eq!(raw.len(), 65, "uncompressed P-256 point");
    Key {
        der: kp.serialize_der(),
        jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                    "x": b64(&raw[1..33]), "y": b64(&raw[33..])}),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn token(k: &Key, kid: &str, claims: Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(kid.into());
    encode(&h, &claims, &EncodingKey::from_ec_der(&k.der)).unwrap()
}

fn claims(issuer: &str, sub: &str, role: &str, exp_in: i64) -> Value {
    json!({"iss": issuer, "aud": AUD, "sub": sub, "exp": now() + exp_in, "iat": now(),
           "groups": [role]})
}

async fn provider(keys: &[&Key]) -> MockServer {
    let idp = MockServer::start().await;
    let jwks = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
    Mock::given(method("GET"))
        .and(path("/.well-known/openid-configuration"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({"issuer": idp.uri(), "jwks_uri": format!("{}/keys", idp.uri())}),
            ),
        )
        .mount(&idp)
        .await;
    Mock::given(method("GET"))
        .and(path("/keys"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks))
        .mount(&idp)
        .await;
    idp
}

async fn status_with(app: &TestApp, bearer: &str, p: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}{p}", app.base))
        .bearer_auth(bearer)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn jwts_are_checked_against_the_provider_and_mapped_to_roles() {
    let good = key("k1");
    let stranger = key("k1");
    let idp = provider(&[&good]).await;
    let issuer = idp.uri();
    let app = TestApp::start_with(|c| {
        c.auth.oidc = Some(OidcConfig {
            issuer: issuer.clone(),
            audience: AUD.into(),
            algorithms: vec!["ES256".into()],
            role_claim: "groups".into(),
            roles: [("ci-operators".to_string(), "operator".to_string())].into(),
            ..Default::default()
        })
    })
    .await;
    let op = token(
        &good,
        "k1",
        claims(&issuer, "erin@example.com", "ci-operators", 600),
    );
    assert_eq!(status_with(&app, &op, "/api/v1/sessions").await, 200);
    let me: Value = authenticated(&op)
        .get(format!("{}/api/v1/whoami", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        me,
        json!({"name": "erin@example.com", "role": "operator", "via": "jwt"})
    );
    assert_eq!(
        status_with(&app, &op, "/api/v1/tokens").await,
        403,
        "not an admin"
    );

    let refused = [
        (
            "expired",
            token(&good, "k1", claims(&issuer, "e", "ci-operators", -3600)),
        ),
        (
            "signed with another key",
            token(&stranger, "k1", claims(&issuer, "e", "ci-operators", 600)),
        ),
        ("wrong audience", {
            let mut c = claims(&issuer, "e", "ci-operators", 600);
            c["aud"] = json!("someone-else");
            token(&good, "k1", c)
        }),
        (
            "wrong issuer",
            token(
                &good,
                "k1",
                claims("https://evil.example", "e", "ci-operators", 600),
            ),
        ),
        (
            "no role",
            token(&good, "k1", claims(&issuer, "e", "everyone", 600)),
        ),
        ("alg none", {
            let header = b64(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
            let body = b64(claims(&issuer, "e", "ci-operators", 600)
                .to_string()
                .as_bytes());
            format!("{header}.{body}.")
        }),
        ("HMAC downgrade", {
            // Signed with a shared secret anyone could take from the JWKS.
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some("k1".into());
            let secret = good.jwk["x"].as_str().unwrap().as_bytes().to_vec();
            encode(
                &h,
                &claims(&issuer, "e", "ci-operators", 600),
                &EncodingKey::from_secret(&secret),
            )
            .unwrap()
        }),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (why, t) in refused {
        assert_eq!(
            status_with(&app, &t, "/api/v1/sessions").await,
            401,
            "{why}"
        );
    }
    app.stop().await;
}

/// A provider with `key`, and the app trusting it (ES256, roles named in `groups`).
async fn with_provider(key: &Key) -> (MockServer, String, TestApp) {
    let idp = provider(&[key]).await;
    let issuer = idp.uri();
    let app = TestApp::start_with(|c| {
        c.auth.oidc = Some(OidcConfig {
            issuer: issuer.clone(),
            audience: AUD.into(),
            algorithms: vec!["ES256".into()],
            role_claim: "groups".into(),
            ..Default::default()
        })
    })
    .await;
    (idp, issuer, app)
}

#[tokio::test]
async fn an_approval_made_with_a_jwt_names_its_subject() {
    let good = key("k7");
    let (_idp, issuer, app) = with_provider(&good).await;
    mount_run(
        &app.github,
        91,
        1,
        &[(910, "deploy", "failure", TRANSIENT_LOG)],
    )
    .await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/repos/{REPO}/actions/runs/91/rerun-failed-jobs"
        )))
        .respond_with(ResponseTemplate::new(201))
        .mount(&app.github)
        .await;
    let r = app
        .post_github(
            "workflow_run",
            "j-91",
            &workflow_run(91, 1, "failure", "Deploy"),
        )
        .await;
    let id = session_id(r).await;
    app.wait_status(&id, "awaiting_approval").await;
    let jwt = token(&good, "k7", claims(&issuer, "frank", "operator", 600));
    let r = authenticated(&jwt)
        .post(format!("{}/api/v1/sessions/{id}/approve", app.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let s = app.wait_status(&id, "verifying").await;
    assert!(
        s["timeline"].to_string().contains("approved by frank"),
        "{}",
        s["timeline"]
    );
    app.stop().await;
}

#[tokio::test]
async fn not_before_critical_extensions_and_size_are_checked() {
    let good = key("k2");
    // The default leeway: 30 s.
    let (_idp, issuer, app) = with_provider(&good).await;
    let admin = |nbf_in: i64| {
        let mut c = claims(&issuer, "mallory", "admin", 7200);
        c["nbf"] = json!(now() + nbf_in);
        c
    };
    // Within the leeway a clock a little ahead is forgiven; an hour ahead is not.
    let soon = token(&good, "k2", admin(10));
    assert_eq!(status_with(&app, &soon, "/api/v1/tokens").await, 200);
    let later = token(&good, "k2", admin(3600));
    let crit = {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some("k2".into());
        h.crit = Some(vec!["exp".into()]);
        encode(&h, &admin(0), &EncodingKey::from_ec_der(&good.der)).unwrap()
    };
    let big = {
        let mut c = admin(0);
        c["pad"] = json!("x".repeat(20_000));
        token(&good, "k2", c)
    };
    for (why, t, says) in [
        ("nbf an hour ahead", later, "ImmatureSignature"),
        ("a crit header", crit, "critical"),
        ("a 27 KB token", big, "8192 bytes"),
    ] {
        let r = authenticated(&t)
            .get(format!("{}/api/v1/tokens", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{why}");
        let v: Value = r.json().await.unwrap();
        assert!(v["message"].as_str().unwrap().contains(says), "{why}: {v}");
    }
    app.stop().await;
}
