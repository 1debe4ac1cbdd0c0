//! Each platform's check: the webhook secret and credential are set, the API accepts the
//! credential, and the credential may do what healing needs (read logs, re-run).

use super::{Finding, Level};
use pipeguard_core::event::Platform;
use pipeguard_platforms::api::HttpOptions;
use pipeguard_platforms::github;
use pipeguard_platforms::registry::module;
use pipeguard_platforms::settings::Section;
use pipeguard_platforms::ProbeAuth;
use pipeguard_server::config::Config;
use reqwest::{Client, RequestBuilder, Response};
use serde_json::Value;

/// Scopes each platform's token needs, where the API tells a token's scopes.
const GITHUB_CLASSIC_SCOPES: &[&str] = &["repo"];
const GITLAB_SCOPES: &[&str] = &["api"];
const BUILDKITE_SCOPES: &[&str] = &["read_builds", "read_build_logs", "write_builds"];

pub async fn check(http: &Client, config: &Config, p: Platform, s: &Section) -> Vec<Finding> {
    let Some(m) = module(p) else {
        return vec![];
    };
    let spec = m.section();
    let name = spec.key;
    let env = format!("PIPEGUARD_{}", name.to_ascii_uppercase());
    let mut out = vec![secret_finding(config, name, &env, s)];
    let Some(credential) = spec.credential else {
        return out;
    };
    if s.api_url.is_empty() {
        out.push(Finding::new(
            Level::Missing,
            name,
            format!("no api_url: set [{name}] api_url or {env}_API_URL"),
        ));
        return out;
    }
    if p == Platform::Github && (s.app_id.is_some() || s.private_key_file.is_some()) {
        out.extend(
            github_app(s)
                .await
                .into_iter()
                .map(|(level, detail)| Finding {
                    level,
                    what: name.to_string(),
                    detail,
                }),
        );
        return out;
    }
    let Some(token) = s.token.as_deref() else {
        out.push(Finding::new(
            Level::Missing,
            name,
            format!(
                "no {credential}: logs cannot be read and nothing can be re-run (set {env}_{})",
                credential.to_ascii_uppercase()
            ),
        ));
        return out;
    };
    if spec.user && s.user.is_none() {
        out.push(Finding::new(
            Level::Missing,
            name,
            format!("no user to go with the {credential} (set {env}_USER)"),
        ));
        return out;
    }
    let api = s.api_url.trim_end_matches('/');
    let found = match p {
        Platform::Github => github(http, config, api, token).await,
        Platform::Gitlab => gitlab(http, api, token).await,
        Platform::Jenkins => jenkins(http, api, s.user.as_deref().unwrap_or(""), token).await,
        Platform::Circleci => circleci(http, api, token).await,
        Platform::Buildkite => buildkite(http, api, token).await,
        _ => probe(http, &m.setup(), api, s).await,
    };
    out.extend(found.into_iter().map(|(level, detail)| Finding {
        level,
        what: name.to_string(),
        detail,
    }));
    out
}

fn secret_finding(config: &Config, name: &str, env: &str, s: &Section) -> Finding {
    if s.webhook_secret.is_some() {
        return Finding::new(Level::Ok, name, "webhook secret set");
    }
    // The server refuses to start like this beyond loopback (see `serve`).
    let exposed = !pipeguard_server::state::is_loopback(&config.listen) && !s.allow_unsigned;
    let level = if exposed { Level::Missing } else { Level::Warn };
    Finding::new(
        level,
        name,
        format!("no webhook secret: deliveries are accepted unsigned (set {env}_WEBHOOK_SECRET)"),
    )
}

type Found = Vec<(Level, String)>;

/// What an answer outside 2xx means.
async fn refused(r: Response, what: &str) -> (Level, String) {
    let status = r.status();
    let body: String = r
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    let why = match status.as_u16() {
        401 => "the credential was refused",
        403 => "the credential may not do this",
        _ => "unexpected answer",
    };
    (Level::Missing, format!("{what}: {status}, {why} {body}"))
}

/// Sends `req`; an error or an answer outside 2xx becomes a finding.
async fn send(req: RequestBuilder, what: &str) -> Result<Response, (Level, String)> {
    match req.send().await {
        Ok(r) if r.status().is_success() => Ok(r),
        Ok(r) => Err(refused(r, what).await),
        Err(e) => Err((Level::Missing, format!("{what}: cannot reach it: {e}"))),
    }
}

