//! Integration tests of nexus-gitea against a stateful, swagger-checked fake
//! Gitea (mockito on 127.0.0.1).

#![allow(
    missing_docs,
    missing_debug_implementations,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

mod client;
mod engine;
mod faults;
mod load;
use nexus_testkit::gitea::fake;
