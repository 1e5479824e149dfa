//! A stateful fake Gitea (mockito on 127.0.0.1) that follows the contract
//! notes and checks every body against the official swagger, for every crate
//! and binary that files incidents.

pub mod fake;
pub mod swagger;

pub use fake::{Fake, FakeState, REPO, TOKEN};
