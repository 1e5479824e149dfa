//! Daily token budget (docs/SPEC.md §4.2.6): usage from a file, an HTTP endpoint or a
//! PostgreSQL query, against a limit; warning at 80 %, critical at 100 %.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::error::SpecError;
use crate::secrets::{ConnString, redact_url};
use crate::verdict::round;
use crate::{Outcome, Status};

/// The seed's query: today's prompt + completion tokens (the DB server's day).
pub const DEFAULT_BUDGET_QUERY: &str = "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) \
     FROM agent_metrics WHERE created_at >= CURRENT_DATE";

/// `budget = { limit = 1000000, file = "/var/lib/nexus/tokens.json" }`; or
/// `http = "http://.../usage"`, or `postgres = { url = "...", query = "..." }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetSpec {
    /// Tokens per day (> 0).
    pub limit: f64,
    /// Warning at ≥ this percentage of the limit (default 80).
    #[serde(default = "p80")]
    pub warn_pct: f64,
    /// Critical at ≥ this percentage (default 100).
    #[serde(default = "p100")]
    pub crit_pct: f64,
    /// A file holding a number, or JSON (see `pointer`).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// An HTTP endpoint answering a number or JSON (see `pointer`).
    #[serde(default)]
    pub http: Option<String>,
    /// A PostgreSQL query returning one number.
    #[serde(default)]
    pub postgres: Option<BudgetQuery>,
    /// Where the number is in a JSON document (default `/tokens_used`; a bare
    /// JSON number needs none).
    #[serde(default)]
    pub pointer: Option<String>,
}

/// `postgres = { url = "...", query = "...", params = [] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetQuery {
    /// Connection string; empty or missing: not configured (Unknown),
    /// unless `DATABASE_URL` fills it (see [`crate::fill_database_url`]).
    #[serde(default)]
    pub url: ConnString,
    /// Query (default [`DEFAULT_BUDGET_QUERY`]).
    #[serde(default = "default_query")]
    pub query: String,
    /// Bound parameters.
    #[serde(default)]
    pub params: Vec<Value>,
}

fn default_query() -> String {
    DEFAULT_BUDGET_QUERY.to_string()
}
fn p80() -> f64 {
    80.0
}
fn p100() -> f64 {
    100.0
}

impl BudgetSpec {
    /// Usage read from `file`, default thresholds.
    pub fn from_file(limit: f64, file: impl Into<PathBuf>) -> BudgetSpec {
        BudgetSpec {
            limit,
            warn_pct: p80(),
            crit_pct: p100(),
            file: Some(file.into()),
            http: None,
            postgres: None,
            pointer: None,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), SpecError> {
        if !(self.limit.is_finite() && self.limit > 0.0) {
            return Err(SpecError::field(
                "limit",
                format!("must be a positive number, found {}", self.limit),
            ));
        }
        let sources = [
            self.file.is_some(),
            self.http.is_some(),
            self.postgres.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(SpecError::ExactlyOne {
                fields: &["file", "http", "postgres"],
            });
        }
        Ok(())
    }
}

/// Why a usage text holds no number.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NumberError {
    #[error("{0:?} is not finite")]
    NotFinite(String),
    #[error("not a number or JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("JSON field {0} is missing")]
    Missing(String),
    #[error("JSON field {0} is not a finite number")]
    NotFiniteField(String),
    #[error("JSON field {ptr} is {found}, not a number")]
    NotANumber { ptr: String, found: String },
}

/// A number from text: a bare number, or JSON with the number at `pointer`.
pub(crate) fn number_from(text: &str, pointer: Option<&str>) -> Result<f64, NumberError> {
    let t = text.trim();
    if pointer.is_none()
        && let Ok(n) = t.parse::<f64>()
    {
        return if n.is_finite() {
            Ok(n)
        } else {
            Err(NumberError::NotFinite(t.to_string()))
        };
    }
    let doc: Value = serde_json::from_str(t).map_err(NumberError::NotJson)?;
    let ptr = pointer.unwrap_or("/tokens_used");
    let v = if doc.is_number() && pointer.is_none() {
        &doc
    } else {
        doc.pointer(ptr)
            .ok_or_else(|| NumberError::Missing(ptr.to_string()))?
    };
    let not_a_number = |found: String| NumberError::NotANumber {
        ptr: ptr.to_string(),
        found,
    };
    match v {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| NumberError::NotFiniteField(ptr.to_string())),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| not_a_number(format!("{s:?}"))),
        other => Err(not_a_number(other.to_string())),
    }
}

