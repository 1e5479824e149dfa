//! PostgreSQL probe (docs/SPEC.md §4.2.3-4, defect H1): connect, `SELECT 1`, and an
//! optional parameterised query whose single numeric result is compared with
//! thresholds (e.g. stuck work orders). Parameters are bound, never spliced
//! into SQL. The connection string's password never appears in a verdict.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::Outcome;
use crate::secrets::ConnString;

/// A PostgreSQL connection or query that failed. Every text in it is
/// already scrubbed of the connection string's password
/// ([`ConnString::scrub`]); `target` is `user@host:port/db`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PgError {
    #[cfg(not(feature = "postgres"))]
    #[error("nexus-probe was built without the `postgres` feature")]
    NoFeature,
    #[cfg(feature = "postgres")]
    #[error("invalid PostgreSQL URL {0}")]
    Url(String),
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL connection failed ({target}): {why}")]
    Connect { target: String, why: String },
    #[cfg(feature = "postgres")]
    #[error("parameter ${n}: expected {want} for type {ty}, found {found}")]
    ParamValue {
        n: usize,
        want: &'static str,
        ty: String,
        found: String,
    },
    #[cfg(feature = "postgres")]
    #[error(
        "parameter ${n} has type {ty}, which probes do not bind; cast it in the query (e.g. ${n}::float8)"
    )]
    ParamType { n: usize, ty: String },
    #[cfg(feature = "postgres")]
    #[error("the query has {wanted} parameter(s), {given} given")]
    ParamCount { wanted: usize, given: usize },
    /// The server's or the driver's message.
    #[cfg(feature = "postgres")]
    #[error("{0}")]
    Server(String),
    #[cfg(feature = "postgres")]
    #[error("query failed ({target}): {why}")]
    Query { target: String, why: String },
}

/// ```toml
/// [probe.postgres]
/// url = "host=127.0.0.1 port=5432 user=nexus dbname=nexus"
/// query = "SELECT COUNT(*) FROM work_orders WHERE status = 'in_progress' AND updated_at < NOW() - make_interval(secs => $1)"
/// params = [300]
/// warn_at = 1
/// label = "stuck work orders"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSpec {
    /// `postgres://user:pw@host:port/db` or `host=... user=... dbname=...`;
    /// empty or missing: not configured (Unknown), unless `DATABASE_URL`
    /// fills it (see [`crate::fill_database_url`]).
    #[serde(default)]
    pub url: ConnString,
    /// A query returning one row with one numeric column.
    #[serde(default)]
    pub query: Option<String>,
    /// Its parameters `$1, $2, ...` (numbers, strings, booleans).
    #[serde(default)]
    pub params: Vec<Value>,
    /// Warning when the value is ≥ this.
    #[serde(default)]
    pub warn_at: Option<f64>,
    /// Critical when the value is ≥ this.
    #[serde(default)]
    pub crit_at: Option<f64>,
    /// What the value counts, for the summary (default `value`).
    #[serde(default)]
    pub label: Option<String>,
}

impl PostgresSpec {
    /// Connect and `SELECT 1` only.
    pub fn new(url: impl Into<String>) -> PostgresSpec {
        PostgresSpec {
            url: ConnString::new(url),
            query: None,
            params: Vec::new(),
            warn_at: None,
            crit_at: None,
            label: None,
        }
    }
}

/// The seed's "not configured" verdicts (docs/SPEC.md §4.2 items 3 and 4):
/// a blank URL is no database to check, not a failed connection.
pub(crate) fn not_configured(spec: &PostgresSpec) -> Option<&'static str> {
    match (spec.url.is_blank(), &spec.query) {
        (false, _) => None,
        (true, None) => Some("PostgreSQL URL not configured"),
        (true, Some(_)) => Some("Cannot check agents without database"),
    }
}

#[cfg(not(feature = "postgres"))]
pub(crate) async fn check(_spec: &PostgresSpec, _timeout: Duration) -> Outcome {
    Outcome::unknown(
        "PostgreSQL probe unavailable: nexus-probe was built without the `postgres` feature",
    )
}

#[cfg(not(feature = "postgres"))]
pub(crate) async fn query_value(
    _url: &ConnString,
    _query: &str,
    _params: &[Value],
    _timeout: Duration,
) -> Result<f64, PgError> {
    Err(PgError::NoFeature)
}

#[cfg(feature = "postgres")]
pub(crate) use imp::{check, query_value};

#[cfg(feature = "postgres")]
mod imp {
    use super::*;
    use crate::Status;
    use tokio_postgres::types::{ToSql, Type};

    /// A driver error on one line: the server's message and SQLSTATE when there is one.
    fn pg_error(e: &tokio_postgres::Error) -> String {
        match e.as_db_error() {
            Some(db) => format!(
                "{}: {} (SQLSTATE {})",
                db.severity(),
                db.message(),
                db.code().code()
            ),
            None => nexus_stdx::error_chain(e),
        }
    }

