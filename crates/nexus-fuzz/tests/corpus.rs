//! The regression test: every committed corpus file goes through its
//! target. `ok-*` files must be accepted, `bad-*` files refused; the rest
//! (truncated, hostile, crashes found by fuzzing) only must not break an
//! invariant.

use nexus_fuzz::{TARGETS, Verdict, corpus_root};

#[test]
fn every_corpus_file_passes_its_target() {
    let root = corpus_root();
    let mut total = 0;
    let mut wrong = Vec::new();
    for t in TARGETS {
        let dir = root.join(t.name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let (mut ok, mut bad) = (0, 0);
        for f in &files {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let data = std::fs::read(f).unwrap();
            let got = (t.run)(&data);
            let want = if name.starts_with("ok-") {
                ok += 1;
                Some(Verdict::Accepted)
            } else if name.starts_with("bad-") {
                bad += 1;
                Some(Verdict::Refused)
            } else {
                None
            };
            if want.is_some_and(|w| w != got) {
                wrong.push(format!("{}/{name}: {got:?}", t.name));
            }
        }
        assert!(ok >= 1, "{}: no ok-* seed to mutate from", t.name);
        assert!(bad >= 3, "{}: fewer than 3 bad-* files", t.name);
        eprintln!("{:>16}: {} files ({ok} ok, {bad} bad)", t.name, files.len());
        total += files.len();
    }
    eprintln!("corpus: {total} files");
    assert!(
        wrong.is_empty(),
        "unexpected verdicts:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_target_has_a_corpus_and_a_cargo_fuzz_target() {
    let fuzz = corpus_root().join("..");
    for t in TARGETS {
        assert!(
            corpus_root().join(t.name).is_dir(),
            "no corpus for {}",
            t.name
        );
        let harness = fuzz.join("fuzz_targets").join(format!("{}.rs", t.name));
        let text = std::fs::read_to_string(&harness)
            .unwrap_or_else(|e| panic!("{}: {e}", harness.display()));
        assert!(
            text.contains(&format!("\"{}\"", t.name)),
            "{}",
            harness.display()
        );
    }
}
