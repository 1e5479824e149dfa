//! The client against the fake: pagination, errors, retries, secrecy.

use std::time::Duration;

use nexus_gitea::{Error, GiteaClient, GiteaConfig, IssueQuery, Token, marker};

use crate::fake::{Fake, REPO, TOKEN};

pub fn config(url: &str) -> GiteaConfig {
    let mut cfg = GiteaConfig::new(url, REPO, Token::new(TOKEN).unwrap());
    cfg.timeout = Duration::from_secs(5);
    cfg.backoff = Duration::from_millis(10);
    cfg
}

#[tokio::test]
async fn lists_120_open_issues_over_3_pages_with_the_subject_last() {
    let fake = Fake::start().await;
    {
        let mut st = fake.st();
        let label = st.add_label("watchdog");
        // Oldest first: the subject's issue is #1, so newest-first puts it last.
        st.add_issue(
            "[watchdog] Nexus unhealthy",
            &marker("00000000000000aa"),
            vec![label],
        );
        for k in 2..=120 {
            st.add_issue(&format!("[watchdog] other {k}"), "", vec![label]);
        }
    }
    let client = GiteaClient::new(&config(&fake.url())).unwrap();
    let issues = client
        .list_issues(&IssueQuery::open_with_labels(&["watchdog"]))
        .await
        .unwrap();
    assert_eq!(issues.len(), 120);
    assert_eq!(issues.last().unwrap().number, 1);
    assert!(issues.last().unwrap().body.contains("00000000000000aa"));
    let st = fake.st();
    assert_eq!(
        st.count("GET /api/v1/repos/ops/alerts/issues?"),
        3,
        "{:#?}",
        st.log
    );
    assert!(st.log.iter().all(|l| !l.contains("issues?")
        || (l.contains("limit=50") && l.contains("type=issues") && l.contains("labels=watchdog"))));
    drop(st);
    fake.assert_contract();
}

#[tokio::test]
async fn x_total_count_drives_pagination() {
    // X-Total-Count drives the loop, not the requested limit: 75 issues in
    // pages of 50 and 25.
    let fake = Fake::start().await;
    {
        let mut st = fake.st();
        for k in 1..=75 {
            st.add_issue(&format!("i{k}"), "", vec![]);
        }
    }
    let client = GiteaClient::new(&config(&fake.url())).unwrap();
    let issues = client
        .list_issues(&IssueQuery::open_with_labels(&[]))
        .await
        .unwrap();
    assert_eq!(issues.len(), 75);
    assert_eq!(fake.st().count("GET"), 2);
}

