//! Integration tests of nexus-gitea against a stateful, swagger-checked fake
//! Gitea (mockito on 127.0.0.1).

mod client;
mod engine;
mod fake;
mod swagger;
