//! Email over SMTP (lettre, rustls): STARTTLS required by default, implicit
//! TLS on request, plain text only to a loopback relay. The subject is the
//! message's first line, the body its plain rendering.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use nexus_secret::{EXCERPT_CHARS, Redactor, Secret};

use crate::channel::{Channel, Delivery, Outgoing};
use crate::error::Error;

const CHANNEL: &str = "email";

/// The largest CA file read.
const MAX_CA_FILE: u64 = 1 << 20;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which the server must offer
    /// (port 587). The default.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on loopback (`127.0.0.1`, `::1`,
    /// `localhost`).
    None,
}

/// Where and to whom to send.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// The SMTP server's host name (checked against its certificate).
    pub host: String,
    /// Its port. Default 587.
    pub port: u16,
    /// See [`SmtpTls`].
    pub tls: SmtpTls,
    /// `From:` (`Nexus <nexus@example.org>` or a bare address).
    pub from: String,
    /// `To:`, at least one.
    pub to: Vec<String>,
    /// The SMTP login, if the server wants one (with `password`).
    pub username: Option<String>,
    /// The SMTP password.
    pub password: Option<Secret>,
    /// A PEM file of extra CA certificates to trust (a private CA, a
    /// self-signed relay), besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Timeout of each SMTP step (connect, TLS, each command); the whole
    /// exchange gets at most three times this. Default 10 s.
    pub timeout: Duration,
}

impl EmailConfig {
    /// `host`:587 with STARTTLS, no login, 10 s.
    pub fn new(host: &str, from: &str, to: &[&str]) -> EmailConfig {
        EmailConfig {
            host: host.to_owned(),
            port: 587,
            tls: SmtpTls::Starttls,
            from: from.to_owned(),
            to: to.iter().map(|s| (*s).to_owned()).collect(),
            username: None,
            password: None,
            ca_file: None,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Whether `host` names this machine's loopback interface.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// An email [`Channel`].
#[derive(Clone)]
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    host: String,
    port: u16,
    tls: SmtpTls,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
    redactor: Redactor,
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

fn setting(field: &'static str, why: impl Into<String>) -> Error {
    Error::Setting {
        channel: CHANNEL,
        field,
        why: why.into(),
    }
}

fn mailbox(field: &'static str, s: &str) -> Result<Mailbox, Error> {
    s.trim()
        .parse()
        .map_err(|e| setting(field, format!("{s:?} is not an email address: {e}")))
}

/// The PEM certificates of `path`, read with a size cap.
fn read_ca(path: &Path) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CA_FILE + 1).read_to_end(&mut pem))
        .map_err(|e| setting("ca_file", format!("{}: {e}", path.display())))?;
    if pem.len() as u64 > MAX_CA_FILE {
        return Err(setting(
            "ca_file",
            format!("{}: larger than {MAX_CA_FILE} bytes", path.display()),
        ));
    }
    Ok(pem)
}

