//! The email channel against a REAL SMTP server: Debian's aiosmtpd
//! (`nexus_testkit::smtp`), STARTTLS required on a certificate from a CA
//! made for the test and trusted through `ca_file`. Missing aiosmtpd is a
//! failure pointing at scripts/setup.d/65-smtp.sh, never a silent pass (the
//! fixtures' rule, as for Redis and PostgreSQL).

use std::time::Duration;

use nexus_notify::{
    AlertConfig, Alerter, Email, EmailConfig, Error, Problem, Sent, Severity, SmtpTls,
};
use nexus_testkit::smtp::SmtpServer;
use tempfile::TempDir;

const T0: i64 = 1_767_225_600;

fn config(server: &SmtpServer) -> EmailConfig {
    let mut cfg = EmailConfig::new(
        "127.0.0.1",
        "Nexus <nexus@example.org>",
        &["ops@example.org", "oncall@example.org"],
    );
    cfg.port = server.port;
    cfg.ca_file = server.ca_file.clone();
    cfg.timeout = Duration::from_secs(10);
    cfg
}

fn alerter(dir: &TempDir, cfg: &EmailConfig) -> Alerter {
    Alerter::with_channel(
        AlertConfig::new(dir.path().join("email-alerts.json"), "Nexus watchdog"),
        Email::new(cfg).unwrap(),
    )
}

/// The raw message's header `name` (unfolded).
fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    raw.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_and_its_recovery_arrive_over_starttls() {
    let server = SmtpServer::start(true);
    let dir = TempDir::new().unwrap();
    let a = alerter(&dir, &config(&server));
    assert_eq!(a.channel(), "email");
    let p = [Problem::new("disk", Severity::Critical, "95% used on /").with_hint("free space")];
    assert_eq!(a.notify(&p, T0).await.unwrap(), Sent::Problems);
    assert_eq!(a.notify(&p, T0 + 60).await.unwrap(), Sent::Nothing);
    let got = server.messages();
    assert_eq!(got.len(), 1, "{got:#?}");
    let m = &got[0];
    // Subject: the first line (the icon as an RFC 2047 encoded word).
    assert_eq!(
        header(m, "Subject"),
        Some("=?utf-8?b?8J+aqA==?= Nexus watchdog"),
        "{m}"
    );
    assert_eq!(
        header(m, "X-RcptTo"),
        Some("ops@example.org, oncall@example.org"),
        "{m}"
    );
    assert_eq!(header(m, "From"), Some("Nexus <nexus@example.org>"), "{m}");
    let to = header(m, "To").unwrap();
    assert!(
        to.contains("ops@example.org") && to.contains("oncall@example.org"),
        "{m}"
    );
    assert!(
        header(m, "Content-Type").unwrap().starts_with("text/plain"),
        "{m}"
    );
    assert!(m.contains("disk [CRITICAL] (new): 95% used on /"), "{m}");
    assert!(m.contains("what to do: free space"), "{m}");
    // The envelope went over TLS: the server refuses MAIL before STARTTLS
    // (`--tlscert` requires it), and the next test shows the certificate
    // is checked.
    assert_eq!(a.notify(&[], T0 + 120).await.unwrap(), Sent::Recovery);
    let got = server.messages();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(got[1].contains("All problems recovered."), "{}", got[1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_starttls_is_refused_clearly_and_nothing_is_sent() {
    let server = SmtpServer::start(false);
    let dir = TempDir::new().unwrap();
    let mut cfg = config(&server);
    cfg.username = Some("nexus".into());
    cfg.password = Some(nexus_secret::Secret::new("smtp-pw-canary"));
    let a = alerter(&dir, &cfg);
    let p = [Problem::new("disk", Severity::Critical, "full")];
    let err = a.notify(&p, T0).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(matches!(err, Error::Refused { .. }), "{text}");
    assert!(
        text.contains("STARTTLS") && text.contains("clear text"),
        "{text}"
    );
    assert!(!text.contains("canary"), "{text}");
    assert!(server.messages().is_empty());
    // Plain text is allowed to a loopback relay when asked for.
    let mut plain = config(&server);
    plain.tls = SmtpTls::None;
    let a = alerter(&dir, &plain);
    assert_eq!(a.notify(&p, T0 + 60).await.unwrap(), Sent::Problems);
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_from_an_unknown_ca_is_refused() {
    let server = SmtpServer::start(true);
    let dir = TempDir::new().unwrap();
    let mut cfg = config(&server);
    cfg.ca_file = None;
    let a = alerter(&dir, &cfg);
    let p = [Problem::new("disk", Severity::Critical, "full")];
    let err = a.notify(&p, T0).await.unwrap_err();
    assert!(
        matches!(err, Error::Failed { .. } | Error::Refused { .. }),
        "{err}"
    );
    assert!(server.messages().is_empty());
}
