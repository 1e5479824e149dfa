//! The subset of the Gitea v1 API types the engine uses, with the field names of
//! `gitea-swagger-v1.json`. Response types ignore unknown fields and accept
//! `null` wherever Gitea sends it; request types skip unset options.

use serde::{Deserialize, Serialize};

/// `state` of an issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueState {
    /// Open.
    Open,
    /// Closed.
    Closed,
}

impl IssueState {
    /// The wire form (`open` / `closed`).
    pub fn as_str(self) -> &'static str {
        match self {
            IssueState::Open => "open",
            IssueState::Closed => "closed",
        }
    }
}

/// `Label` (response).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Label {
    /// Label id (what `CreateIssueOption.labels` takes).
    pub id: i64,
    /// Name.
    pub name: String,
    /// Colour, rendered without `#`.
    #[serde(default)]
    pub color: String,
}

/// `User` (response; only what we read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    /// User id.
    pub id: i64,
    /// Login name.
    pub login: String,
}

/// `Issue` (response; only what we read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Issue {
    /// Global id.
    pub id: i64,
    /// Per-repository number: what paths take as `{index}`.
    pub number: u64,
    /// Title.
    pub title: String,
    /// Markdown body (may be `null` or empty).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub body: String,
    /// `open` or `closed`.
    pub state: IssueState,
    /// Labels on the issue.
    #[serde(default, deserialize_with = "null_as_empty_vec")]
    pub labels: Vec<Label>,
    /// Web link.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub html_url: String,
    /// RFC 3339 creation time.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub created_at: String,
    /// How many comments the issue has.
    #[serde(default)]
    pub comments: u64,
    /// RFC 3339 close time, when closed.
    #[serde(default)]
    pub closed_at: Option<String>,
    /// Set for pull requests (we list with `type=issues`, this is belt and braces).
    #[serde(default)]
    pub pull_request: Option<serde_json::Value>,
}

/// `Comment` (response; only what we read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Comment {
    /// Comment id.
    pub id: i64,
    /// Markdown body.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub body: String,
    /// RFC 3339 creation time.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub created_at: String,
}

/// `CreateIssueOption` (request body of `POST /repos/{o}/{r}/issues`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateIssueOption {
    /// Required.
    pub title: String,
    /// Markdown body.
    pub body: String,
    /// Usernames.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assignees: Vec<String>,
    /// Label **ids**.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<i64>,
}

/// `EditIssueOption` (request body of `PATCH /repos/{o}/{r}/issues/{index}`),
/// reduced to the changes we make; an omitted field is left unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EditIssueOption {
    /// `open` or `closed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<IssueState>,
    /// Replacement Markdown body (the whole body, not a diff).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// `IssueLabelsOption` (request body of `POST /repos/{o}/{r}/issues/{index}/labels`),
/// with label **ids** (Gitea refuses a mix of ids and names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssueLabelsOption {
    /// Label ids to add.
    pub labels: Vec<i64>,
}

/// `CreateIssueCommentOption`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateIssueCommentOption {
    /// Required Markdown body.
    pub body: String,
}

/// `CreateLabelOption`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateLabelOption {
    /// Required.
    pub name: String,
    /// Required, `#rrggbb`.
    pub color: String,
    /// Free text.
    pub description: String,
}

/// Query of `GET /repos/{o}/{r}/issues`; `type=issues` is always sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueQuery {
    /// `open`, `closed`, or `None` for `all`.
    pub state: Option<IssueState>,
    /// Label names (AND on the server). Make sure they exist: Gitea drops
    /// unknown names and applies no filter at all when every name is unknown.
    pub labels: Vec<String>,
    /// Stop after this many pages (bounds the loop; newest issues come first).
    pub max_pages: u32,
}

impl IssueQuery {
    /// Open issues carrying every one of `labels`, all pages.
    pub fn open_with_labels(labels: &[&str]) -> IssueQuery {
        IssueQuery {
            state: Some(IssueState::Open),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            max_pages: 1000,
        }
    }
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

fn null_as_empty_vec<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}
