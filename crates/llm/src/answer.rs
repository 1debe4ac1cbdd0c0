//! The answer a model must give (`docs/llm-answer.schema.json`) and its validation.
//!
//! The schema file is compiled in and sent as the structured-output schema; [`parse_answer`]
//! enforces the same constraints whatever the endpoint did with it.

use pipeguard_core::Category;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The published schema, as in `docs/llm-answer.schema.json`.
pub const SCHEMA_JSON: &str = include_str!("../../../docs/llm-answer.schema.json");
/// Longest root cause, in characters.
pub const MAX_ROOT_CAUSE_CHARS: usize = 1500;
/// Most commands in one list.
pub const MAX_COMMANDS: usize = 5;
/// Longest command, in characters.
pub const MAX_COMMAND_CHARS: usize = 500;

/// The command lists of an answer, by field name.
pub const COMMAND_FIELDS: [&str; 4] = [
    "diagnostic_commands",
    "fix_commands",
    "verification_commands",
    "rollback_commands",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub category: Category,
    pub root_cause: String,
    pub confidence: f64,
    pub diagnostic_commands: Vec<String>,
    pub fix_commands: Vec<String>,
    pub verification_commands: Vec<String>,
    pub rollback_commands: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnswerError {
    #[error("{0}")]
    Invalid(String),
    #[error("unknown category {0:?}")]
    UnknownCategory(String),
}

fn invalid(msg: impl Into<String>) -> AnswerError {
    AnswerError::Invalid(msg.into())
}

/// The answer without a Markdown fence around it.
fn unfenced(content: &str) -> &str {
    let t = content.trim();
    match t.strip_prefix("```") {
        Some(rest) => {
            let rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric());
            rest.trim_end().strip_suffix("```").unwrap_or(rest).trim()
        }
        None => t,
    }
}

/// The object inside prose some models add even when asked not to.
fn embedded_object(text: &str) -> &str {
    match (text.find('{'), text.rfind('}')) {
        (Some(a), Some(b)) if a < b => &text[a..=b],
        _ => text,
    }
}

/// Parses and validates a model's answer.
pub fn parse_answer(content: &str) -> Result<Answer, AnswerError> {
    let text = unfenced(content);
    if text.is_empty() {
        return Err(invalid("empty answer"));
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => serde_json::from_str(embedded_object(text))
            .map_err(|_| invalid(format!("not JSON ({e})")))?,
    };
    let Value::Object(obj) = value else {
        return Err(invalid("not a JSON object"));
    };
    validate(&obj)
}

fn validate(obj: &Map<String, Value>) -> Result<Answer, AnswerError> {
    let known = ["category", "root_cause", "confidence"];
    if let Some(extra) = obj
        .keys()
        .find(|k| !known.contains(&k.as_str()) && !COMMAND_FIELDS.contains(&k.as_str()))
    {
        return Err(invalid(format!("unexpected field {extra:?}")));
    }
    let category = match obj.get("category") {
        Some(Value::String(s)) => s
            .trim()
            .parse::<Category>()
            .map_err(|_| AnswerError::UnknownCategory(s.clone()))?,
        Some(_) => return Err(invalid("category is not a string")),
        None => return Err(invalid("category is missing")),
    };
    let root_cause = match obj.get("root_cause") {
        Some(Value::String(s)) if s.trim().is_empty() => {
            return Err(invalid("root_cause is empty"))
        }
        Some(Value::String(s)) if s.chars().count() > MAX_ROOT_CAUSE_CHARS => {
            return Err(invalid(format!(
                "root_cause is longer than {MAX_ROOT_CAUSE_CHARS} characters"
            )))
        }
        Some(Value::String(s)) => s.trim().to_string(),
        Some(_) => return Err(invalid("root_cause is not a string")),
        None => return Err(invalid("root_cause is missing")),
    };
    let confidence = match obj.get("confidence") {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(_) => return Err(invalid("confidence is not a number")),
        None => return Err(invalid("confidence is missing")),
    };
    if !(0.0..=1.0).contains(&confidence) {
        return Err(invalid("confidence is not between 0 and 1"));
    }
    let mut lists = COMMAND_FIELDS.iter().map(|f| commands(obj, f));
    let mut next = || lists.next().expect("four command fields");
    Ok(Answer {
        category,
        root_cause,
        confidence,
        diagnostic_commands: next()?,
        fix_commands: next()?,
        verification_commands: next()?,
        rollback_commands: next()?,
    })
}

