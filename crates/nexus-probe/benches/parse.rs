//! Criterion benches for the per-sweep CPU work: one `/proc` scan (every
//! process's `stat` and `cmdline`) and the argv match over it, and perfdata
//! parsing.

#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use nexus_probe::{MatchMode, ProcTable, parse_perfdata};

fn proc_scan(c: &mut Criterion) {
    let n = ProcTable::scan().unwrap().entries().len();
    c.bench_function(&format!("proc_scan ({n} processes)"), |b| {
        b.iter(|| ProcTable::scan().unwrap())
    });
    let table = ProcTable::scan().unwrap();
    c.bench_function("proc_find_argv", |b| {
        b.iter(|| table.find("nexus_think", MatchMode::Argv, true).len())
    });
}

fn perfdata(c: &mut Criterion) {
    let line = "time=0.002s;1;2;0;10 'in use'=42%;80;90 size=1.5e3B count=7 load1=0.1;5;9;0";
    c.bench_function("parse_perfdata (5 items)", |b| {
        b.iter(|| parse_perfdata(line))
    });
}

criterion_group!(benches, proc_scan, perfdata);
criterion_main!(benches);
