//! `/openapi.json` against the live server: served without a credential, and what the real
//! handlers answer has the shapes the document gives them (every field described, with its
//! type; the document names that shape for the route and status).

mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Map, Value};

/// The schema the document gives `method path` for `status`.
fn documented(doc: &Value, method: &str, path: &str, status: u16) -> String {
    let r = &doc["paths"][path][method]["responses"][status.to_string()];
    let schema = &r["content"]["application/json"]["schema"]["$ref"];
    schema
        .as_str()
        .unwrap_or_else(|| panic!("{method} {path} {status} has no JSON schema: {r}"))
        .trim_start_matches("#/components/schemas/")
        .to_string()
}

/// `name`'s schema in the document.
fn named<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let s = &doc["components"]["schemas"][name];
    assert!(s.is_object(), "the document has no schema {name}");
    s
}

/// The schema itself, behind any `$ref`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => resolve(
            doc,
            named(doc, r.trim_start_matches("#/components/schemas/")),
        ),
        None => schema,
    }
}

/// The properties and required fields of an object schema, its `allOf` parts merged.
fn fields(doc: &Value, schema: &Value, props: &mut Map<String, Value>, required: &mut Vec<Value>) {
    let schema = resolve(doc, schema);
    for part in schema["allOf"].as_array().into_iter().flatten() {
        fields(doc, part, props, required);
    }
    if let Some(p) = schema["properties"].as_object() {
        props.extend(p.clone());
    }
    required.extend(schema["required"].as_array().cloned().unwrap_or_default());
}

fn has_type(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}

/// Whether `v` is what `schema` describes: every field it sends is described, with its type,
/// and every required field is there.
fn conforms(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if let Some(any) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        return match any.iter().any(|s| conforms(doc, s, v, at).is_ok()) {
            true => Ok(()),
            false => Err(format!("{at}: {v} is none of {any:?}")),
        };
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.iter().any(|t| has_type(t, v)) {
        return Err(format!("{at}: {v} is not {types:?}"));
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(v) {
            return Err(format!("{at}: {v} is not one of {allowed:?}"));
        }
    }
    if let Some(items) = v.as_array() {
        for (i, item) in items.iter().enumerate() {
            conforms(doc, &schema["items"], item, &format!("{at}[{i}]"))?;
        }
    }
    let Some(obj) = v.as_object() else {
        return Ok(());
    };
    if schema["additionalProperties"].is_object() {
        for (k, item) in obj {
            conforms(
                doc,
                &schema["additionalProperties"],
                item,
                &format!("{at}.{k}"),
            )?;
        }
        return Ok(());
    }
    let (mut props, mut required) = (Map::new(), Vec::new());
    fields(doc, schema, &mut props, &mut required);
    if props.is_empty() {
        return Ok(()); // a free-form object
    }
    for (k, item) in obj {
        let p = props
            .get(k)
            .ok_or_else(|| format!("{at}.{k} is not described"))?;
        conforms(doc, p, item, &format!("{at}.{k}"))?;
    }
    for r in required.iter().filter_map(Value::as_str) {
        if !obj.contains_key(r) {
            return Err(format!("{at}.{r} is required but missing"));
        }
    }
    Ok(())
}

/// Calls the route, checks the status, that the document names `name` for it, and that the
/// answer is what that schema describes.
async fn check(
    app: &TestApp,
    doc: &Value,
    name: &str,
    (method, path, url): (Method, &str, &str),
    body: Option<Value>,
    status: u16,
) -> Value {
    let mut req = app
        .http
        .request(method.clone(), format!("{}{url}", app.base));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), status, "{method} {url}");
    let v: Value = resp.json().await.unwrap();
    let method = method.as_str().to_ascii_lowercase();
    assert_eq!(
        documented(doc, &method, path, status),
        name,
        "{method} {path}"
    );
    if let Err(e) = conforms(doc, named(doc, name), &v, name) {
        panic!("{method} {url} answered what the document does not describe: {e}\n{v:#}");
    }
    v
}

