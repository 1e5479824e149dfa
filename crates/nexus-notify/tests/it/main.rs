//! Integration tests of nexus-notify against mockito on 127.0.0.1, with
//! request and response bodies checked against the Bot API description
//! (`nexus_testkit::botapi`), and of the email channel against a real
//! SMTP server (aiosmtpd).

#![allow(
    missing_docs,
    missing_debug_implementations,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

mod channels;
mod email;
mod flood;
mod telegram;