    /// Where we connect, for messages: `user@host:port/db`, no password.
    fn target(cfg: &tokio_postgres::Config) -> String {
        use tokio_postgres::config::Host;
        let host = match cfg.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_string(),
        };
        let port = cfg.get_ports().first().copied().unwrap_or(5432);
        format!(
            "{}@{host}:{port}/{}",
            cfg.get_user().unwrap_or("?"),
            cfg.get_dbname().unwrap_or(cfg.get_user().unwrap_or("?"))
        )
    }

    pub(crate) struct Conn {
        pub(crate) client: tokio_postgres::Client,
        pub(crate) target: String,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Conn {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    pub(crate) async fn connect(url: &ConnString, timeout: Duration) -> Result<Conn, PgError> {
        let mut cfg: tokio_postgres::Config =
            url.expose().parse().map_err(|e: tokio_postgres::Error| {
                PgError::Url(url.scrub(&format!("{}: {e}", url.redacted())))
            })?;
        cfg.connect_timeout(timeout);
        let target = target(&cfg);
        let (client, connection) =
            cfg.connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| PgError::Connect {
                    target: url.scrub(&target),
                    why: url.scrub(&pg_error(&e)),
                })?;
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Conn {
            client,
            target,
            task,
        })
    }

    /// Converts a config value to the parameter type the server inferred.
    fn param(i: usize, v: &Value, ty: &Type) -> Result<Box<dyn ToSql + Sync + Send>, PgError> {
        let n = i + 1;
        let bad = |want: &'static str| PgError::ParamValue {
            n,
            want,
            ty: ty.to_string(),
            found: v.to_string(),
        };
        Ok(match *ty {
            Type::INT2 => Box::new(
                v.as_i64()
                    .and_then(|x| i16::try_from(x).ok())
                    .ok_or_else(|| bad("an integer"))?,
            ),
            Type::INT4 => Box::new(
                v.as_i64()
                    .and_then(|x| i32::try_from(x).ok())
                    .ok_or_else(|| bad("an integer"))?,
            ),
            Type::INT8 => Box::new(v.as_i64().ok_or_else(|| bad("an integer"))?),
            Type::FLOAT4 => Box::new(v.as_f64().ok_or_else(|| bad("a number"))? as f32),
            Type::FLOAT8 => Box::new(v.as_f64().ok_or_else(|| bad("a number"))?),
            Type::BOOL => Box::new(v.as_bool().ok_or_else(|| bad("a boolean"))?),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                Box::new(match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            }
            _ => {
                return Err(PgError::ParamType {
                    n,
                    ty: ty.to_string(),
                });
            }
        })
    }

    /// Runs `query` (one row, one numeric column) with bound parameters.
    /// The query is wrapped as a scalar subquery cast to float8, so any
    /// numeric type (count, sum, numeric) works; NULL reads as 0.
    pub(crate) async fn run_value(
        conn: &Conn,
        query: &str,
        params: &[Value],
    ) -> Result<f64, PgError> {
        let server = |e: tokio_postgres::Error| PgError::Server(pg_error(&e));
        let q = query.trim().trim_end_matches(';').trim();
        let wrapped = format!("SELECT (({q}))::float8");
        let stmt = conn.client.prepare(&wrapped).await.map_err(server)?;
        if stmt.params().len() != params.len() {
            return Err(PgError::ParamCount {
                wanted: stmt.params().len(),
                given: params.len(),
            });
        }
        let boxed = params
            .iter()
            .zip(stmt.params())
            .enumerate()
            .map(|(i, (v, ty))| param(i, v, ty))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&(dyn ToSql + Sync)> = boxed
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let row = conn.client.query_one(&stmt, &refs).await.map_err(server)?;
        let v: Option<f64> = row.try_get(0).map_err(server)?;
        Ok(v.unwrap_or(0.0))
    }

    /// Connects and runs one value query (the budget probe's source).
    pub(crate) async fn query_value(
        url: &ConnString,
        query: &str,
        params: &[Value],
        timeout: Duration,
    ) -> Result<f64, PgError> {
        let conn = connect(url, timeout).await?;
        run_value(&conn, query, params)
            .await
            .map_err(|e| PgError::Query {
                target: url.scrub(&conn.target),
                why: url.scrub(&e.to_string()),
            })
    }

    pub(crate) async fn check(spec: &PostgresSpec, timeout: Duration) -> Outcome {
        if let Some(why) = super::not_configured(spec) {
            return Outcome::unknown(why);
        }
        let conn = match connect(&spec.url, timeout).await {
            Ok(c) => c,
            Err(e) => return Outcome::critical(e.to_string()),
        };
        let t = conn.target.clone();
        if let Err(e) = conn.client.simple_query("SELECT 1").await {
            return Outcome::critical(spec.url.scrub(&format!(
                "PostgreSQL connected ({t}) but SELECT 1 failed: {}",
                pg_error(&e)
            )));
        }
        let Some(query) = &spec.query else {
            return Outcome::ok(format!("PostgreSQL connected ({t})")).with("target", t);
        };
        let value = match run_value(&conn, query, &spec.params).await {
            Ok(v) => v,
            Err(e) => {
                return Outcome::critical(spec.url.scrub(&format!(
                    "PostgreSQL connected ({t}) but the query failed: {e}"
                )))
                .with("target", t);
            }
        };
        let label = spec.label.as_deref().unwrap_or("value");
        let status = Status::at_or_above(
            value,
            spec.warn_at.unwrap_or(f64::INFINITY),
            spec.crit_at.unwrap_or(f64::INFINITY),
        );
        let threshold = match status {
            Status::Critical => format!(" (critical at ≥ {})", spec.crit_at.unwrap_or(0.0)),
            Status::Warning => format!(" (warning at ≥ {})", spec.warn_at.unwrap_or(0.0)),
            _ => String::new(),
        };
        Outcome::new(status, format!("PostgreSQL {label} = {value}{threshold}"))
            .with("target", t)
            .with("value", value)
            .with("warn_at", spec.warn_at)
            .with("crit_at", spec.crit_at)
    }
}
