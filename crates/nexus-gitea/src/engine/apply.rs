//! Applying an action on Gitea: finding a subject's open issues (by
//! fingerprint, or by title as the original tools filed them), settling
//! duplicates, commenting once, and opening, reopening, commenting on,
//! capping and resolving issues.

use crate::check::Check;
use crate::client::GiteaClient;
use crate::error::Error;
use crate::outbox::{ActionKind, QueuedAction};
use crate::state::{Closed, SubjectState};
use crate::types::{CreateIssueOption, Issue, IssueQuery, IssueState};

use super::Engine;
use super::bodies::{MARKER_START, action_marker, fingerprint_label, marker, signature};
use super::types::Outcome;

fn issue_matches(issue: &Issue, fp: &str) -> bool {
    let label = fingerprint_label(fp);
    issue.body.contains(&marker(fp)) || issue.labels.iter().any(|l| l.name == label)
}

/// Whether an issue carries an engine fingerprint (a body marker or an
/// `nx-` label), this subject's or another's.
fn has_fingerprint(issue: &Issue) -> bool {
    issue.body.contains(MARKER_START) || issue.labels.iter().any(|l| l.name.starts_with("nx-"))
}

/// Whether `title` is one of a subject's titles: `prefix`, then nothing or
/// a space. So the prefix `[pool] a:` never takes `[pool] ab: agent dead`,
/// nor `[watchdog]` a `[watchdog]x` title; an empty prefix takes nothing.
fn title_matches(title: &str, prefix: &str) -> bool {
    let prefix = prefix.trim();
    !prefix.is_empty()
        && title
            .trim_start()
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
}