/// Why a usage source gave no number.
#[derive(Debug, thiserror::Error)]
enum SourceError {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("not a regular file under 1 MiB")]
    NotRegular,
    #[error("not UTF-8 text")]
    NotUtf8,
    /// A request error on one line, without the URL.
    #[error("{0}")]
    Request(String),
    #[error("status {0}")]
    Status(u16),
    #[error(transparent)]
    Body(crate::http::BodyError),
    #[error(transparent)]
    Number(NumberError),
}

/// Why the budget probe has no usage, naming the file or URL it read.
#[derive(Debug, thiserror::Error)]
enum UsageError {
    #[error("{at}: {why}")]
    Source { at: String, why: SourceError },
    #[error(transparent)]
    Postgres(crate::postgres::PgError),
    #[error("no usage source configured")]
    NoSource,
}

async fn used(
    spec: &BudgetSpec,
    client: &reqwest::Client,
    timeout: Duration,
) -> Result<(f64, String), UsageError> {
    let ptr = spec.pointer.as_deref();
    let at = |shown: &str| {
        let at = shown.to_string();
        move |why| UsageError::Source { at, why }
    };
    if let Some(file) = &spec.file {
        let file = nexus_stdx::expand_home(file);
        let shown = file.display().to_string();
        let meta = tokio::fs::metadata(&file)
            .await
            .map_err(|e| at(&shown)(SourceError::Io(e)))?;
        if !meta.is_file() || meta.len() > 1 << 20 {
            return Err(at(&shown)(SourceError::NotRegular));
        }
        let bytes = tokio::fs::read(&file)
            .await
            .map_err(|e| at(&shown)(SourceError::Io(e)))?;
        let text = String::from_utf8(bytes).map_err(|_| at(&shown)(SourceError::NotUtf8))?;
        return number_from(&text, ptr)
            .map(|n| (n, shown.clone()))
            .map_err(|e| at(&shown)(SourceError::Number(e)));
    }
    if let Some(url) = &spec.http {
        let shown = redact_url(url);
        let mut resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| at(&shown)(SourceError::Request(crate::http::request_error(e))))?;
        if !resp.status().is_success() {
            return Err(at(&shown)(SourceError::Status(resp.status().as_u16())));
        }
        let body = crate::http::read_capped(&mut resp, 1 << 20)
            .await
            .map_err(|e| at(&shown)(SourceError::Body(e)))?;
        let text = String::from_utf8_lossy(&body);
        return number_from(&text, ptr)
            .map(|n| (n, shown.clone()))
            .map_err(|e| at(&shown)(SourceError::Number(e)));
    }
    if let Some(q) = &spec.postgres {
        let n = crate::postgres::query_value(&q.url, &q.query, &q.params, timeout)
            .await
            .map_err(UsageError::Postgres)?;
        return Ok((n, "postgres".to_string()));
    }
    Err(UsageError::NoSource)
}

pub(crate) async fn check(
    spec: &BudgetSpec,
    client: &reqwest::Client,
    timeout: Duration,
) -> Outcome {
    if let Err(why) = spec.validate() {
        return Outcome::unknown(format!("budget probe misconfigured: {why}"));
    }
    if spec.postgres.as_ref().is_some_and(|q| q.url.is_blank()) {
        return Outcome::unknown("Cannot check budget without database");
    }
    let (tokens, source) = match used(spec, client, timeout).await {
        Ok(u) => u,
        Err(e) => return Outcome::critical(format!("Budget check failed: {e}")),
    };
    let pct = tokens / spec.limit * 100.0;
    let status = Status::at_or_above(pct, spec.warn_pct, spec.crit_pct);
    let what = match status {
        Status::Critical => "Token budget exceeded",
        Status::Warning => "Token budget nearly exhausted",
        _ => "Token budget OK",
    };
    Outcome::new(
        status,
        format!("{what}: {pct:.1} % of {} tokens used", spec.limit),
    )
    .with("tokens_used", tokens)
    .with("tokens_limit", spec.limit)
    .with("usage_pct", round(pct, 1))
    .with("source", source)
}

#[cfg(test)]
mod tests {
    use super::number_from;

    #[test]
    fn numbers_from_text_and_json() {
        assert_eq!(number_from(" 1234\n", None).unwrap(), 1234.0);
        assert_eq!(number_from("{\"tokens_used\": 5}", None).unwrap(), 5.0);
        assert_eq!(
            number_from("{\"a\": {\"b\": \"7\"}}", Some("/a/b")).unwrap(),
            7.0
        );
        assert!(
            number_from("{\"a\": 1}", None)
                .unwrap_err()
                .to_string()
                .contains("/tokens_used")
        );
        assert!(number_from("\u{0}\u{1}binary", None).is_err());
        assert!(number_from("NaN", None).is_err());
    }
}
