//! A stateful fake Gitea behind mockito: one catch-all mock per method whose
//! status, headers and body are computed by [`FakeState::handle`] from a
//! shared state. Requests are served one at a time (mockito holds its lock
//! across the callbacks), so the status callback computes the whole answer
//! and the header/body callbacks read it back.
//!
//! It follows `gitea-issues.md`: `Authorization: token`, `limit` capped at 50
//! (default 30), newest-created first, `X-Total-Count` and `Link` on issue
//! lists (label lists: count only), label filter by names with AND semantics
//! (unknown names dropped; all unknown = no filter), `labels` in
//! CreateIssueOption are ids, PATCH answers 201 (state, title, body),
//! labels added to an issue by ids or names (never a mix: 400), comments
//! with their creation times and counted on the issue, `updated_at` moved
//! by every change, 422 for a bad assignee, 404 for an unknown user. Every request body we receive and every response
//! body we send is validated against the swagger; violations are recorded
//! and [`Fake::assert_contract`] fails the test on any.

#![allow(missing_debug_implementations)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use mockito::{Matcher, Mock, ServerGuard};
use serde_json::{Value, json};

use super::swagger;
use crate::tcp::Gate;

pub const TOKEN: &str = "s3cr3t-t0ken-value";
pub const REPO: &str = "ops/alerts";

#[derive(Debug, Clone)]
pub struct FIssue {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub open: bool,
    pub labels: Vec<i64>,
    pub assignees: Vec<String>,
    pub created: i64,
    pub closed_at: Option<i64>,
}

#[derive(Debug, Default)]
pub struct FakeState {
    pub issues: Vec<FIssue>,
    pub labels: Vec<(i64, String, String)>,
    pub comments: Vec<(u64, String)>,
    /// When each of `comments` was made (epoch s), in the same order.
    pub comment_times: Vec<i64>,
    /// The last edit of an issue (epoch s): a PATCH or labels added.
    pub edited: Vec<(u64, i64)>,
    /// Users that exist; `assignable` is the subset that can be assigned.
    pub users: Vec<String>,
    pub assignable: Vec<String>,
    /// `METHOD path?query` of every request, in order.
    pub log: Vec<String>,
    /// Statuses to answer (with an APIError body) before serving normally.
    pub fail_next: VecDeque<u16>,
    /// Answer 503 to everything.
    pub down: bool,
    /// Answer everything with this status and an `APIError` whose message
    /// reflects the request (headers, path) behind escape sequences and a
    /// forged log line ([`crate::reflect`]).
    pub reflect: Option<u16>,
    /// The next this-many requests are carried out, but answered only after
    /// `slow_by` (past the client's timeout): the client sees a timeout for
    /// a request that took effect, as with an overloaded Gitea.
    pub slow_next: u32,
    pub slow_by: std::time::Duration,
    /// Only requests whose `METHOD path` starts with this are slowed ("" = any).
    pub slow_prefix: String,
    /// Inserted just before the next created issue (simulates another host
    /// creating the same subject's issue between our find and our create).
    pub inject_before_create: Option<FIssue>,
    pub violations: Vec<String>,
    /// Requests whose path, query or body held a canary token (checked on
    /// drop of [`Fake`], for every test that uses it).
    pub leaks: Vec<String>,
    next_id: i64,
    clock: i64,
}

pub struct Reply {
    delay: std::time::Duration,
    status: usize,
    total: String,
    link: String,
    body: String,
}