#[tokio::test]
async fn unknown_assignee_gives_a_typed_422_with_giteas_message() {
    let fake = Fake::start().await;
    let client = GiteaClient::new(&config(&fake.url())).unwrap();
    let opt = nexus_gitea::CreateIssueOption {
        title: "[watchdog] down".into(),
        body: "b".into(),
        assignees: vec!["ghost".into()],
        labels: vec![],
    };
    let err = client.create_issue(&opt).await.unwrap_err();
    match &err {
        Error::Status {
            status,
            message,
            method,
            path,
        } => {
            assert_eq!(*status, 422);
            assert!(message.starts_with("Assignee does not exist"), "{message}");
            assert_eq!(*method, "POST");
            assert_eq!(path, "/repos/ops/alerts/issues");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_transient());
    assert_eq!(fake.st().count("POST"), 1, "a 4xx is not retried");
    assert!(!client.user_exists("ghost").await.unwrap());
    assert!(client.user_exists("alice").await.unwrap());
    assert!(!client.user_exists("../etc").await.unwrap());
    fake.assert_contract();
}

#[tokio::test]
async fn a_500_is_retried_then_succeeds() {
    let fake = Fake::start().await;
    fake.st().add_issue("x", "", vec![]);
    fake.st().fail_next.extend([500, 502]);
    let client = GiteaClient::new(&config(&fake.url())).unwrap();
    let i = client.get_issue(1).await.unwrap();
    assert_eq!(i.number, 1);
    assert_eq!(fake.st().count("GET /api/v1/repos/ops/alerts/issues/1"), 3);
}

#[tokio::test]
async fn a_post_is_not_retried_after_a_500_or_a_timeout_only_after_a_refused_connect() {
    let fake = Fake::start().await;
    fake.st().add_issue("x", "", vec![]);
    let client = GiteaClient::new(&config(&fake.url())).unwrap();
    // 500: Gitea may have acted; the engine's outbox redelivers with a check.
    fake.st().fail_next.push_back(500);
    let err = client.comment(1, "hello").await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(fake.st().count("POST"), 1);
    // A timeout on a request that took effect: not retried blindly.
    let mut cfg = config(&fake.url());
    cfg.timeout = Duration::from_millis(200);
    let slow = GiteaClient::new(&cfg).unwrap();
    {
        let mut st = fake.st();
        st.slow_next = 1;
        st.slow_by = Duration::from_millis(600);
    }
    let err = slow.comment(1, "late").await.unwrap_err();
    assert!(
        err.is_transient() && err.to_string().contains("timed out"),
        "{err}"
    );
    assert_eq!(fake.st().count("POST"), 2);
    assert_eq!(fake.st().comments_of(1), ["late"], "it did take effect");
    // 429: Gitea did not act; retried.
    fake.st().fail_next.push_back(429);
    client.comment(1, "after 429").await.unwrap();
    assert_eq!(fake.st().count("POST"), 4);
    // Port closed: refused, so surely not sent: retried, then unreachable.
    fake.unreachable();
    let err = client.comment(1, "refused").await.unwrap_err();
    assert!(
        matches!(err, Error::Unreachable { attempts: 3, .. }),
        "{err}"
    );
    fake.reachable();
    client.comment(1, "back").await.unwrap();
    assert_eq!(fake.st().comments_of(1), ["late", "after 429", "back"]);
    fake.assert_contract();
}

#[tokio::test]
async fn a_500_that_persists_is_a_transient_status_error() {
    let fake = Fake::start().await;
    fake.st().fail_next.extend([500, 500, 500, 500]);
    let client = GiteaClient::new(&config(&fake.url())).unwrap();
    let err = client.list_labels().await.unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert!(err.is_transient());
    assert_eq!(fake.st().count("GET"), 3, "1 try + 2 retries");
}

#[tokio::test]
async fn a_401_is_not_retried_and_never_shows_the_token() {
    let fake = Fake::start().await;
    let mut cfg = config(&fake.url());
    cfg.token = Token::new("wrong-token-abcdef").unwrap();
    let client = GiteaClient::new(&cfg).unwrap();
    let err = client.get_issue(1).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(!err.is_transient());
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("401") && text.contains("user does not exist"),
        "{text}"
    );
    assert!(!text.contains("wrong-token-abcdef"), "{text}");
    assert_eq!(fake.st().count("GET"), 1);
}

