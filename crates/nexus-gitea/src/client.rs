//! The typed Gitea v1 client.

use std::sync::Arc;
use std::time::Duration;

use nexus_secret::{EXCERPT_CHARS, Redactor, Secret};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::types::{
    Comment, CreateIssueCommentOption, CreateIssueOption, CreateLabelOption, EditIssueOption,
    Issue, IssueLabelsOption, IssueQuery, IssueState, Label,
};

/// Items per page we ask for. Gitea silently caps `limit` at
/// `MAX_RESPONSE_ITEMS` (default 50); the pagination loop never relies on it.
pub const PAGE_LIMIT: u32 = 50;

/// The largest successful reply read (a page of 50 issues with long bodies
/// fits many times over); a longer one is refused with [`Error::TooLarge`]
/// after reading this much at most, never buffered whole.
pub const MAX_REPLY_BYTES: usize = 16 << 20;

/// Of an error reply only this much is read: its message is cut to an
/// excerpt of [`EXCERPT_CHARS`] anyway.
const MAX_ERROR_BYTES: usize = 64 << 10;

/// An API token, held in a [`Secret`] (`Debug` prints `Token(Secret("***"))`;
/// there is no `Display`). The only place the value is read is the
/// `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token(Secret);

impl Token {
    /// Wraps a token, trimming surrounding whitespace (tokens read from env
    /// files often carry a newline). `None` if nothing is left.
    pub fn new(raw: &str) -> Option<Token> {
        Secret::trimmed(raw).map(Token)
    }

    /// What to redact from server text: the token, in every form.
    fn redactor(&self) -> Redactor {
        Redactor::new().secret(self.0.expose())
    }

    pub(crate) fn header(&self) -> Result<HeaderValue, Error> {
        let mut v = HeaderValue::from_str(&format!("token {}", self.0.expose())).map_err(|_| {
            Error::Config {
                field: "token",
                why: "contains characters not allowed in an HTTP header".into(),
            }
        })?;
        v.set_sensitive(true);
        Ok(v)
    }
}

impl From<Secret> for Token {
    /// A token as given (trim it first: see [`Token::new`]).
    fn from(s: Secret) -> Token {
        Token(s)
    }
}

/// Where and how to reach Gitea.
#[derive(Debug, Clone)]
pub struct GiteaConfig {
    /// Server root (`https://git.example.com`) or API root (`…/api/v1`).
    pub base_url: String,
    /// `owner/name` of the repository that holds the incident issues.
    pub repo: String,
    /// API token, sent only in the `Authorization` header.
    pub token: Token,
    /// Timeout of each HTTP request (connect + answer). Default 15 s.
    pub timeout: Duration,
    /// Retries after the first attempt on network errors, 5xx and 429
    /// (a `POST` only when it surely had no effect: refused connection, 429).
    /// Default 2.
    pub retries: u32,
    /// First backoff delay, doubled on each retry. Default 500 ms.
    pub backoff: Duration,
}

impl GiteaConfig {
    /// A configuration with the default timeout, retries and backoff.
    pub fn new(base_url: &str, repo: &str, token: Token) -> GiteaConfig {
        GiteaConfig {
            base_url: base_url.to_owned(),
            repo: repo.to_owned(),
            token,
            timeout: Duration::from_secs(15),
            retries: 2,
            backoff: Duration::from_millis(500),
        }
    }
}

