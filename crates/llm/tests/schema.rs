//! The published schema (`docs/llm-answer.schema.json`) and the Rust validation agree: every
//! sample answer gets the same verdict from both.

use pipeguard_core::Category;
use pipeguard_llm::answer::{MAX_COMMANDS, MAX_COMMAND_CHARS, MAX_ROOT_CAUSE_CHARS, SCHEMA_JSON};
use pipeguard_llm::parse_answer;
use serde_json::{json, Value};

const SCHEMA_FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/llm-answer.schema.json"
);

/// The JSON Schema keywords the file may use; the small validator below implements each.
const KEYWORDS: [&str; 16] = [
    "$schema",
    "title",
    "description",
    "type",
    "required",
    "properties",
    "additionalProperties",
    "enum",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "maxItems",
    "items",
    "minItems",
    "pattern",
];

fn keywords_known(schema: &Value) {
    let Value::Object(obj) = schema else { return };
    for (k, v) in obj {
        assert!(
            KEYWORDS.contains(&k.as_str()),
            "keyword {k} is not checked by this test"
        );
        match k.as_str() {
            "properties" => v.as_object().unwrap().values().for_each(keywords_known),
            "items" => keywords_known(v),
            _ => {}
        }
    }
}

/// A JSON Schema validator for the keywords above.
fn valid(schema: &Value, v: &Value) -> bool {
    let s = |k: &str| schema.get(k);
    let type_ok = match s("type").and_then(Value::as_str) {
        Some("object") => v.is_object(),
        Some("string") => v.is_string(),
        Some("number") => v.is_number(),
        Some("array") => v.is_array(),
        Some(t) => panic!("type {t} not handled"),
        None => true,
    };
    if !type_ok {
        return false;
    }
    if let Some(e) = s("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            return false;
        }
    }
    if let Some(text) = v.as_str() {
        if let Some(p) = s("pattern").and_then(Value::as_str) {
            if !regex::Regex::new(p).unwrap().is_match(text) {
                return false;
            }
        }
        let n = text.chars().count() as u64;
        if s("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
            || s("maxLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| n > m)
        {
            return false;
        }
    }
    if let Some(x) = v.as_f64() {
        if s("minimum").and_then(Value::as_f64).is_some_and(|m| x < m)
            || s("maximum").and_then(Value::as_f64).is_some_and(|m| x > m)
        {
            return false;
        }
    }
    if let Some(items) = v.as_array() {
        let n = items.len() as u64;
        if s("maxItems").and_then(Value::as_u64).is_some_and(|m| n > m)
            || s("minItems").and_then(Value::as_u64).is_some_and(|m| n < m)
        {
            return false;
        }
        if let Some(item_schema) = s("items") {
            if !items.iter().all(|i| valid(item_schema, i)) {
                return false;
            }
        }
    }
    if let Some(obj) = v.as_object() {
        let props = s("properties").and_then(Value::as_object);
        if let Some(req) = s("required").and_then(Value::as_array) {
            if !req.iter().all(|r| obj.contains_key(r.as_str().unwrap())) {
                return false;
            }
        }
        for (k, val) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) if !valid(ps, val) => return false,
                Some(_) => {}
                None if s("additionalProperties") == Some(&Value::Bool(false)) => return false,
                None => {}
            }
        }
    }
    true
}

fn good() -> Value {
    json!({
        "category": "disk_full",
        "root_cause": "The runner's disk filled up while Docker layers were extracted: \"no space left on device\".",
        "confidence": 0.85,
        "diagnostic_commands": ["df -h", "docker system df"],
        "fix_commands": ["docker system prune -af"],
        "verification_commands": ["df -h /var/lib/docker"],
        "rollback_commands": []
    })
}

fn with(field: &str, value: Value) -> Value {
    let mut v = good();
    v[field] = value;
    v
}

fn without(field: &str) -> Value {
    let mut v = good();
    v.as_object_mut().unwrap().remove(field);
    v
}

#[test]
fn the_compiled_schema_is_the_published_file() {
    let file = std::fs::read_to_string(SCHEMA_FILE).unwrap();
    assert_eq!(file, SCHEMA_JSON);
    let schema: Value = serde_json::from_str(&file).unwrap();
    keywords_known(&schema);
}

#[test]
fn the_schema_and_the_validation_agree_on_good_and_bad_answers() {
    let schema: Value = serde_json::from_str(SCHEMA_JSON).unwrap();
    let long_command = "x".repeat(MAX_COMMAND_CHARS + 1);
    let samples: Vec<(Value, bool)> = vec![
        (good(), true),
        (with("confidence", json!(0)), true),
        (with("confidence", json!(1)), true),
        (
            with("root_cause", json!("é".repeat(MAX_ROOT_CAUSE_CHARS))),
            true,
        ),
        (
            with("fix_commands", json!(vec!["true"; MAX_COMMANDS])),
            true,
        ),
        (
            with("fix_commands", json!(["y".repeat(MAX_COMMAND_CHARS)])),
            true,
        ),
        (with("category", json!("unknown")), true),
        (with("category", json!("database")), false),
        (with("category", json!(7)), false),
        (with("confidence", json!(1.01)), false),
        (with("confidence", json!(-0.1)), false),
        (with("confidence", json!("0.5")), false),
        (with("root_cause", json!("")), false),
        (with("root_cause", json!(" \n\t")), false),
        (
            with("root_cause", json!("a".repeat(MAX_ROOT_CAUSE_CHARS + 1))),
            false,
        ),
        (
            with("fix_commands", json!(vec!["true"; MAX_COMMANDS + 1])),
            false,
        ),
        (with("fix_commands", json!([long_command])), false),
        (with("fix_commands", json!([""])), false),
        (with("fix_commands", json!([["nested"]])), false),
        (with("rollback_commands", json!("git revert HEAD")), false),
        (with("extra", json!("field")), false),
        (without("verification_commands"), false),
        (without("category"), false),
        (json!([good()]), false),
    ];
    for (sample, expected) in samples {
        let by_schema = valid(&schema, &sample);
        let by_rust = parse_answer(&sample.to_string()).is_ok();
        assert_eq!(by_schema, expected, "schema on {sample}");
        assert_eq!(by_rust, expected, "validation on {sample}");
    }
}

#[test]
fn the_schema_lists_the_whole_taxonomy() {
    let schema: Value = serde_json::from_str(SCHEMA_JSON).unwrap();
    let listed: Vec<&str> = schema["properties"]["category"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let taxonomy: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(listed, taxonomy);
    let lists = [
        "diagnostic_commands",
        "fix_commands",
        "verification_commands",
        "rollback_commands",
    ];
    for l in lists {
        let p = &schema["properties"][l];
        assert_eq!(p["maxItems"], MAX_COMMANDS as u64, "{l}");
        assert_eq!(p["items"]["maxLength"], MAX_COMMAND_CHARS as u64, "{l}");
    }
    assert_eq!(
        schema["properties"]["root_cause"]["maxLength"],
        MAX_ROOT_CAUSE_CHARS as u64
    );
}