fn lacking(has: &[String], needs: &[&str]) -> Vec<String> {
    needs
        .iter()
        .filter(|n| !has.iter().any(|h| h == *n))
        .map(|n| n.to_string())
        .collect()
}

/// The `scopes` list of a token description (GitLab, Buildkite).
async fn scopes(r: Response) -> Vec<String> {
    let v: Value = r.json().await.unwrap_or_default();
    v["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

fn scopes_finding(kind: &str, has: &[String], needs: &[&str]) -> (Level, String) {
    let missing = lacking(has, needs);
    if missing.is_empty() {
        (Level::Ok, format!("{kind} scopes: {}", has.join(", ")))
    } else {
        (
            Level::Missing,
            format!(
                "{kind} lacks the {} scope(s) (has: {})",
                missing.join(", "),
                if has.is_empty() {
                    "none".to_string()
                } else {
                    has.join(", ")
                }
            ),
        )
    }
}

/// GitHub: `GET /user` says whose token it is and, for a classic token, its scopes in
/// `X-OAuth-Scopes`; each configured repository's `permissions` say whether it may re-run.
async fn github(http: &Client, config: &Config, api: &str, token: &str) -> Found {
    let gh = |path: &str| {
        http.get(format!("{api}{path}"))
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    };
    let mut out = Found::new();
    match gh("/user").send().await {
        Ok(r) if r.status().is_success() => {
            let scopes = r
                .headers()
                .get("x-oauth-scopes")
                .and_then(|v| v.to_str().ok())
                .map(|v| {
                    v.split(',')
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty())
                        .collect::<Vec<_>>()
                });
            let login = r.json::<Value>().await.unwrap_or_default()["login"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            out.push((Level::Ok, format!("token of {login}")));
            match scopes {
                Some(has) => out.push(scopes_finding("classic token", &has, GITHUB_CLASSIC_SCOPES)),
                None => out.push((
                    Level::Ok,
                    "fine-grained token: needs Actions read and write on each repository".into(),
                )),
            }
        }
        // An app installation token may not read /user; its repositories say more.
        Ok(r) if r.status().as_u16() == 403 => {
            out.push((Level::Ok, "app installation token".into()));
        }
        Ok(r) => {
            out.push(refused(r, "GET /user").await);
            return out;
        }
        Err(e) => {
            out.push((
                Level::Missing,
                format!("GET {api}/user: cannot reach it: {e}"),
            ));
            return out;
        }
    }
    for repo in named_repos(config, Platform::Github) {
        let path = format!("/repos/{repo}");
        match send(gh(&path), &format!("GET {path}")).await {
            Ok(r) => {
                let v: Value = r.json().await.unwrap_or_default();
                let push = v["permissions"]["push"].as_bool();
                out.push(match push {
                    Some(false) => (
                        Level::Missing,
                        format!("{repo}: read-only access; re-runs need write (Actions: write)"),
                    ),
                    _ => (Level::Ok, format!("{repo}: visible, may re-run")),
                });
            }
            Err(f) => out.push(f),
        }
    }
    out
}

/// A GitHub App: its key signs a JWT GitHub accepts (`GET /app`), and the app's
/// `permissions` include what healing and check runs need.
async fn github_app(s: &Section) -> Found {
    let app = match github::configured_app(s, &HttpOptions::default()) {
        Ok(Some(app)) => app,
        Ok(None) => return vec![],
        Err(e) => return vec![(Level::Missing, e)],
    };
    let v = match app.describe().await {
        Ok(v) => v,
        Err(e) => {
            return vec![(
                Level::Missing,
                format!("GET /app with the app's JWT (app_id and private key): {e}"),
            )]
        }
    };
    let name = v["name"].as_str().unwrap_or("?");
    let mut out = vec![(Level::Ok, format!("GitHub App {name}"))];
    let missing = github::missing_permissions(&v["permissions"]);
    out.push(if missing.is_empty() {
        (Level::Ok, "app permissions: actions write, checks write, contents read, pull_requests read".into())
    } else {
        (
            Level::Missing,
            format!(
                "the app lacks permission(s) {} (the app's settings > Permissions, then accept them on each installation)",
                missing.join(", ")
            ),
        )
    });
    out
}

/// Repositories of `p` named in `[[repos]]` without a wildcard.
fn named_repos(config: &Config, p: Platform) -> Vec<String> {
    config
        .repos
        .iter()
        .filter(|r| r.platform() == Some(p) && !r.name.contains('*'))
        .map(|r| r.name.clone())
        .collect()
}

/// GitLab: `GET /api/v4/user`, then the token's own scopes from
/// `GET /api/v4/personal_access_tokens/self` (retrying jobs needs `api`).
async fn gitlab(http: &Client, api: &str, token: &str) -> Found {
    let gl = |path: &str| {
        http.get(format!("{api}/api/v4{path}"))
            .header("PRIVATE-TOKEN", token)
    };
    let user = match send(gl("/user"), "GET /api/v4/user").await {
        Ok(r) => r.json::<Value>().await.unwrap_or_default(),
        Err(f) => return vec![f],
    };
    let mut out = vec![(
        Level::Ok,
        format!("token of {}", user["username"].as_str().unwrap_or("?")),
    )];
    match send(
        gl("/personal_access_tokens/self"),
        "GET /personal_access_tokens/self",
    )
    .await
    {
        Ok(r) => {
            let has = scopes(r).await;
            out.push(scopes_finding("token", &has, GITLAB_SCOPES));
        }
        Err((_, why)) => out.push((
            Level::Warn,
            format!("cannot read the token's scopes ({why}); it needs the api scope"),
        )),
    }
    out
}

/// Jenkins: `GET /api/json` as the configured user.
async fn jenkins(http: &Client, api: &str, user: &str, token: &str) -> Found {
    let req = http
        .get(format!("{api}/api/json"))
        .basic_auth(user, Some(token));
    match send(req, "GET /api/json").await {
        Ok(r) => {
            let version = r
                .headers()
                .get("x-jenkins")
                .and_then(|v| v.to_str().ok())
                .map(|v| format!(" (Jenkins {v})"))
                .unwrap_or_default();
            vec![(Level::Ok, format!("{user} can read the server{version}"))]
        }
        Err(f) => vec![f],
    }
}

/// CircleCI: `GET /api/v2/me`.
async fn circleci(http: &Client, api: &str, token: &str) -> Found {
    let req = http
        .get(format!("{api}/api/v2/me"))
        .header("Circle-Token", token);
    match send(req, "GET /api/v2/me").await {
        Ok(r) => {
            let v: Value = r.json().await.unwrap_or_default();
            vec![(
                Level::Ok,
                format!("token of {}", v["login"].as_str().unwrap_or("?")),
            )]
        }
        Err(f) => vec![f],
    }
}

/// Buildkite: `GET /v2/access-token` lists the token's scopes.
async fn buildkite(http: &Client, api: &str, token: &str) -> Found {
    let req = http
        .get(format!("{api}/v2/access-token"))
        .bearer_auth(token);
    match send(req, "GET /v2/access-token").await {
        Ok(r) => {
            let has = scopes(r).await;
            vec![scopes_finding("token", &has, BUILDKITE_SCOPES)]
        }
        Err(f) => vec![f],
    }
}

/// The other platforms: the cheap authenticated GET their module names.
async fn probe(http: &Client, setup: &pipeguard_platforms::Setup, api: &str, s: &Section) -> Found {
    let Some(pr) = setup.probe else {
        return vec![];
    };
    let token = s.token.as_deref().unwrap_or("");
    let req = http.get(format!("{api}{}", pr.path));
    let req = match pr.auth {
        ProbeAuth::Bearer => req.bearer_auth(token),
        ProbeAuth::Basic => req.basic_auth(s.user.as_deref().unwrap_or(""), Some(token)),
        ProbeAuth::BasicTokenOnly => req.basic_auth("", Some(token)),
    };
    let what = format!("GET {}", pr.path);
    match req.send().await {
        Ok(r) if r.status().is_success() => {
            vec![(Level::Ok, "the API accepts the credential".into())]
        }
        Ok(r) if matches!(r.status().as_u16(), 401 | 403) => vec![refused(r, &what).await],
        // The root may need more than the credential (Azure DevOps wants the organization).
        Ok(r) => vec![(
            Level::Warn,
            format!(
                "{what}: {}, the credential could not be checked",
                r.status()
            ),
        )],
        Err(e) => vec![(Level::Missing, format!("{what}: cannot reach it: {e}"))],
    }
}