/// A Gitea v1 API client bound to one repository.
///
/// Every call has a timeout; network errors, 5xx and 429 are retried (a
/// `POST` only on a refused connection or 429: see `send`) with
/// exponential backoff (429 honours `Retry-After`, capped at 60 s); other 4xx
/// fail at once with [`Error::Status`] carrying Gitea's `message`. `Debug`
/// shows the `Authorization` header as `Sensitive`.
#[derive(Clone, Debug)]
pub struct GiteaClient {
    http: reqwest::Client,
    api: String,
    owner: String,
    name: String,
    auth: HeaderValue,
    /// Server text (messages, transport and decode errors) goes through it
    /// before it is logged or kept in an error.
    redactor: Arc<Redactor>,
    retries: u32,
    backoff: Duration,
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Sending and retrying, shared by every call.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl GiteaClient {
    /// Builds a client. Fails on an unusable URL, repository or token.
    pub fn new(cfg: &GiteaConfig) -> Result<GiteaClient, Error> {
        let mut base = cfg.base_url.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Config {
                field: "base_url",
                why: format!("{base:?} is not an http(s) URL"),
            });
        }
        if !base.ends_with("/api/v1") {
            base.push_str("/api/v1");
        }
        let (owner, name) = cfg.repo.split_once('/').ok_or_else(|| Error::Config {
            field: "repo",
            why: format!("{:?} is not owner/name", cfg.repo),
        })?;
        if !valid_name(owner) || !valid_name(name) {
            return Err(Error::Config {
                field: "repo",
                why: format!("{:?}: owner and name must be [A-Za-z0-9._-]+", cfg.repo),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .user_agent(concat!("nexus-gitea/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config {
                field: "http client",
                why: e.to_string(),
            })?;
        Ok(GiteaClient {
            http,
            api: base,
            owner: owner.to_owned(),
            name: name.to_owned(),
            auth: cfg.token.header()?,
            redactor: Arc::new(cfg.token.redactor()),
            retries: cfg.retries,
            backoff: cfg.backoff,
        })
    }

    /// `owner/name`.
    pub fn repo(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}/{}{rest}", self.owner, self.name)
    }

    /// Server text as it may be logged or kept: token redacted, controls
    /// out, at most [`EXCERPT_CHARS`] characters.
    fn server_text(&self, text: &str) -> String {
        self.redactor.clean(text, EXCERPT_CHARS).into_owned()
    }

    /// Sends with retries. A `POST` is not idempotent: it is retried only
    /// when Gitea surely did not act on it (the connection was refused, or
    /// 429). After a timeout or a 5xx it may have taken effect, so the error
    /// goes back to the engine, whose outbox redelivers it with a duplicate
    /// check (the action marker); a blind retry here could comment twice.
    async fn send(
        &self,
        method: &'static str,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Reply, Error> {
        let idempotent = method != "POST";
        let m = Method::from_bytes(method.as_bytes()).map_err(|_| Error::Config {
            field: "method",
            why: method.into(),
        })?;
        let url = format!("{}{}", self.api, path);
        let attempts = self.retries + 1;
        let mut delay = self.backoff;
        for attempt in 1..=attempts {
            let mut req = self
                .http
                .request(m.clone(), &url)
                .header(AUTHORIZATION, self.auth.clone())
                .header(ACCEPT, "application/json");
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(b) = &body {
                req = req.header(CONTENT_TYPE, "application/json").body(b.clone());
            }
            let last = attempt == attempts;
            match req.send().await {
                Err(e) => {
                    let surely_not_sent = e.is_connect();
                    let detail = self.server_text(&transport_detail(e));
                    tracing::warn!(method, path, attempt, error = %detail, "gitea request failed");
                    if last || !(idempotent || surely_not_sent) {
                        return Err(Error::Unreachable {
                            method,
                            path: path.to_owned(),
                            attempts: attempt,
                            detail,
                        });
                    }
                }
                Ok(mut resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    let cap = if status.is_success() {
                        MAX_REPLY_BYTES
                    } else {
                        MAX_ERROR_BYTES
                    };
                    let (bytes, cut) = match read_capped(&mut resp, cap).await {
                        Ok(b) => b,
                        Err(e) => {
                            let detail = self.server_text(&transport_detail(e));
                            if last || !idempotent {
                                return Err(Error::Unreachable {
                                    method,
                                    path: path.to_owned(),
                                    attempts: attempt,
                                    detail,
                                });
                            }
                            tokio::time::sleep(delay).await;
                            delay = delay.saturating_mul(2);
                            continue;
                        }
                    };
                    if status.is_success() && cut {
                        // Whatever it did, this is not the documented
                        // answer; a retry would read as much again.
                        return Err(Error::TooLarge {
                            method,
                            path: path.to_owned(),
                            limit: MAX_REPLY_BYTES,
                        });
                    }
                    if status.is_success() {
                        return Ok(Reply {
                            status,
                            headers,
                            body: bytes,
                        });
                    }
                    let retryable =
                        (idempotent && status.is_server_error()) || status.as_u16() == 429;
                    if !retryable || last {
                        return Err(Error::Status {
                            method,
                            path: path.to_owned(),
                            status: status.as_u16(),
                            message: self.server_text(&gitea_message(&bytes)),
                        });
                    }
                    tracing::warn!(
                        method,
                        path,
                        attempt,
                        status = status.as_u16(),
                        "gitea answered with a retryable status"
                    );
                    if status.as_u16() == 429
                        && let Some(s) = headers
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    {
                        tokio::time::sleep(Duration::from_secs(s.min(60))).await;
                        continue;
                    }
                }
            }
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
        // The loop always returns on its last attempt.
        Err(Error::Unreachable {
            method,
            path: path.to_owned(),
            attempts,
            detail: "no attempt made".into(),
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&impl Serialize>,
    ) -> Result<(T, HeaderMap), Error> {
        let body = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| Error::Decode {
                method,
                path: path.to_owned(),
                detail: format!("cannot serialise request: {e}"),
            })?),
            None => None,
        };
        let reply = self.send(method, path, query, body).await?;
        // A serde error quotes the value it choked on: server text.
        let value = serde_json::from_slice(&reply.body).map_err(|e| Error::Decode {
            method,
            path: path.to_owned(),
            detail: self.server_text(&format!("HTTP {}: {e}", reply.status.as_u16())),
        })?;
        Ok((value, reply.headers))
    }

    /// Every issue matching `query` (`type=issues`), following all pages.
    ///
    /// Stops when `X-Total-Count` items were collected, when a page is empty,
    /// when there is no `rel="next"` in `Link` (if neither header is sent: when
    /// a page is shorter than asked), or after `query.max_pages`.
    pub async fn list_issues(&self, query: &IssueQuery) -> Result<Vec<Issue>, Error> {
        let path = self.repo_path("/issues");
        let mut base: Vec<(&str, String)> = vec![
            (
                "state",
                query.state.map_or("all", IssueState::as_str).to_owned(),
            ),
            ("type", "issues".to_owned()),
        ];
        if !query.labels.is_empty() {
            base.push(("labels", query.labels.join(",")));
        }
        let items: Vec<Issue> = self.paginate(&path, &base, query.max_pages).await?;
        Ok(items
            .into_iter()
            .filter(|i| i.pull_request.is_none())
            .collect())
    }

    async fn paginate<T: DeserializeOwned>(
        &self,
        path: &str,
        base: &[(&str, String)],
        max_pages: u32,
    ) -> Result<Vec<T>, Error> {
        let mut out = Vec::new();
        for page in 1..=max_pages.max(1) {
            let mut q = base.to_vec();
            q.push(("page", page.to_string()));
            q.push(("limit", PAGE_LIMIT.to_string()));
            let (items, headers): (Vec<T>, _) = self.call("GET", path, &q, None::<&()>).await?;
            let n = items.len();
            out.extend(items);
            let total = headers
                .get("x-total-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<usize>().ok());
            let link = headers
                .get("link")
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.trim().is_empty());
            let more = match (total, link) {
                _ if n == 0 => false,
                (Some(t), _) => out.len() < t,
                (None, Some(l)) => l.contains("rel=\"next\""),
                (None, None) => n >= PAGE_LIMIT as usize,
            };
            if !more {
                break;
            }
        }
        Ok(out)
    }

    /// One issue by number.
    pub async fn get_issue(&self, number: u64) -> Result<Issue, Error> {
        let path = self.repo_path(&format!("/issues/{number}"));
        Ok(self.call("GET", &path, &[], None::<&()>).await?.0)
    }

    /// Creates an issue (`201`).
    pub async fn create_issue(&self, opt: &CreateIssueOption) -> Result<Issue, Error> {
        let path = self.repo_path("/issues");
        Ok(self.call("POST", &path, &[], Some(opt)).await?.0)
    }

    /// Adds a comment (`201`).
    pub async fn comment(&self, number: u64, body: &str) -> Result<Comment, Error> {
        let path = self.repo_path(&format!("/issues/{number}/comments"));
        let opt = CreateIssueCommentOption {
            body: body.to_owned(),
        };
        Ok(self.call("POST", &path, &[], Some(&opt)).await?.0)
    }

    /// Every comment of an issue (the endpoint is not paginated).
    pub async fn list_comments(&self, number: u64) -> Result<Vec<Comment>, Error> {
        let path = self.repo_path(&format!("/issues/{number}/comments"));
        Ok(self.call("GET", &path, &[], None::<&()>).await?.0)
    }

    /// Opens or closes an issue (`PATCH`, which answers `201`).
    pub async fn set_state(&self, number: u64, state: IssueState) -> Result<Issue, Error> {
        let path = self.repo_path(&format!("/issues/{number}"));
        Ok(self
            .call(
                "PATCH",
                &path,
                &[],
                Some(&EditIssueOption {
                    state: Some(state),
                    ..EditIssueOption::default()
                }),
            )
            .await?
            .0)
    }

    /// Replaces an issue's body (`PATCH`, which answers `201`).
    pub async fn set_body(&self, number: u64, body: &str) -> Result<Issue, Error> {
        let path = self.repo_path(&format!("/issues/{number}"));
        let opt = EditIssueOption {
            body: Some(body.to_owned()),
            ..EditIssueOption::default()
        };
        Ok(self.call("PATCH", &path, &[], Some(&opt)).await?.0)
    }

    /// Adds labels (by id) to an issue (`200` with every label it now has).
    pub async fn add_labels(&self, number: u64, ids: &[i64]) -> Result<Vec<Label>, Error> {
        let path = self.repo_path(&format!("/issues/{number}/labels"));
        let opt = IssueLabelsOption {
            labels: ids.to_vec(),
        };
        Ok(self.call("POST", &path, &[], Some(&opt)).await?.0)
    }

    /// Every label of the repository (paginated by `X-Total-Count`; no `Link`).
    pub async fn list_labels(&self) -> Result<Vec<Label>, Error> {
        self.paginate(&self.repo_path("/labels"), &[], 100).await
    }

    /// Creates a label (`201`). Gitea allows duplicate names: list first.
    pub async fn create_label(&self, opt: &CreateLabelOption) -> Result<Label, Error> {
        let path = self.repo_path("/labels");
        Ok(self.call("POST", &path, &[], Some(opt)).await?.0)
    }

    /// Deletes a label (`204`; a missing label is not an error).
    pub async fn delete_label(&self, id: i64) -> Result<(), Error> {
        let path = self.repo_path(&format!("/labels/{id}"));
        match self.send("DELETE", &path, &[], None).await {
            Ok(_) | Err(Error::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Ids of the named labels, creating the missing ones (with `color`).
    pub async fn ensure_labels(&self, names: &[&str], color: &str) -> Result<Vec<i64>, Error> {
        let existing = self.list_labels().await?;
        let mut ids = Vec::with_capacity(names.len());
        for name in names {
            let id = match existing
                .iter()
                .filter(|l| l.name == *name)
                .map(|l| l.id)
                .min()
            {
                Some(id) => id,
                None => {
                    let opt = CreateLabelOption {
                        name: (*name).to_owned(),
                        color: color.to_owned(),
                        description: "managed by the nexus incident engine".into(),
                    };
                    let created = self.create_label(&opt).await?.id;
                    // Gitea allows duplicate names, and two labels with one
                    // name break the `labels=` filter (AND over both ids). If
                    // another monitor created the same label concurrently,
                    // keep the lowest id and delete ours.
                    let lowest = self
                        .list_labels()
                        .await?
                        .iter()
                        .filter(|l| l.name == *name)
                        .map(|l| l.id)
                        .min()
                        .unwrap_or(created);
                    if lowest != created {
                        self.delete_label(created).await?;
                    }
                    lowest
                }
            };
            ids.push(id);
        }
        Ok(ids)
    }

    /// Whether a user exists (`GET /users/{name}`: 200 yes, 404 no). A name
    /// that cannot be a Gitea login is reported missing without a request.
    pub async fn user_exists(&self, login: &str) -> Result<bool, Error> {
        if !valid_name(login) {
            return Ok(false);
        }
        let path = format!("/users/{login}");
        match self.send("GET", &path, &[], None).await {
            Ok(_) => Ok(true),
            Err(Error::Status { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Reads at most `cap` bytes of the body, chunk by chunk; `true` when the
/// body was longer (the rest is never read: dropping the response closes
/// the connection). A `Content-Length` over the cap stops before reading.
async fn read_capped(
    resp: &mut reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    if resp.status().is_success() && resp.content_length().is_some_and(|n| n > cap as u64) {
        return Ok((Vec::new(), true));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// A transport error as text, without the URL, with its causes.
fn transport_detail(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "transport error"
    };
    let e = e.without_url();
    let mut s = format!("{kind}: {e}");
    let mut src = std::error::Error::source(&e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Gitea's APIError `message`, else the body text, else empty (raw: the
/// caller cleans it).
fn gitea_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ApiError {
        message: Option<String>,
    }
    if let Ok(ApiError { message: Some(m) }) = serde_json::from_slice::<ApiError>(body) {
        return m;
    }
    String::from_utf8_lossy(body).trim().to_owned()
}
