//! The repository stands alone: `scripts/check-standalone` (run by
//! `scripts/check-deps`, the invariants step of `scripts/test`) passes on
//! this checkout and fails, naming file and line, on each kind of reference
//! outside a clone.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nexus_e2e::Run;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn check(root: &Path) -> Output {
    Command::new("python3")
        .arg(repo().join("scripts/check-standalone"))
        .arg(root)
        .run()
        .expect("python3 runs scripts/check-standalone")
}

/// Writes `files` under `root`. A `^` in a text is removed first: it keeps
/// this file's own literals from being what the checker flags.
fn tree(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text.replace('^', "")).unwrap();
    }
}

const PACKAGE: (&str, &str) = ("crates/a/Cargo.toml", "[package]\nname = \"a\"\n");

#[test]
fn this_checkout_refers_to_nothing_outside_it() {
    let out = check(&repo());
    assert!(
        out.status.success(),
        "scripts/check-standalone failed on the repository:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_kind_of_outside_reference_is_named_by_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    tree(
        dir.path(),
        &[
            PACKAGE,
            (
                "crates/a/src/lib.rs",
                "//! ok\n\nfn contract() -> PathBuf {\n    PathBuf::from(env!(\"CARGO_MANIFEST_^DIR\"))\n        .join(\"../../..\")\n        .join(\"data/spec.json\")\n}\n",
            ),
            (
                "crates/a/src/b.rs",
                "const T: &str = include_^str!(\"../../../../outside.txt\");\n",
            ),
            (
                "crates/a/tests/c.rs",
                "\nconst P: &str = concat!(env!(\"CARGO_MANIFEST_^DIR\"), \"/../../../x\");\n",
            ),
            (
                "bins/x/src/main.rs",
                "// behaviour from .^./sha^red/spec/seed-systems.md\n",
            ),
            ("tests/d.rs", "\n\nlet p = \"/^work/elsewhere/x.json\";\n"),
            (
                "scripts/run.sh",
                "#!/bin/sh\ncd \"$(dirname \"$^0\")/../..\"\n",
            ),
        ],
    );
    let out = check(dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for at in [
        "crates/a/src/lib.rs:4:",
        "crates/a/src/b.rs:1:",
        "crates/a/tests/c.rs:2:",
        "bins/x/src/main.rs:1:",
        "tests/d.rs:3:",
        "scripts/run.sh:2:",
    ] {
        assert!(text.contains(at), "{at} is not flagged:\n{text}");
    }
}

#[test]
fn hostile_test_data_and_paths_inside_the_repository_pass() {
    let dir = tempfile::tempdir().unwrap();
    tree(
        dir.path(),
        &[
            PACKAGE,
            (
                "crates/a/src/lib.rs",
                "fn docs() -> PathBuf { Path::new(env!(\"CARGO_MANIFEST_^DIR\")).join(\"../../docs\") }\n\
                 const T: &str = include_^str!(\"../../../docs/x.md\");\n\
                 #[test] fn refused() { assert!(name_ok(\"../../../../etc/passwd\").is_err()); }\n\
                 // Arc<shared state>, a shared/ subdirectory of our own\n",
            ),
            (
                "scripts/run.sh",
                "#!/bin/sh\ncd \"$(dirname \"$^0\")/..\"\n",
            ),
        ],
    );
    let out = check(dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