fn commands(obj: &Map<String, Value>, field: &str) -> Result<Vec<String>, AnswerError> {
    let Some(v) = obj.get(field) else {
        return Err(invalid(format!("{field} is missing")));
    };
    let Value::Array(items) = v else {
        return Err(invalid(format!("{field} is not a list")));
    };
    if items.len() > MAX_COMMANDS {
        return Err(invalid(format!(
            "{field} has more than {MAX_COMMANDS} commands"
        )));
    }
    items
        .iter()
        .map(|item| match item {
            Value::String(s) if s.is_empty() => {
                Err(invalid(format!("{field} has an empty command")))
            }
            Value::String(s) if s.chars().count() > MAX_COMMAND_CHARS => Err(invalid(format!(
                "{field} has a command longer than {MAX_COMMAND_CHARS} characters"
            ))),
            Value::String(s) => Ok(s.clone()),
            _ => Err(invalid(format!(
                "{field} has a command that is not a string"
            ))),
        })
        .collect()
}

/// The schema as sent in `response_format`: without the keywords strict structured-output
/// modes reject (`$schema`, `title`, string lengths). [`parse_answer`] still checks them.
pub fn wire_schema() -> Value {
    let mut schema: Value = serde_json::from_str(SCHEMA_JSON).expect("the answer schema is JSON");
    if let Value::Object(top) = &mut schema {
        top.remove("$schema");
        top.remove("title");
    }
    strip_lengths(&mut schema);
    schema
}

fn strip_lengths(schema: &mut Value) {
    let Value::Object(obj) = schema else { return };
    obj.remove("minLength");
    obj.remove("maxLength");
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        props.values_mut().for_each(strip_lengths);
    }
    if let Some(items) = obj.get_mut("items") {
        strip_lengths(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"category":"network","root_cause":"The runner could not resolve registry.npmjs.org.","confidence":0.8,
        "diagnostic_commands":["getent hosts registry.npmjs.org"],"fix_commands":[],"verification_commands":["npm ping"],"rollback_commands":[]}"#;

    #[test]
    fn a_good_answer_parses_also_inside_a_fence_or_prose() {
        let a = parse_answer(GOOD).unwrap();
        assert_eq!(a.category, Category::Network);
        assert_eq!(
            a.diagnostic_commands,
            vec!["getent hosts registry.npmjs.org"]
        );
        assert_eq!(parse_answer(&format!("```json\n{GOOD}\n```")).unwrap(), a);
        assert_eq!(
            parse_answer(&format!("Here it is:\n{GOOD}\nThanks")).unwrap(),
            a
        );
    }

    #[test]
    fn bad_answers_say_what_is_wrong() {
        let cases = [
            ("", "empty answer"),
            ("I cannot help with that.", "not JSON"),
            ("[1,2]", "not a JSON object"),
            (r#"{"category":"network"}"#, "root_cause is missing"),
            (
                &GOOD.replace("0.8", "1.5"),
                "confidence is not between 0 and 1",
            ),
            (
                &GOOD.replace("0.8", "\"high\""),
                "confidence is not a number",
            ),
            (
                &GOOD.replace(r#""fix_commands":[]"#, r#""fix_commands":"reboot""#),
                "fix_commands is not a list",
            ),
            (
                &GOOD.replace(
                    r#""rollback_commands":[]"#,
                    r#""rollback_commands":[],"note":"x""#,
                ),
                "unexpected field \"note\"",
            ),
            (
                &GOOD.replace("The runner could not resolve registry.npmjs.org.", "  "),
                "root_cause is empty",
            ),
            (
                &GOOD.replace(
                    r#""fix_commands":[]"#,
                    r#""fix_commands":["a","b","c","d","e","f"]"#,
                ),
                "more than 5",
            ),
        ];
        for (text, want) in cases {
            let e = parse_answer(text).unwrap_err();
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
        assert_eq!(
            parse_answer(&GOOD.replace("\"network\"", "\"database\"")).unwrap_err(),
            AnswerError::UnknownCategory("database".into())
        );
    }

    #[test]
    fn the_wire_schema_keeps_the_shape_and_drops_string_lengths() {
        let w = wire_schema();
        assert!(w.get("$schema").is_none());
        assert_eq!(w["additionalProperties"], false);
        assert_eq!(w["required"].as_array().unwrap().len(), 7);
        assert!(w["properties"]["root_cause"].get("maxLength").is_none());
        assert!(w["properties"]["fix_commands"]["items"]
            .get("maxLength")
            .is_none());
        assert_eq!(w["properties"]["fix_commands"]["maxItems"], 5);
        assert_eq!(
            w["properties"]["category"]["enum"]
                .as_array()
                .unwrap()
                .len(),
            Category::ALL.len()
        );
    }
}