/// The checker refuses what the document does not describe, so the test above can fail.
#[test]
fn the_checker_refuses_undescribed_fields_and_wrong_types() {
    let doc = json!({"components": {"schemas": {
        "A": {"type": "object", "required": ["n"], "properties": {
            "n": {"type": "integer"},
            "b": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/B"}]}}},
        "B": {"type": "object", "properties": {"s": {"type": ["string", "null"]}}},
    }}});
    let a = named(&doc, "A");
    assert!(conforms(&doc, a, &json!({"n": 1, "b": {"s": null}}), "A").is_ok());
    assert!(conforms(&doc, a, &json!({"n": 1, "b": null}), "A").is_ok());
    assert!(conforms(&doc, a, &json!({"n": 1, "extra": 2}), "A").is_err());
    assert!(conforms(&doc, a, &json!({"n": "1"}), "A").is_err());
    assert!(conforms(&doc, a, &json!({"b": null}), "A").is_err());
    assert!(conforms(&doc, a, &json!({"n": 1, "b": {"s": 3}}), "A").is_err());
}

#[tokio::test]
async fn the_document_is_open_and_the_handlers_answer_its_shapes() {
    let app = TestApp::start().await;
    let resp = reqwest::get(format!("{}/openapi.json", app.base))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "served without a credential");
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    // A session whose deploy plan waits for approval gives the session routes content.
    let run = 4242;
    mount_run(
        &app.github,
        run,
        1,
        &[(run * 10, "deploy", "failure", TRANSIENT_LOG)],
    )
    .await;
    let r = app
        .post_github(
            "workflow_run",
            "d-openapi",
            &workflow_run(run, 1, "failure", "Deploy"),
        )
        .await;
    assert_eq!(r.status(), 202);
    let answer: Value = r.json().await.unwrap();
    if let Err(e) = conforms(&doc, named(&doc, "WebhookAnswer"), &answer, "WebhookAnswer") {
        panic!("the delivery's answer is not what the document describes: {e}");
    }
    let id = session_id_in(&answer);
    app.wait_status(&id, "awaiting_approval").await;

    let ok = async |name: &str, path: &str| {
        check(&app, &doc, name, (Method::GET, path, path), None, 200).await
    };
    ok("Health", "/healthz").await;
    ok("Health", "/readyz").await;
    ok("DeadLetters", "/api/v1/dead-letters").await;
    ok("PipelineStatus", "/pipeline/status").await;
    let h = ok("HealingHistory", "/pipeline/healing/history").await;
    assert_eq!(h["healing_history"][0]["id"], id.as_str());
    let list = ok("SessionList", "/api/v1/sessions").await;
    assert_eq!(list["sessions"][0]["id"], id.as_str());
    let mut fields: Vec<&str> = list["sessions"][0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    let always = [
        "baseline",
        "category",
        "confidence",
        "created_at",
        "current_run",
        "evidence",
        "fingerprint",
        "first_attempt",
        "head_sha",
        "heal_attempts",
        "id",
        "incident_id",
        "platform",
        "purged_at",
        "reason",
        "repository",
        "run",
        "run_attempt",
        "run_label",
        "status",
        "strategy",
        "time_to_green_ms",
        "updated_at",
        "url",
        "workflow",
    ];
    assert_eq!(fields, always, "a session's fields are a contract");
    let url = format!("/api/v1/sessions/{id}");
    let one = (Method::GET, "/api/v1/sessions/{id}", url.as_str());
    let s = check(&app, &doc, "SessionDetail", one, None, 200).await;
    assert!(s["plan"].is_object() && s["diagnosis"].is_object(), "{s:#}");
    let waiting = ok("ApprovalList", "/api/v1/approvals").await;
    assert_eq!(waiting["approvals"][0]["session"]["id"], id.as_str());
    ok("Stats", "/api/v1/stats").await;
    ok("DailyStats", "/api/v1/stats/daily").await;
    ok("FlakyTests", "/api/v1/flaky-tests").await;
    ok("Whoami", "/api/v1/whoami").await;

    let url = format!("/api/v1/sessions/{id}/verdict");
    let verdict = (Method::POST, "/api/v1/sessions/{id}/verdict", url.as_str());
    let body = json!({"category": "network", "note": "the registry was down"});
    check(&app, &doc, "Verdict", verdict, Some(body), 201).await;
    let url = format!("/api/v1/sessions/{id}/reject");
    let reject = (Method::POST, "/api/v1/sessions/{id}/reject", url.as_str());
    check(
        &app,
        &doc,
        "Rejected",
        reject,
        Some(json!({"comment": "not now"})),
        200,
    )
    .await;
    let url = format!("/api/v1/sessions/{id}/approve");
    let approve = (Method::POST, "/api/v1/sessions/{id}/approve", url.as_str());
    check(&app, &doc, "ErrorBody", approve, Some(json!({})), 409).await;

    let trigger = (
        Method::POST,
        "/pipeline/test/trigger",
        "/pipeline/test/trigger",
    );
    let body = json!({"error_message": "npm ERR! network ECONNRESET"});
    check(&app, &doc, "TriggerResult", trigger, Some(body), 200).await;

    let q = (Method::POST, "/api/v1/quarantine", "/api/v1/quarantine");
    let body = json!({"repository": REPO, "test": "tests::flaky", "reason": "flaky"});
    check(&app, &doc, "QuarantineEntry", q, Some(body), 201).await;
    ok("QuarantineList", "/api/v1/quarantine").await;
    let url = format!("/api/v1/quarantine?repository={REPO}&test=tests::flaky");
    let lift = (Method::DELETE, "/api/v1/quarantine", url.as_str());
    check(&app, &doc, "QuarantineRemoved", lift, None, 200).await;

    let tokens = (Method::POST, "/api/v1/tokens", "/api/v1/tokens");
    let body = json!({"name": "reader", "role": "viewer"});
    check(&app, &doc, "TokenCreated", tokens, Some(body), 201).await;
    ok("TokenList", "/api/v1/tokens").await;
    let revoke = (
        Method::DELETE,
        "/api/v1/tokens/{name}",
        "/api/v1/tokens/reader",
    );
    check(&app, &doc, "TokenRevoked", revoke, None, 200).await;
    let audit = (Method::GET, "/api/v1/audit", "/api/v1/audit?verify=true");
    let trail = check(&app, &doc, "AuditPage", audit, None, 200).await;
    assert!(
        trail["entries"].as_array().is_some_and(|e| !e.is_empty()),
        "{trail:#}"
    );

    // Errors: the documented JSON body, whichever layer answers.
    let missing = (
        Method::GET,
        "/api/v1/sessions/{id}",
        "/api/v1/sessions/nope",
    );
    check(&app, &doc, "ErrorBody", missing, None, 404).await;
    let bad = (
        Method::GET,
        "/api/v1/sessions",
        "/api/v1/sessions?status=bogus",
    );
    check(&app, &doc, "ErrorBody", bad, None, 400).await;
    app.stop().await;
}