/// Epoch seconds of an RFC 3339 time from Gitea; `None` if it is not one.
pub(super) fn parse_rfc3339(t: &str) -> Option<i64> {
    time::OffsetDateTime::parse(t.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

impl Engine {
    pub(super) fn client(&self) -> Result<GiteaClient, Error> {
        self.client.clone().ok_or(Error::Config {
            field: "token",
            why: "no Gitea client configured".into(),
        })
    }

    pub(super) fn title(&self, check: &Check) -> String {
        let t = format!("{} {}", self.cfg.title_prefix.trim(), check.summary.trim());
        t.trim().chars().take(250).collect()
    }

    /// The title prefix that names a subject's issues (docs/SPEC.md §1.5):
    /// `<title_prefix> <title_subject>`, or the title prefix alone.
    pub(super) fn subject_prefix(&self, check: &Check) -> String {
        let prefix = self.cfg.title_prefix.trim();
        match check.title_subject.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => format!("{prefix} {s}").trim().to_owned(),
            _ => prefix.to_owned(),
        }
    }

    /// Open issues of the subject, lowest number first: those with its
    /// fingerprint, and those with the engine label and the subject's title
    /// prefix but no fingerprint at all (filed by the original tools),
    /// found on every page. With `quick`, the remembered issue is checked
    /// first with one GET.
    pub(super) async fn find_open(
        &self,
        st: &SubjectState,
        check: &Check,
        quick: bool,
    ) -> Result<Vec<Issue>, Error> {
        let client = self.client()?;
        if quick && let Some(n) = st.open_issue {
            match client.get_issue(n).await {
                Ok(i) if i.state == IssueState::Open && issue_matches(&i, &st.fingerprint) => {
                    return Ok(vec![i]);
                }
                Ok(_) | Err(Error::Status { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let prefix = self.subject_prefix(check);
        let mut found: Vec<Issue> = client
            .list_issues(&IssueQuery::open_with_labels(&[&self.cfg.label]))
            .await?
            .into_iter()
            .filter(|i| {
                i.state == IssueState::Open
                    && (issue_matches(i, &st.fingerprint)
                        || (!has_fingerprint(i) && title_matches(&i.title, &prefix)))
            })
            .collect();
        found.sort_by_key(|i| i.number);
        Ok(found)
    }

    /// Keeps the lowest-numbered of a subject's open issues (`open`, sorted)
    /// and closes every other one as its duplicate (docs/SPEC.md §1.5). The
    /// one kept, if it has no fingerprint (filed by the original tools), is
    /// adopted: the fingerprint is added to its body and labels, so it is
    /// found as this subject's from then on. Returns the issue kept.
    pub(super) async fn settle(
        &self,
        st: &SubjectState,
        open: Vec<Issue>,
    ) -> Result<Option<Issue>, Error> {
        let client = self.client()?;
        let mut open = open.into_iter();
        let Some(mut keep) = open.next() else {
            return Ok(None);
        };
        if !issue_matches(&keep, &st.fingerprint) {
            let body = format!("{}\n\n{}\n", keep.body.trim_end(), marker(&st.fingerprint));
            keep = client.set_body(keep.number, &body).await?;
            let fp_label = fingerprint_label(&st.fingerprint);
            let ids = client
                .ensure_labels(&[&self.cfg.label, &fp_label], &self.cfg.label_color)
                .await?;
            keep.labels = client.add_labels(keep.number, &ids).await?;
            tracing::info!(number = keep.number, subject = %st.subject, "adopted an open issue filed without a fingerprint");
        }
        for dup in open {
            client
                .comment(dup.number, &format!("Duplicate of #{} (one open issue per subject: the lowest number is kept); closing.\n\n{}", keep.number, marker(&st.fingerprint)))
                .await?;
            client.set_state(dup.number, IssueState::Closed).await?;
        }
        Ok(Some(keep))
    }

    /// When an issue this engine did not comment on itself was last
    /// commented: its newest comment's `created_at`, else its own (its body
    /// holds the diagnostics it was filed with). `None` when Gitea's times
    /// cannot be read: the caller then comments now.
    pub(super) async fn last_commented(&self, issue: &Issue) -> Result<Option<i64>, Error> {
        if issue.comments == 0 {
            return Ok(parse_rfc3339(&issue.created_at));
        }
        let comments = self.client()?.list_comments(issue.number).await?;
        if comments.is_empty() {
            return Ok(parse_rfc3339(&issue.created_at));
        }
        Ok(comments
            .iter()
            .map(|c| parse_rfc3339(&c.created_at))
            .collect::<Option<Vec<i64>>>()
            .and_then(|times| times.into_iter().max()))
    }

    /// Posts an action's comment (with its hidden action marker). With
    /// `redelivery`, first looks for the marker among the issue's comments:
    /// an earlier attempt that timed out may have posted it already.
    pub(super) async fn comment_once(
        &self,
        number: u64,
        a: &QueuedAction,
        body: &str,
        redelivery: bool,
    ) -> Result<(), Error> {
        let client = self.client()?;
        if a.id.is_empty() {
            client.comment(number, body).await?;
            return Ok(());
        }
        let mark = action_marker(&a.id);
        if redelivery
            && client
                .list_comments(number)
                .await?
                .iter()
                .any(|c| c.body.contains(&mark))
        {
            tracing::info!(number, id = %a.id, "comment already posted by an earlier attempt");
            return Ok(());
        }
        client.comment(number, &format!("{body}\n{mark}")).await?;
        Ok(())
    }

    pub(super) async fn apply(
        &mut self,
        st: &mut SubjectState,
        a: &QueuedAction,
        redelivery: bool,
    ) -> Result<Outcome, Error> {
        match a.kind {
            ActionKind::Open => self.apply_open(st, a, redelivery).await,
            ActionKind::Comment => {
                let open = self.find_open(st, &a.check, true).await?;
                let Some(issue) = self.settle(st, open).await? else {
                    return self.apply_open(st, a, redelivery).await;
                };
                self.comment_once(issue.number, a, &self.comment_body(a), redelivery)
                    .await?;
                st.open_issue = Some(issue.number);
                st.pending = false;
                st.last_comment_at = Some(a.decided_at);
                st.last_signature = Some(signature(&a.check));
                Ok(Outcome::Commented {
                    number: issue.number,
                })
            }
            ActionKind::Resolve => {
                let open = self.find_open(st, &a.check, false).await?;
                let client = self.client()?;
                let body = self.recovery_body(a);
                for issue in &open {
                    self.comment_once(issue.number, a, &body, redelivery)
                        .await?;
                    client.set_state(issue.number, IssueState::Closed).await?;
                }
                st.open_issue = None;
                st.pending = false;
                st.failing_since = None;
                st.last_signature = None;
                st.last_comment_at = None;
                match open.first() {
                    Some(first) => {
                        st.last_closed = Some(Closed {
                            number: first.number,
                            at: a.decided_at,
                        });
                        Ok(Outcome::Resolved {
                            number: first.number,
                        })
                    }
                    None => Ok(Outcome::Nothing),
                }
            }
        }
    }

    pub(super) async fn apply_open(
        &mut self,
        st: &mut SubjectState,
        a: &QueuedAction,
        redelivery: bool,
    ) -> Result<Outcome, Error> {
        let client = self.client()?;
        let sig = signature(&a.check);
        let open = self.find_open(st, &a.check, false).await?;
        if let Some(issue) = self.settle(st, open).await? {
            // An open issue this state did not know (lost state, another
            // process, the original tools): it gets fresh diagnostics
            // unless it was commented within the interval.
            let number = issue.number;
            st.open_issue = Some(number);
            st.pending = false;
            if !a.id.is_empty() && issue.body.contains(&action_marker(&a.id)) {
                // Filed by this very action (a redelivery after an answer
                // that came too late): delivered, and not to be commented.
                st.last_comment_at = Some(a.decided_at);
                st.last_signature = Some(sig);
                return Ok(Outcome::Adopted { number });
            }
            st.last_comment_at = self.last_commented(&issue).await?;
            st.last_signature = None;
            if !self.comment_due(st, &a.check, a.decided_at) {
                return Ok(Outcome::Adopted { number });
            }
            self.comment_once(number, a, &self.comment_body(a), redelivery)
                .await?;
            st.last_comment_at = Some(a.decided_at);
            st.last_signature = Some(sig);
            return Ok(Outcome::Commented { number });
        }
        // Reopen a recently closed issue.
        let window = self.cfg.reopen_window.as_secs() as i64;
        let recent = match st.last_closed {
            Some(c) if a.decided_at.saturating_sub(c.at) <= window => Some(c.number),
            Some(_) => None,
            None => self.recently_closed(st, a.decided_at, window).await?,
        };
        if let Some(number) = recent {
            // Comment first: if reopening then times out, the redelivery
            // finds the issue open and is done (a comment never got lost).
            self.comment_once(number, a, &self.comment_body(a), redelivery)
                .await?;
            client.set_state(number, IssueState::Open).await?;
            st.open_issue = Some(number);
            st.pending = false;
            st.last_comment_at = Some(a.decided_at);
            st.last_signature = Some(sig);
            return Ok(Outcome::Reopened { number });
        }
        // Daily cap.
        let day = a.decided_at.div_euclid(86_400);
        if st.created_day != day {
            st.created_day = day;
            st.created_today = 0;
        }
        if st.created_today >= self.cfg.max_issues_per_day {
            tracing::error!(subject = %a.check.subject, cap = self.cfg.max_issues_per_day, "daily issue cap reached; not creating another issue");
            let newest = st.last_closed.map(|c| c.number);
            let due = st.last_signature.is_none() || self.comment_due(st, &a.check, a.decided_at);
            if let (Some(n), true) = (newest, due) {
                let body = format!(
                    "**Daily cap of {} new issue(s) reached for `{}`**: still failing, not opening another issue.\n\n{}",
                    self.cfg.max_issues_per_day,
                    a.check.subject,
                    self.comment_body(a)
                );
                self.comment_once(n, a, &body, redelivery).await?;
                st.last_comment_at = Some(a.decided_at);
                st.last_signature = Some(sig);
            }
            st.pending = false;
            return Ok(Outcome::CapReached {
                commented_on: newest.filter(|_| due),
            });
        }
        // Create.
        let fp_label = fingerprint_label(&st.fingerprint);
        let labels = client
            .ensure_labels(&[&self.cfg.label, &fp_label], &self.cfg.label_color)
            .await?;
        let mut assignees = Vec::new();
        let mut missing = Vec::new();
        for name in self.cfg.assignees.clone() {
            let exists = match self.known_users.get(&name) {
                Some(e) => *e,
                None => {
                    let e = client.user_exists(&name).await?;
                    self.known_users.insert(name.clone(), e);
                    e
                }
            };
            if exists {
                assignees.push(name);
            } else {
                missing.push(name);
            }
        }
        let mut opt = CreateIssueOption {
            title: self.title(&a.check),
            body: self.open_body(st, a, &missing),
            assignees,
            labels,
        };
        let created = match client.create_issue(&opt).await {
            Err(Error::Status {
                status: 422 | 404,
                message,
                ..
            }) if !opt.assignees.is_empty() => {
                tracing::warn!(%message, "gitea refused the assignees; creating the issue without them");
                missing.append(&mut opt.assignees);
                opt.body = self.open_body(st, a, &missing);
                client.create_issue(&opt).await?
            }
            other => other?,
        };
        st.created_today += 1;
        // Post-create check: another engine (another host, no shared lock)
        // may have created one too. Keep the lowest number, close the rest.
        let mut open = self.find_open(st, &a.check, false).await?;
        if !open.iter().any(|i| i.number == created.number) {
            open.push(created.clone());
            open.sort_by_key(|i| i.number);
        }
        let keep = self
            .settle(st, open)
            .await?
            .map_or(created.number, |i| i.number);
        st.open_issue = Some(keep);
        st.pending = false;
        st.last_comment_at = Some(a.decided_at);
        st.last_signature = Some(sig);
        if keep == created.number {
            Ok(Outcome::Created { number: keep })
        } else {
            Ok(Outcome::Adopted { number: keep })
        }
    }

    /// With no local memory of a closed issue: the newest page of closed
    /// issues, looking for this subject's within the window.
    pub(super) async fn recently_closed(
        &self,
        st: &SubjectState,
        now: i64,
        window: i64,
    ) -> Result<Option<u64>, Error> {
        let client = self.client()?;
        let q = IssueQuery {
            state: Some(IssueState::Closed),
            labels: vec![self.cfg.label.clone()],
            max_pages: 1,
        };
        let closed = client.list_issues(&q).await?;
        Ok(closed
            .iter()
            .filter(|i| issue_matches(i, &st.fingerprint))
            .filter(|i| {
                i.closed_at
                    .as_deref()
                    .and_then(parse_rfc3339)
                    .is_some_and(|t| now.saturating_sub(t) <= window)
            })
            .map(|i| i.number)
            .max())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::engine::EngineConfig;

    #[test]
    fn a_title_prefix_matches_whole_words_only() {
        assert!(title_matches("[pool] a: agent dead (300s)", "[pool] a:"));
        assert!(!title_matches("[pool] ab: agent dead (300s)", "[pool] a:"));
        assert!(!title_matches("[pool] ab: agent dead", "[pool] a"));
        assert!(title_matches("[watchdog] Nexus unhealthy: x", "[watchdog]"));
        assert!(title_matches("[watchdog]", " [watchdog] "));
        assert!(!title_matches("[watchdog]x Nexus unhealthy", "[watchdog]"));
        assert!(!title_matches("[watchdog] Nexus unhealthy", ""));
    }

    #[test]
    fn the_subject_prefix_is_the_title_prefix_and_the_title_subject() {
        let e = Engine::new(EngineConfig::new(Path::new("/x"), "pool", "[pool] "), None);
        let c = Check::failing("agent:a", "a: agent dead", "");
        assert_eq!(e.subject_prefix(&c), "[pool]");
        assert_eq!(e.subject_prefix(&c.with_title_subject(" a: ")), "[pool] a:");
    }
}