fn ts(epoch: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(epoch)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

impl FakeState {
    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// The fake's clock (epoch s), one second further at every change.
    fn tick(&mut self) -> i64 {
        self.clock += 1;
        1_767_225_600 + self.clock
    }

    /// A comment on issue `number` made at `at` (epoch s), as if a person
    /// or another tool had written it.
    pub fn add_comment(&mut self, number: u64, body: &str, at: i64) {
        self.comments.push((number, body.to_owned()));
        self.comment_times.push(at);
    }

    fn edit(&mut self, number: u64) {
        let now = self.tick();
        self.edited.retain(|e| e.0 != number);
        self.edited.push((number, now));
    }

    pub fn add_label(&mut self, name: &str) -> i64 {
        let id = self.id();
        self.labels.push((id, name.to_owned(), "e11d21".into()));
        id
    }

    pub fn add_issue(&mut self, title: &str, body: &str, labels: Vec<i64>) -> u64 {
        let number = self.issues.iter().map(|i| i.number).max().unwrap_or(0) + 1;
        self.clock += 1;
        self.issues.push(FIssue {
            number,
            title: title.into(),
            body: body.into(),
            open: true,
            labels,
            assignees: vec![],
            created: 1_767_225_600 + self.clock,
            closed_at: None,
        });
        number
    }

    pub fn open_issues(&self) -> Vec<&FIssue> {
        self.issues.iter().filter(|i| i.open).collect()
    }

    /// Requests whose log line starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.log.iter().filter(|l| l.starts_with(prefix)).count()
    }

    fn label_json(&self, id: i64) -> Value {
        let (id, name, color) = self.labels.iter().find(|l| l.0 == id).cloned().unwrap();
        json!({"id": id, "name": name, "exclusive": false, "is_archived": false, "color": color,
               "description": "", "url": format!("https://git.example.com/api/v1/repos/{REPO}/labels/{id}")})
    }

    /// The number of the issue whose number is spelled `n` in a path.
    fn number_of(&self, n: &str) -> Option<u64> {
        self.issues
            .iter()
            .find(|i| i.number.to_string() == n)
            .map(|i| i.number)
    }

    /// A comment on issue `n`, as the API returns it.
    fn comment_json(n: &str, id: i64, body: &str, at: i64) -> Value {
        json!({"id": id, "html_url": format!("https://git.example.com/{REPO}/issues/{n}#issuecomment-{id}"),
            "pull_request_url": "", "issue_url": format!("https://git.example.com/{REPO}/issues/{n}"),
            "user": Self::user_json("monitor"), "original_author": "", "original_author_id": 0,
            "body": body, "assets": [], "created_at": ts(at), "updated_at": ts(at)})
    }

    /// When comment `k` (an index of `comments`) was made.
    fn comment_time(&self, k: usize) -> i64 {
        self.comment_times.get(k).copied().unwrap_or(1_767_225_600)
    }

    fn user_json(login: &str) -> Value {
        json!({"id": 3, "login": login, "login_name": "", "source_id": 0, "full_name": "", "email": format!("{login}@example.com"),
               "avatar_url": "", "html_url": format!("https://git.example.com/{login}"), "language": "", "is_admin": false,
               "last_login": "2026-01-01T00:00:00Z", "created": "2026-01-01T00:00:00Z", "restricted": false, "active": true,
               "prohibit_login": false, "location": "", "website": "", "description": "", "visibility": "public",
               "followers_count": 0, "following_count": 0, "starred_repos_count": 0})
    }

    fn issue_json(&self, i: &FIssue) -> Value {
        let assignees: Vec<Value> = i.assignees.iter().map(|a| Self::user_json(a)).collect();
        let comments: Vec<usize> = (0..self.comments.len())
            .filter(|k| self.comments[*k].0 == i.number)
            .collect();
        let updated = comments
            .iter()
            .map(|k| self.comment_time(*k))
            .chain(self.edited.iter().filter(|e| e.0 == i.number).map(|e| e.1))
            .chain(i.closed_at)
            .fold(i.created, i64::max);
        json!({
            "id": 1000 + i.number, "url": format!("https://git.example.com/api/v1/repos/{REPO}/issues/{}", i.number),
            "html_url": format!("https://git.example.com/{REPO}/issues/{}", i.number), "number": i.number,
            "user": Self::user_json("monitor"), "original_author": "", "original_author_id": 0,
            "title": i.title, "body": i.body, "ref": "", "assets": [],
            "labels": i.labels.iter().map(|l| self.label_json(*l)).collect::<Vec<_>>(),
            "milestone": null, "assignee": assignees.first().cloned(),
            "assignees": if assignees.is_empty() { Value::Null } else { Value::Array(assignees) },
            "state": if i.open { "open" } else { "closed" }, "is_locked": false, "comments": comments.len(),
            "created_at": ts(i.created), "updated_at": ts(updated),
            "closed_at": i.closed_at.map(ts), "due_date": null, "pull_request": null,
            "repository": {"id": 5, "name": "alerts", "owner": "ops", "full_name": REPO}, "pin_order": 0
        })
    }

    fn validated(&mut self, def: &str, v: &Value, what: &str) {
        for e in swagger::check(def, v) {
            self.violations.push(format!("{what}: {e}"));
        }
    }

    fn err(status: usize, msg: &str) -> Reply {
        Reply {
            delay: std::time::Duration::ZERO,
            status,
            total: String::new(),
            link: String::new(),
            body: json!({"message": msg, "url": "https://git.example.com/api/swagger"}).to_string(),
        }
    }

    fn ok(status: usize, body: Value) -> Reply {
        Reply {
            delay: std::time::Duration::ZERO,
            status,
            total: String::new(),
            link: String::new(),
            body: body.to_string(),
        }
    }

    pub fn handle(&mut self, req: &mockito::Request) -> Reply {
        let mut r = self.serve(req);
        let line = self.log.last().cloned().unwrap_or_default();
        if self.slow_next > 0 && !self.down && line.starts_with(&self.slow_prefix) {
            self.slow_next -= 1;
            r.delay = self.slow_by;
            self.log
                .push(format!("(answer to {line} delayed {:?})", self.slow_by));
        }
        r
    }

    /// Comment bodies of an issue, oldest first.
    pub fn comments_of(&self, number: u64) -> Vec<&str> {
        self.comments
            .iter()
            .filter(|c| c.0 == number)
            .map(|c| c.1.as_str())
            .collect()
    }

    fn serve(&mut self, req: &mockito::Request) -> Reply {
        let method = req.method().to_owned();
        let pq = req.path_and_query().to_owned();
        self.log.push(format!("{method} {pq}"));
        // The token belongs in the Authorization header, nowhere else: not
        // in a title, body, comment, label or URL.
        let raw = req.body().map(|b| b.as_slice()).unwrap_or_default();
        for (part, text) in [("URL", pq.as_bytes()), ("body", raw)] {
            let found = crate::canary::leaks(text);
            if !found.is_empty() {
                self.leaks.push(format!(
                    "{method} {pq}: {found:?} in the {part}: {}",
                    String::from_utf8_lossy(text)
                ));
            }
        }
        if self.down {
            return Self::err(503, "");
        }
        if let Some(status) = self.reflect {
            let mut r = Self::err(status.into(), "");
            r.body = crate::reflect::gitea_error(&crate::reflect::head_of(req));
            self.validated(
                "APIError",
                &serde_json::from_str(&r.body).unwrap(),
                "reflected error",
            );
            return r;
        }
        let auth = req.header("authorization");
        if auth.len() != 1 || auth[0].to_str().ok() != Some(&format!("token {TOKEN}")) {
            return Self::err(401, "user does not exist [uid: 0, name: ]");
        }
        if let Some(s) = self.fail_next.pop_front() {
            return Self::err(s as usize, "");
        }
        let (path, query) = pq.split_once('?').unwrap_or((&pq, ""));
        let q: Vec<(String, String)> = url_pairs(query);
        let get = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
        let body: Value = req
            .body()
            .ok()
            .filter(|b| !b.is_empty())
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let base = format!("/api/v1/repos/{REPO}");
        let Some(rest) = path.strip_prefix(&base) else {
            if let Some(user) = path.strip_prefix("/api/v1/users/") {
                return if self.users.iter().any(|u| u == user) {
                    let v = Self::user_json(user);
                    self.validated("User", &v, "GET user response");
                    Self::ok(200, v)
                } else {
                    Self::err(404, &format!("user redirect does not exist [name: {user}]"))
                };
            }
            return Self::err(404, "The target couldn't be found.");
        };
        let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        match (method.as_str(), segs.as_slice()) {
            ("GET", ["issues"]) => {
                let state = get("state").unwrap_or_else(|| "open".into());
                let mut label_ids: Vec<i64> = Vec::new();
                let mut any_known = false;
                for name in get("labels")
                    .unwrap_or_default()
                    .split(',')
                    .filter(|s| !s.is_empty())
                {
                    let ids: Vec<i64> = self
                        .labels
                        .iter()
                        .filter(|l| l.1 == name)
                        .map(|l| l.0)
                        .collect();
                    any_known |= !ids.is_empty();
                    label_ids.extend(ids);
                }
                let mut items: Vec<&FIssue> = self
                    .issues
                    .iter()
                    .filter(|i| match state.as_str() {
                        "closed" => !i.open,
                        "all" => true,
                        _ => i.open,
                    })
                    .filter(|i| !any_known || label_ids.iter().all(|l| i.labels.contains(l)))
                    .collect();
                items.sort_by_key(|i| std::cmp::Reverse(i.created));
                let page_reply = self.page(
                    &items.iter().map(|i| self.issue_json(i)).collect::<Vec<_>>(),
                    &get,
                    &base,
                    true,
                );
                if let Ok(Value::Array(a)) = serde_json::from_str::<Value>(&page_reply.body) {
                    for v in a {
                        self.validated("Issue", &v, "GET issues response");
                    }
                }
                page_reply
            }
            ("GET", ["issues", n]) => match self.issues.iter().find(|i| i.number.to_string() == *n)
            {
                Some(i) => {
                    let v = self.issue_json(i);
                    self.validated("Issue", &v, "GET issue response");
                    Self::ok(200, v)
                }
                None => Self::err(404, "The target couldn't be found."),
            },
            ("POST", ["issues"]) => {
                self.validated("CreateIssueOption", &body, "POST issues request");
                let Some(title) = body["title"].as_str().filter(|t| !t.is_empty()) else {
                    return Self::err(422, "[Title]: Required");
                };
                let assignees: Vec<String> = body["assignees"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                for a in &assignees {
                    if !self.users.contains(a) {
                        return Self::err(
                            422,
                            &format!(
                                "Assignee does not exist: [name: user does not exist [uid: 0, name: {a}]]"
                            ),
                        );
                    }
                    if !self.assignable.contains(a) {
                        return Self::err(
                            422,
                            &format!(
                                "user doesn't have access to repo [user_id: 7, repo_name: alerts] ({a})"
                            ),
                        );
                    }
                }
                // Unknown label ids are silently dropped, like Gitea.
                let labels: Vec<i64> = body["labels"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_i64)
                            .filter(|id| self.labels.iter().any(|l| l.0 == *id))
                            .collect()
                    })
                    .unwrap_or_default();
                if let Some(other) = self.inject_before_create.take() {
                    // The other host's issue carries the same labels as ours.
                    let n = self.add_issue(&other.title, &other.body, labels.clone());
                    self.log.push(format!("(injected concurrent issue #{n})"));
                }
                let n = self.add_issue(title, body["body"].as_str().unwrap_or_default(), labels);
                let issue = self.issues.iter().find(|i| i.number == n).unwrap().clone();
                let issue = FIssue { assignees, ..issue };
                *self.issues.iter_mut().find(|i| i.number == n).unwrap() = issue.clone();
                let v = self.issue_json(&issue);
                self.validated("Issue", &v, "POST issues response");
                Self::ok(201, v)
            }
            ("PATCH", ["issues", n]) => {
                self.validated("EditIssueOption", &body, "PATCH issue request");
                let Some(number) = self.number_of(n) else {
                    return Self::err(404, "The target couldn't be found.");
                };
                self.edit(number);
                let now = self.tick();
                let Some(i) = self.issues.iter_mut().find(|i| i.number == number) else {
                    return Self::err(404, "The target couldn't be found.");
                };
                if let Some(title) = body["title"].as_str() {
                    i.title = title.to_owned();
                }
                if let Some(text) = body["body"].as_str() {
                    i.body = text.to_owned();
                }
                match body["state"].as_str() {
                    Some("closed") => {
                        if i.open {
                            i.closed_at = Some(now);
                        }
                        i.open = false;
                    }
                    Some("open") => {
                        i.open = true;
                        i.closed_at = None;
                    }
                    Some(other) => return Self::err(412, &format!("unknown state: {other}")),
                    None => {}
                }
                let i = i.clone();
                let v = self.issue_json(&i);
                self.validated("Issue", &v, "PATCH issue response");
                Self::ok(201, v)
            }
            ("GET", ["issues", n, "comments"]) => {
                let Some(number) = self.number_of(n) else {
                    return Self::err(404, "The target couldn't be found.");
                };
                let items: Vec<Value> = self
                    .comments
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.0 == number)
                    .map(|(k, c)| {
                        Self::comment_json(n, 100_000 + k as i64, &c.1, self.comment_time(k))
                    })
                    .collect();
                for v in &items {
                    self.validated("Comment", v, "GET comments response");
                }
                let total = items.len();
                Reply {
                    delay: std::time::Duration::ZERO,
                    status: 200,
                    total: total.to_string(),
                    link: String::new(),
                    body: Value::Array(items).to_string(),
                }
            }
            ("POST", ["issues", n, "comments"]) => {
                self.validated("CreateIssueCommentOption", &body, "POST comment request");
                let Some(b) = body["body"].as_str().filter(|b| !b.is_empty()) else {
                    return Self::err(422, "[Body]: Required");
                };
                let Some(number) = self.number_of(n) else {
                    return Self::err(500, "");
                };
                let at = self.tick();
                self.add_comment(number, b, at);
                let v = Self::comment_json(n, self.id(), b, at);
                self.validated("Comment", &v, "POST comment response");
                Self::ok(201, v)
            }
            ("POST", ["issues", n, "labels"]) => {
                self.validated("IssueLabelsOption", &body, "POST issue labels request");
                let Some(number) = self.number_of(n) else {
                    return Self::err(404, "The target couldn't be found.");
                };
                let given = body["labels"].as_array().cloned().unwrap_or_default();
                let (ids, names): (Vec<&Value>, Vec<&Value>) =
                    given.iter().partition(|v| v.is_i64());
                if names.iter().any(|v| !v.is_string()) {
                    return Self::err(400, "a label must be an integer or a string");
                }
                if !ids.is_empty() && !names.is_empty() {
                    return Self::err(400, "labels should be an array of strings or integers");
                }
                // Unknown ids and names are silently ignored, like Gitea.
                let add: Vec<i64> = self
                    .labels
                    .iter()
                    .filter(|l| {
                        ids.iter().any(|v| v.as_i64() == Some(l.0))
                            || names.iter().any(|v| v.as_str() == Some(l.1.as_str()))
                    })
                    .map(|l| l.0)
                    .collect();
                self.edit(number);
                let Some(i) = self.issues.iter_mut().find(|i| i.number == number) else {
                    return Self::err(404, "The target couldn't be found.");
                };
                for id in add {
                    if !i.labels.contains(&id) {
                        i.labels.push(id);
                    }
                }
                let now: Vec<i64> = i.labels.clone();
                let items: Vec<Value> = now.iter().map(|l| self.label_json(*l)).collect();
                for v in &items {
                    self.validated("Label", v, "POST issue labels response");
                }
                Self::ok(200, Value::Array(items))
            }
            ("GET", ["labels"]) => {
                let mut labels = self.labels.clone();
                labels.sort_by(|a, b| a.1.cmp(&b.1));
                let items: Vec<Value> = labels.iter().map(|l| self.label_json(l.0)).collect();
                for v in &items {
                    self.validated("Label", v, "GET labels response");
                }
                self.page(&items, &get, &base, false)
            }
            ("POST", ["labels"]) => {
                self.validated("CreateLabelOption", &body, "POST label request");
                let (Some(name), Some(color)) = (body["name"].as_str(), body["color"].as_str())
                else {
                    return Self::err(422, "[Name]: Required");
                };
                let c = color.trim_start_matches('#').to_lowercase();
                if !(c.len() == 6 || c.len() == 3) || !c.chars().all(|ch| ch.is_ascii_hexdigit()) {
                    return Self::err(422, &format!("bad color code: {color}"));
                }
                let id = self.id();
                self.labels.push((id, name.to_owned(), c));
                let v = self.label_json(id);
                self.validated("Label", &v, "POST label response");
                Self::ok(201, v)
            }
            ("DELETE", ["labels", id]) => {
                let before = self.labels.len();
                self.labels.retain(|l| l.0.to_string() != *id);
                if self.labels.len() == before {
                    return Self::err(404, "The target couldn't be found.");
                }
                let id: i64 = id.parse().unwrap_or_default();
                for i in &mut self.issues {
                    i.labels.retain(|l| *l != id);
                }
                Reply {
                    delay: std::time::Duration::ZERO,
                    status: 204,
                    total: String::new(),
                    link: String::new(),
                    body: String::new(),
                }
            }
            _ => Self::err(404, "The target couldn't be found."),
        }
    }

    fn page(
        &self,
        items: &[Value],
        get: &dyn Fn(&str) -> Option<String>,
        base: &str,
        link: bool,
    ) -> Reply {
        let page: usize = get("page")
            .and_then(|p| p.parse().ok())
            .filter(|p| *p > 0)
            .unwrap_or(1);
        let limit: usize = match get("limit").and_then(|p| p.parse::<usize>().ok()) {
            Some(l) if l > 0 => l.min(50),
            _ => 30,
        };
        let total = items.len();
        let slice: Vec<Value> = items
            .iter()
            .skip((page - 1) * limit)
            .take(limit)
            .cloned()
            .collect();
        let pages = total.div_ceil(limit).max(1);
        let mut links = Vec::new();
        let url = |p: usize| {
            format!(
                "<https://git.example.com{base}/issues?limit={limit}&page={p}&state=open&type=issues>"
            )
        };
        if link && pages > 1 {
            if page < pages {
                links.push(format!("{}; rel=\"next\"", url(page + 1)));
                links.push(format!("{}; rel=\"last\"", url(pages)));
            }
            if page > 1 {
                links.push(format!("{}; rel=\"first\"", url(1)));
                links.push(format!("{}; rel=\"prev\"", url(page - 1)));
            }
        }
        Reply {
            delay: std::time::Duration::ZERO,
            status: 200,
            total: total.to_string(),
            link: links.join(","),
            body: Value::Array(slice).to_string(),
        }
    }
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct Fake {
    pub server: ServerGuard,
    /// What clients talk to: a forwarder that [`Fake::unreachable`] closes.
    pub gate: Gate,
    pub state: Arc<Mutex<FakeState>>,
    _mocks: Vec<Mock>,
}

