//! A light checker against the Telegram Bot API description in
//! `contracts/` (method parameters and type fields: names, required ones,
//! scalar types), plus a mockito matcher that records every violation.

use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;

fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| crate::contracts::load(crate::contracts::TELEGRAM_BOT_API))
}

fn check_fields(fields: &[Value], v: &Value, at: &str, errs: &mut Vec<String>, depth: u32) {
    let Some(obj) = v.as_object() else {
        errs.push(format!("{at}: expected object, got {v}"));
        return;
    };
    for f in fields {
        let name = f["name"].as_str().unwrap_or_default();
        if f["required"].as_bool() == Some(true) && !obj.contains_key(name) {
            errs.push(format!("{at}: required field {name:?} missing"));
        }
    }
    for (k, val) in obj {
        let Some(f) = fields.iter().find(|f| f["name"] == *k) else {
            errs.push(format!("{at}: field {k:?} is not in the spec"));
            continue;
        };
        let types: Vec<&str> = f["types"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if !types
            .iter()
            .any(|t| type_ok(t, val, &format!("{at}.{k}"), &mut Vec::new(), depth))
        {
            let mut inner = Vec::new();
            type_ok(types[0], val, &format!("{at}.{k}"), &mut inner, depth);
            errs.push(format!("{at}.{k}: {val} is not {types:?} {inner:?}"));
        }
    }
}

fn type_ok(t: &str, v: &Value, at: &str, errs: &mut Vec<String>, depth: u32) -> bool {
    if let Some(inner) = t.strip_prefix("Array of ") {
        return v
            .as_array()
            .is_some_and(|a| a.iter().all(|x| type_ok(inner, x, at, errs, depth)));
    }
    match t {
        "Integer" => v.is_i64() || v.is_u64(),
        "Float" => v.is_number(),
        "String" => v.is_string(),
        "Boolean" => v.is_boolean(),
        "True" => v == &Value::Bool(true),
        other => match spec()["types"].get(other) {
            // Union types (e.g. MaybeInaccessibleMessage) have no fields: accept objects.
            Some(ty) if depth < 6 => match ty.get("fields").and_then(Value::as_array) {
                Some(fields) => {
                    let before = errs.len();
                    check_fields(fields, v, at, errs, depth + 1);
                    errs.len() == before
                }
                None => v.is_object(),
            },
            _ => v.is_object(),
        },
    }
}

/// Problems of a request body for `method`.
pub fn check_request(method: &str, body: &Value) -> Vec<String> {
    let m = spec()["methods"]
        .get(method)
        .unwrap_or_else(|| panic!("no method {method} in the spec"));
    let mut errs = Vec::new();
    check_fields(m["fields"].as_array().unwrap(), body, method, &mut errs, 0);
    errs
}

/// Problems of a value against a spec type (`Message`, `Update`, ...).
pub fn check_type(ty: &str, v: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    type_ok(ty, v, ty, &mut errs, 0);
    errs
}

/// Collected contract violations of every request the mocks saw.
#[derive(Clone, Debug, Default)]
pub struct Violations(pub Arc<Mutex<Vec<String>>>);

impl Violations {
    /// A mockito request matcher that validates the body and always matches.
    pub fn checker(
        &self,
        method: &'static str,
    ) -> impl Fn(&mockito::Request) -> bool + Send + Sync + 'static {
        let v = self.0.clone();
        move |req| {
            let body: Value = serde_json::from_slice(req.body().unwrap()).unwrap_or(Value::Null);
            v.lock().unwrap().extend(check_request(method, &body));
            true
        }
    }

    pub fn assert_none(&self) {
        let v = self.0.lock().unwrap();
        assert!(
            v.is_empty(),
            "Bot API contract violations:\n{}",
            v.join("\n")
        );
    }
}

#[test]
fn checker_catches_wrong_bodies() {
    assert!(
        check_request(
            "sendMessage",
            &serde_json::json!({"chat_id": 1, "text": "x"})
        )
        .is_empty()
    );
    assert!(!check_request("sendMessage", &serde_json::json!({"text": "x"})).is_empty());
    assert!(
        !check_request(
            "sendMessage",
            &serde_json::json!({"chat_id": 1, "text": "x", "parse": "y"})
        )
        .is_empty()
    );
    assert!(!check_request("getUpdates", &serde_json::json!({"offset": "5"})).is_empty());
    assert!(!check_type("Message", &serde_json::json!({"message_id": 1})).is_empty());
}
