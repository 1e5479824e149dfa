#![allow(clippy::unwrap_used)]
//! Bounded fuzzing in CI: for every target, random bytes and
//! structure-aware mutations of its corpus. `NEXUS_FUZZ_CASES` sets the
//! cases per target and strategy (default 256); a failure prints the
//! shrunk input, which then goes into `fuzz/corpus/<target>/` as a
//! regression file.

use nexus_fuzz::mutate::mutate;
use nexus_fuzz::{TARGETS, Target, corpus_root};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn cases() -> u32 {
    std::env::var("NEXUS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn corpus(t: &Target) -> Vec<Vec<u8>> {
    let dir = corpus_root().join(t.name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

fn fuzz_random_bytes(name: &str) {
    let t = nexus_fuzz::target(name).unwrap();
    runner()
        .run(&proptest::collection::vec(any::<u8>(), 0..600), |data| {
            (t.run)(&data);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
}

fn fuzz_mutated_corpus(name: &str) {
    let t = nexus_fuzz::target(name).unwrap();
    let seeds = corpus(t);
    let n = seeds.len();
    let strategy = (0..n, 0..n, proptest::collection::vec(any::<u32>(), 1..6));
    runner()
        .run(&strategy, |(a, b, choices)| {
            let data = mutate(t.format, &seeds[a], &seeds[b], &choices);
            (t.run)(&data);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
}

macro_rules! fuzz {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn random_bytes() {
                    super::fuzz_random_bytes(stringify!($name));
                }
                #[test]
                fn mutated_corpus() {
                    super::fuzz_mutated_corpus(stringify!($name));
                }
            }
        )*
        #[test]
        fn every_target_is_fuzzed_here() {
            let here = [$(stringify!($name)),*];
            for t in TARGETS {
                assert!(here.contains(&t.name), "{} is not fuzzed in CI", t.name);
            }
        }
    };
}

fuzz!(
    heartbeat,
    cron_last,
    cell_json,
    events_jsonl,
    watchdog_toml,
    probe_toml,
    pool_toml,
    pool_seed_json,
    cron_registry,
    telegram_updates,
    gitea_response,
    ping_request,
    names,
);
