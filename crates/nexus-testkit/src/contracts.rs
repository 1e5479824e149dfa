//! The API contracts the mocks are checked against, kept in the repository
//! under `crates/nexus-testkit/contracts/` (their README says where each
//! comes from, under what licence, and how they were cut).
//!
//! `NEXUS_CONTRACTS_DIR` points the tests at another copy (the whole
//! upstream files, or a newer release).

use std::path::PathBuf;

use serde_json::Value;

/// The Gitea API v1 swagger (the issue, comment, label and user subset).
pub const GITEA_SWAGGER: &str = "gitea-swagger-v1.json";
/// The Telegram Bot API description (the methods we call and their types).
pub const TELEGRAM_BOT_API: &str = "telegram-bot-api-spec.json";

/// The directory the contracts are read from.
pub fn dir() -> PathBuf {
    std::env::var_os("NEXUS_CONTRACTS_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contracts"),
        PathBuf::from,
    )
}

/// One contract, parsed. A missing or corrupt file is a test failure that
/// names the file.
pub fn load(name: &str) -> Value {
    let path = dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the API contract {} cannot be read: {e} (it ships in crates/nexus-testkit/contracts/; NEXUS_CONTRACTS_DIR overrides)",
            path.display()
        )
    });
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("the API contract {} is not JSON: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `v`, as `(section, name)`.
    fn refs<'a>(v: &'a Value, out: &mut Vec<(&'a str, &'a str)>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match (k.as_str(), x.as_str().and_then(|r| r.strip_prefix("#/"))) {
                        ("$ref", Some(r)) => out.push(r.split_once('/').unwrap_or((r, ""))),
                        _ => refs(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn the_gitea_subset_is_closed_and_holds_what_the_fake_checks() {
        let spec = load(GITEA_SWAGGER);
        assert_eq!(spec["basePath"], "/api/v1");
        let mut all = Vec::new();
        refs(&spec, &mut all);
        assert!(all.len() > 50, "too few $refs: {}", all.len());
        for (section, name) in all {
            assert!(
                spec[section].get(name).is_some(),
                "#/{section}/{name} is referenced but not in the cut"
            );
        }
        for def in [
            "Issue",
            "CreateIssueOption",
            "EditIssueOption",
            "Comment",
            "CreateIssueCommentOption",
            "Label",
            "CreateLabelOption",
            "IssueLabelsOption",
            "User",
        ] {
            assert!(spec["definitions"].get(def).is_some(), "{def} missing");
        }
        for path in [
            "/repos/{owner}/{repo}/issues",
            "/repos/{owner}/{repo}/issues/{index}",
            "/repos/{owner}/{repo}/issues/{index}/comments",
            "/repos/{owner}/{repo}/issues/{index}/labels",
            "/repos/{owner}/{repo}/labels",
            "/users/{username}",
        ] {
            assert!(spec["paths"].get(path).is_some(), "{path} missing");
        }
    }

    #[test]
    fn the_telegram_subset_is_closed_and_holds_what_the_mocks_check() {
        let spec = load(TELEGRAM_BOT_API);
        assert_eq!(spec["version"], "Bot API 10.1");
        let types = spec["types"].as_object().unwrap();
        let scalar = ["Integer", "Float", "String", "Boolean", "True", "InputFile"];
        let known = |mut t: &str| {
            while let Some(inner) = t.strip_prefix("Array of ") {
                t = inner;
            }
            scalar.contains(&t) || types.contains_key(t)
        };
        let mut checked = 0;
        let mut field_types = |fields: &Value, owner: &str| {
            for f in fields.as_array().into_iter().flatten() {
                for t in f["types"].as_array().unwrap() {
                    let t = t.as_str().unwrap();
                    assert!(
                        known(t),
                        "{owner}.{}: type {t} is not in the cut",
                        f["name"]
                    );
                    checked += 1;
                }
            }
        };
        for m in [
            "sendMessage",
            "getUpdates",
            "answerCallbackQuery",
            "editMessageReplyMarkup",
        ] {
            field_types(&spec["methods"][m]["fields"], m);
        }
        for (name, ty) in types {
            field_types(&ty["fields"], name);
            for sub in ty["subtypes"].as_array().into_iter().flatten() {
                let sub = sub.as_str().unwrap();
                assert!(known(sub), "{name}: subtype {sub} is not in the cut");
            }
        }
        assert!(checked > 1000, "too few field types checked: {checked}");
        for t in ["Update", "Message", "CallbackQuery", "ResponseParameters"] {
            assert!(types.contains_key(t), "{t} missing");
        }
    }
}