/// Every test that starts the fake is checked for leaked tokens when the
/// fake goes away (unless the test is already failing).
impl Drop for Fake {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let leaks = match self.state.lock() {
            Ok(s) => s.leaks.clone(),
            Err(p) => p.into_inner().leaks.clone(),
        };
        assert!(
            leaks.is_empty(),
            "secrets sent to Gitea:\n{}",
            leaks.join("\n")
        );
    }
}

impl Fake {
    pub async fn start() -> Fake {
        let mut server = mockito::Server::new_async().await;
        let state = Arc::new(Mutex::new(FakeState {
            users: vec!["alice".into(), "bob".into()],
            assignable: vec!["alice".into()],
            ..FakeState::default()
        }));
        let slot: Arc<Mutex<Option<Reply>>> = Arc::new(Mutex::new(None));
        let mut mocks = Vec::new();
        for method in ["GET", "POST", "PATCH", "DELETE"] {
            let (st, s1, s2, s3, s4) = (
                state.clone(),
                slot.clone(),
                slot.clone(),
                slot.clone(),
                slot.clone(),
            );
            let m = server
                .mock(method, Matcher::Any)
                .with_status_code_from_request(move |req| {
                    let r = st.lock().unwrap().handle(req);
                    let status = r.status;
                    *s1.lock().unwrap() = Some(r);
                    status
                })
                .with_header("content-type", "application/json;charset=utf-8")
                .with_header_from_request("x-total-count", move |_| {
                    s2.lock()
                        .unwrap()
                        .as_ref()
                        .map(|r| r.total.clone())
                        .unwrap_or_default()
                })
                .with_header_from_request("link", move |_| {
                    s3.lock()
                        .unwrap()
                        .as_ref()
                        .map(|r| r.link.clone())
                        .unwrap_or_default()
                })
                .with_body_from_request(move |_| {
                    let r = s4.lock().unwrap().take();
                    match r {
                        Some(r) => {
                            // Late answer: the state already changed.
                            std::thread::sleep(r.delay);
                            r.body.into_bytes()
                        }
                        None => Vec::new(),
                    }
                })
                .create_async()
                .await;
            mocks.push(m);
        }
        let gate = Gate::start(server.socket_address());
        Fake {
            server,
            gate,
            state,
            _mocks: mocks,
        }
    }

