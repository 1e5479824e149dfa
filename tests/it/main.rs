//! End-to-end tests: the real binaries and the libraries together, on real
//! files and processes. One test binary (matklad's advice); one module per
//! concern.

#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    unreachable_pub
)]

mod alerting;
mod alertmanager;
mod attack;
mod bench;
mod canary;
mod cell;
mod channels;
mod checks;
mod clock;
mod crash;
mod cron;
mod demo;
mod examples;
mod faults;
mod full_disk;
mod gateway_health;
mod generate;
mod hcping;
mod heartbeat;
mod hostile;
mod incident;
mod incident_cron;
mod lazarus;
mod mttr;
mod nostr;
mod operator;
mod pool;
mod prometheus;
mod scale;
mod seed_defaults;
mod standalone;
mod systemd;
mod unreadable;