impl Email {
    /// Checks the addresses, the TLS mode and the CA file and builds the
    /// transport (no connection yet).
    pub fn new(cfg: &EmailConfig) -> Result<Email, Error> {
        let host = cfg.host.trim().to_owned();
        if host.is_empty() || host.contains(|c: char| c == '/' || c.is_whitespace()) {
            return Err(setting("host", format!("{host:?} is not a host name")));
        }
        if cfg.tls == SmtpTls::None && !is_loopback_host(&host) {
            return Err(setting(
                "tls",
                format!(
                    "\"none\" sends the password and the alerts in clear text: only allowed to a loopback relay, not {host:?} (use \"starttls\" or \"tls\")"
                ),
            ));
        }
        let from = mailbox("from", &cfg.from)?;
        if cfg.to.is_empty() {
            return Err(setting("to", "no recipient"));
        }
        let to = cfg
            .to
            .iter()
            .map(|t| mailbox("to", t))
            .collect::<Result<Vec<_>, _>>()?;
        // EHLO with this machine's name (a host name that is "unknown" or
        // no domain-like word falls back to lettre's `localhost`).
        let me = nexus_stdx::hostname();
        let hello = if me != "unknown"
            && me
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            ClientId::Domain(me.to_owned())
        } else {
            ClientId::default()
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(cfg.port)
            .hello_name(hello)
            .timeout(Some(cfg.timeout));
        if cfg.tls != SmtpTls::None {
            let mut params = TlsParameters::builder(host.clone());
            if let Some(path) = &cfg.ca_file {
                let cert = Certificate::from_pem(&read_ca(path)?).map_err(|e| {
                    setting(
                        "ca_file",
                        format!("{}: not a PEM certificate: {e}", path.display()),
                    )
                })?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| setting("tls", e.to_string()))?;
            builder = builder.tls(match cfg.tls {
                SmtpTls::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        let mut redactor = Redactor::new();
        match (&cfg.username, &cfg.password) {
            (Some(user), Some(pw)) => {
                builder = builder.credentials(Credentials::new(
                    user.trim().to_owned(),
                    pw.expose().to_owned(),
                ));
                redactor.add(pw.expose());
            }
            (Some(_), None) => return Err(setting("password", "a username without a password")),
            (None, Some(_)) => return Err(setting("username", "a password without a username")),
            (None, None) => {}
        }
        Ok(Email {
            transport: builder.build(),
            host,
            port: cfg.port,
            tls: cfg.tls,
            from,
            to,
            timeout: cfg.timeout,
            redactor,
        })
    }

    /// The message for `msg`: subject = its first line, body = the plain
    /// rendering.
    pub fn message(&self, msg: &Outgoing<'_>) -> Result<Message, Error> {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(msg.subject())
            .header(ContentType::TEXT_PLAIN);
        for t in &self.to {
            b = b.to(t.clone());
        }
        b.body(msg.text.plain().to_owned())
            .map_err(|e| setting("message", e.to_string()))
    }

    fn error(&self, e: &lettre::transport::smtp::Error) -> Error {
        let text = e.to_string();
        let detail = self.redactor.clean(&text, EXCERPT_CHARS).into_owned();
        if text.contains("STARTTLS is not supported") {
            return Error::Refused {
                channel: CHANNEL,
                status: "no STARTTLS".into(),
                detail: format!(
                    "{}:{} does not offer STARTTLS, which `tls = \"starttls\"` requires (the password and the alert would go in clear text)",
                    self.host, self.port
                ),
            };
        }
        match e.status() {
            Some(code) => Error::Refused {
                channel: CHANNEL,
                status: format!("SMTP {code}"),
                detail,
            },
            None => Error::Failed {
                channel: CHANNEL,
                detail: format!("{}:{}: {detail}", self.host, self.port),
            },
        }
    }
}

impl Channel for Email {
    fn name(&self) -> &'static str {
        CHANNEL
    }

    fn send<'a>(&'a self, msg: &'a Outgoing<'a>) -> Delivery<'a> {
        Box::pin(async move {
            let m = self.message(msg)?;
            match tokio::time::timeout(self.timeout * 3, self.transport.send(m)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(self.error(&e)),
                Err(_) => Err(Error::Failed {
                    channel: CHANNEL,
                    detail: format!(
                        "{}:{}: not done within {:?}",
                        self.host,
                        self.port,
                        self.timeout * 3
                    ),
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_text_only_to_loopback_and_addresses_are_checked() {
        let mut cfg = EmailConfig::new("mail.example", "nexus@example.org", &["ops@example.org"]);
        cfg.tls = SmtpTls::None;
        let e = Email::new(&cfg).unwrap_err().to_string();
        assert!(e.contains("tls") && e.contains("loopback"), "{e}");
        for h in ["127.0.0.1", "localhost", "::1", "[::1]"] {
            cfg.host = h.into();
            assert!(is_loopback_host(h), "{h}");
            assert!(Email::new(&cfg).is_ok(), "{h}");
        }
        cfg.to = vec!["not an address".into()];
        let e = Email::new(&cfg).unwrap_err().to_string();
        assert!(e.contains("to"), "{e}");
        cfg.to.clear();
        assert!(
            Email::new(&cfg)
                .unwrap_err()
                .to_string()
                .contains("recipient")
        );
        let mut cfg = EmailConfig::new("mail.example", "nexus@example.org", &["a@example.org"]);
        cfg.username = Some("nexus".into());
        cfg.password = Some(Secret::new("pw-canary"));
        let m = Email::new(&cfg).unwrap();
        assert!(!format!("{m:?}").contains("canary"));
    }
}