    /// The URL clients use (through the gate).
    pub fn url(&self) -> String {
        format!("http://{}", self.gate.addr)
    }

    /// Closes the port: connects are refused, open connections are cut.
    pub fn unreachable(&self) {
        self.gate.close();
    }

    /// Listens again on the same port.
    pub fn reachable(&self) {
        self.gate.open();
    }

    /// Accepts connections and never answers (a hung Gitea) until
    /// [`Fake::reachable`].
    pub fn hung(&self) {
        self.gate.hang();
    }

    pub fn st(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// Fails the test if a canary token reached the fake in a URL or body.
    pub fn assert_no_leaks(&self) {
        let l = &self.st().leaks;
        assert!(l.is_empty(), "secrets sent to Gitea:\n{}", l.join("\n"));
    }

    /// Fails the test if any body broke the swagger contract.
    pub fn assert_contract(&self) {
        let v = &self.st().violations;
        assert!(
            v.is_empty(),
            "swagger contract violations:\n{}",
            v.join("\n")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn post(fake: &Fake, path: &str, body: &str) {
        let addr = fake.server.host_with_port();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: token {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).await.unwrap();
        assert!(reply.starts_with(b"HTTP/1.1 "), "{reply:?}");
    }

    #[tokio::test]
    async fn a_token_in_an_issue_or_a_url_is_caught() {
        let fake = Fake::start().await;
        let issues = format!("/api/v1/repos/{REPO}/issues");
        post(&fake, &issues, r#"{"title":"[x] down","body":"all fine"}"#).await;
        assert!(fake.st().leaks.is_empty());
        let leaked = format!(r#"{{"title":"[x] down","body":"GITEA_TOKEN={TOKEN}"}}"#);
        post(&fake, &issues, &leaked).await;
        let tg = crate::canary::TELEGRAM_TOKEN;
        post(
            &fake,
            &format!("{issues}/1/comments?x={tg}"),
            r#"{"body":"b"}"#,
        )
        .await;
        let leaks = std::mem::take(&mut fake.st().leaks);
        assert_eq!(leaks.len(), 2, "{leaks:?}");
        assert!(
            leaks[0].contains("body") && leaks[1].contains("URL"),
            "{leaks:?}"
        );
    }
}
