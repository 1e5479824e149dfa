//! A light validator of JSON against definitions of the Gitea swagger in
//! `contracts/gitea-swagger-v1.json`:
//! required properties, property names, JSON types, `$ref`, array items.
//! `null` is accepted for optional properties (Gitea sends it).

use std::sync::OnceLock;

use serde_json::Value;

fn definitions() -> &'static Value {
    static DEFS: OnceLock<Value> = OnceLock::new();
    DEFS.get_or_init(|| {
        crate::contracts::load(crate::contracts::GITEA_SWAGGER)["definitions"].take()
    })
}

/// Problems of `value` against definition `def` (empty = valid).
pub fn check(def: &str, value: &Value) -> Vec<String> {
    let defs = definitions();
    let schema = defs
        .get(def)
        .unwrap_or_else(|| panic!("no definition {def} in the swagger"));
    let mut errs = Vec::new();
    check_schema(schema, value, def, &mut errs, 0);
    errs
}

fn check_schema(schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>, depth: u32) {
    if depth > 8 {
        return;
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/definitions/");
        match definitions().get(name) {
            Some(s) => check_schema(s, v, at, errs, depth + 1),
            None => errs.push(format!("{at}: unresolvable $ref {r}")),
        }
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or(
        if schema.get("properties").is_some() {
            "object"
        } else {
            ""
        },
    );
    match ty {
        "object" => {
            let Some(obj) = v.as_object() else {
                errs.push(format!("{at}: expected object, got {v}"));
                return;
            };
            let props = schema.get("properties").and_then(Value::as_object);
            for req in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let k = req.as_str().unwrap_or_default();
                if obj.get(k).is_none_or(Value::is_null) {
                    errs.push(format!("{at}: required property {k:?} missing"));
                }
            }
            if let Some(props) = props {
                for (k, val) in obj {
                    match props.get(k) {
                        None => errs.push(format!("{at}: property {k:?} is not in the swagger")),
                        Some(_) if val.is_null() => {}
                        Some(s) => check_schema(s, val, &format!("{at}.{k}"), errs, depth + 1),
                    }
                }
            }
        }
        "array" => {
            let Some(items) = v.as_array() else {
                errs.push(format!("{at}: expected array, got {v}"));
                return;
            };
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check_schema(s, item, &format!("{at}[{i}]"), errs, depth + 1);
                }
            }
        }
        "string" => {
            if !v.is_string() {
                errs.push(format!("{at}: expected string, got {v}"));
            } else if schema.get("format").and_then(Value::as_str) == Some("date-time")
                && !v
                    .as_str()
                    .is_some_and(|s| s.len() >= 20 && s.as_bytes()[10] == b'T')
            {
                errs.push(format!("{at}: expected RFC 3339 date-time, got {v}"));
            }
        }
        "integer" if !(v.is_i64() || v.is_u64()) => {
            errs.push(format!("{at}: expected integer, got {v}"));
        }
        "number" if !v.is_number() => {
            errs.push(format!("{at}: expected number, got {v}"));
        }
        "boolean" if !v.is_boolean() => {
            errs.push(format!("{at}: expected boolean, got {v}"));
        }
        _ => {}
    }
}

#[test]
fn validator_catches_wrong_bodies() {
    assert!(
        check(
            "CreateIssueOption",
            &serde_json::json!({"title": "t", "labels": [1, 2]})
        )
        .is_empty()
    );
    // Labels are ids, not names; title is required; unknown fields are flagged.
    assert!(
        !check(
            "CreateIssueOption",
            &serde_json::json!({"title": "t", "labels": ["monitor"]})
        )
        .is_empty()
    );
    assert!(!check("CreateIssueOption", &serde_json::json!({"body": "b"})).is_empty());
    assert!(!check("CreateLabelOption", &serde_json::json!({"name": "x"})).is_empty());
    assert!(!check("EditIssueOption", &serde_json::json!({"status": "closed"})).is_empty());
}