#[tokio::test]
async fn debug_and_errors_never_contain_the_token() {
    let cfg = config("http://127.0.0.1:9");
    let client = GiteaClient::new(&cfg).unwrap();
    for text in [
        format!("{cfg:?}"),
        format!("{client:?}"),
        format!("{:?}", cfg.token),
    ] {
        assert!(!text.contains(TOKEN), "{text}");
        assert!(text.contains("***"), "{text}");
    }
    // A dead server: the transport error names the call, not the token.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut cfg = config(&format!("http://127.0.0.1:{port}"));
    cfg.retries = 1;
    let err = GiteaClient::new(&cfg)
        .unwrap()
        .list_labels()
        .await
        .unwrap_err();
    assert!(err.is_transient());
    let text = format!("{err} {err:?}");
    assert!(text.contains("unreachable after 2 attempt"), "{text}");
    assert!(!text.contains(TOKEN), "{text}");
    // A token that cannot be a header value is a config error, not echoed.
    let bad = GiteaConfig::new(
        "http://127.0.0.1:9",
        REPO,
        Token::new("a\nb-secret").unwrap(),
    );
    let text = format!("{:?}", GiteaClient::new(&bad).unwrap_err());
    assert!(!text.contains("secret"), "{text}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and hold connections without answering.
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..4 {
            if let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let mut cfg = config(&format!("http://127.0.0.1:{port}"));
    cfg.timeout = Duration::from_millis(200);
    cfg.retries = 1;
    let started = std::time::Instant::now();
    let err = GiteaClient::new(&cfg)
        .unwrap()
        .get_issue(1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Unreachable { attempts: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    hold.abort();
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let t = || Token::new("x").unwrap();
    let e = GiteaClient::new(&GiteaConfig::new("git.example.com", REPO, t())).unwrap_err();
    assert!(e.to_string().contains("base_url"), "{e}");
    let e = GiteaClient::new(&GiteaConfig::new("http://h", "noslash", t())).unwrap_err();
    assert!(e.to_string().contains("repo"), "{e}");
    let e = GiteaClient::new(&GiteaConfig::new("http://h", "a/../b", t())).unwrap_err();
    assert!(e.to_string().contains("repo"), "{e}");
    assert!(Token::new("  \n").is_none());
    assert_eq!(Token::new(" tok\n"), Token::new("tok"));
}

/// A server that reflects the request (the `Authorization` header, the
/// path) in its error message, URL- and base64-encoded, behind escape
/// sequences and a forged log line: neither the errors nor the log lines
/// carry the token or a control character, and the message is an excerpt.
#[tokio::test]
async fn a_reflecting_server_gets_no_token_and_no_forged_line_into_errors_or_logs() {
    use nexus_testkit::reflect::{assert_clean, echo};
    let logs = nexus_testkit::logs::capture();
    let fake = Fake::start().await;
    fake.st().add_issue("x", "", vec![]);
    let client = GiteaClient::new(&config(&fake.url())).unwrap();
    let mut errors = Vec::new();
    // 500: retried (logged each time), then the error; 401 and 422: at once.
    for status in [500, 401, 422] {
        fake.st().reflect = Some(status);
        errors.push((status, client.get_issue(1).await.unwrap_err()));
        errors.push((status, client.comment(1, "hello").await.unwrap_err()));
        errors.push((status, client.list_labels().await.unwrap_err()));
    }
    // The reflection does hold the token (the check is not vacuous).
    let raw = echo(&format!("authorization: token {TOKEN}"));
    assert!(!nexus_testkit::canary::leaks(raw.as_bytes()).is_empty());
    let text: Vec<String> = errors.iter().map(|(_, e)| format!("{e}\n{e:?}")).collect();
    assert_clean("the errors", &text.join("\n"));
    let logged = logs.text();
    assert!(logged.contains("retryable status"), "{logged}");
    assert_clean("the log lines", &logged);
    for (status, err) in &errors {
        assert_eq!(err.status(), Some(*status), "{err}");
        let Error::Status { message, .. } = err else {
            panic!("{err:?}")
        };
        assert!(message.starts_with("request refused"), "{message}");
        assert!(message.chars().count() <= nexus_secret::EXCERPT_CHARS + 1);
    }
    fake.st().reflect = None;
    fake.assert_contract();
}

/// A 100 MB reply, with and without `Content-Length`: refused at the cap,
/// read no further, and the client's memory stays bounded.
#[tokio::test]
async fn a_100_mb_reply_is_cut_at_the_cap_with_bounded_memory() {
    let errors =
        nexus_testkit::assert_reads_capped(nexus_gitea::MAX_REPLY_BYTES, |url| async move {
            let client = GiteaClient::new(&config(&url)).unwrap();
            client.get_issue(1).await.unwrap_err()
        })
        .await;
    for err in errors {
        assert!(
            matches!(err, Error::TooLarge { limit, .. } if limit == nexus_gitea::MAX_REPLY_BYTES),
            "{err:?}"
        );
        assert!(!err.is_transient(), "a retry would read as much again");
        assert!(err.to_string().contains("larger than"), "{err}");
    }
}
