//! Ollama probe (docs/SPEC.md §4.2.5, defect H13): `GET /api/tags` answers and the
//! required models are present. Named honestly: this is not a GPU check.

use serde::Deserialize;
use serde_json::Value;

use crate::Outcome;
use crate::secrets::redact_url;

/// `ollama = { url = "http://127.0.0.1:11434", models = ["llama3"] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OllamaSpec {
    /// Base URL (default `http://localhost:11434`).
    #[serde(default = "default_url")]
    pub url: String,
    /// Models that must be present; `llama3` matches `llama3:latest`.
    #[serde(default)]
    pub models: Vec<String>,
    /// An unreachable Ollama is Unknown ("optional", the seed's rule) instead of Critical.
    #[serde(default)]
    pub optional: bool,
}

fn default_url() -> String {
    "http://localhost:11434".to_string()
}

impl OllamaSpec {
    /// A spec for `url` requiring `models`.
    pub fn new(url: impl Into<String>, models: &[&str]) -> OllamaSpec {
        OllamaSpec {
            url: url.into(),
            models: models.iter().map(|m| m.to_string()).collect(),
            optional: false,
        }
    }
}

/// Whether `want` (with or without a `:tag`) is among `have`.
pub(crate) fn has_model(have: &[String], want: &str) -> bool {
    have.iter().any(|h| {
        h == want
            || (!want.contains(':') && h.split_once(':').is_some_and(|(name, _)| name == want))
    })
}

pub(crate) async fn check(spec: &OllamaSpec, client: &reqwest::Client) -> Outcome {
    let url = format!("{}/api/tags", spec.url.trim_end_matches('/'));
    let shown = redact_url(&url);
    let unreachable = |why: String| {
        if spec.optional {
            Outcome::unknown(format!("Ollama not available (optional): {why}"))
        } else {
            Outcome::critical(format!("Ollama not available: {why}"))
        }
    };
    let mut resp = match client.get(&url).send().await {
        Ok(r) => r,
        Err(e) => return unreachable(format!("{shown}: {}", crate::http::request_error(e))),
    };
    let code = resp.status().as_u16();
    if !resp.status().is_success() {
        return Outcome::warning(format!("Ollama responded with error (status {code})"))
            .with("status_code", code);
    }
    let body = match crate::http::read_capped(&mut resp, 4 << 20).await {
        Ok(b) => b,
        Err(why) => return Outcome::critical(format!("Ollama {shown}: {why}")),
    };
    let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
        return Outcome::critical(format!("Ollama {shown}: response is not JSON"));
    };
    let Some(list) = doc.get("models").and_then(Value::as_array) else {
        return Outcome::critical(format!("Ollama {shown}: response has no `models` array"));
    };
    let names: Vec<String> = list
        .iter()
        .filter_map(|m| {
            m.get("name")
                .or_else(|| m.get("model"))
                .and_then(Value::as_str)
        })
        .map(str::to_string)
        .collect();
    let missing: Vec<&str> = spec
        .models
        .iter()
        .map(String::as_str)
        .filter(|w| !has_model(&names, w))
        .collect();
    let o = if missing.is_empty() {
        Outcome::ok(format!("Ollama available ({} models)", names.len()))
    } else {
        Outcome::critical(format!(
            "Ollama is missing required models: {}",
            missing.join(", ")
        ))
    };
    o.with("model_count", names.len())
        .with("models", &names)
        .with("missing", missing)
}

#[cfg(test)]
mod tests {
    #[test]
    fn model_names_match_with_or_without_tag() {
        let have = vec!["llama3:latest".to_string(), "qwen2:7b".to_string()];
        assert!(super::has_model(&have, "llama3"));
        assert!(super::has_model(&have, "qwen2:7b"));
        assert!(!super::has_model(&have, "qwen2:14b"));
        assert!(!super::has_model(&have, "llama"));
    }
}
