//! The invariant checks `scripts/test` runs beside the compiler:
//! `scripts/check-source` and `scripts/check-docs` pass on this checkout and
//! fail, naming the file, on each kind of breach in a small tree.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nexus_e2e::Run;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(script: &str, root: &Path) -> Output {
    Command::new("python3")
        .arg(repo().join("scripts").join(script))
        .arg(root)
        .run()
        .expect("python3 runs the check")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes `files` under `root`. A `^` in a text is removed first: it keeps
/// this file's own literals from being what a checker flags.
fn tree(root: &Path, files: &[(&str, &str)]) {
    for (path, body) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body.replace('^', "")).unwrap();
    }
}

#[test]
fn this_checkout_keeps_the_source_and_doc_invariants() {
    for script in ["check-source", "check-docs"] {
        let out = run(script, &repo());
        assert!(
            out.status.success(),
            "scripts/{script} failed:\n{}",
            text(&out)
        );
    }
}

#[test]
fn check_source_names_each_kind_of_breach() {
    let dir = tempfile::tempdir().unwrap();
    tree(
        dir.path(),
        &[
            ("Cargo.toml", "[profile.release]\nlto = \"thin\"\n"),
            (
                "crates/a/src/lib.rs",
                "pub fn parse(s: &str) -> Result<u8, Str^ing> {\n    todo!()\n}\n",
            ),
            (
                "crates/a/src/env.rs",
                "fn url() -> Option<String> {\n    std::env::v^ar(\"GITEA_URL\").ok()\n}\n",
            ),
            (
                "crates/a/src/token.rs",
                "impl fmt::Debug for Token {\n    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {\n        f.write_str(\"*^**\")\n    }\n}\n",
            ),
            // Test code may do all of it.
            (
                "crates/a/src/ok.rs",
                "pub fn fine() {}\n\n#[cfg(test)]\nmod tests {\n    fn t() -> Result<(), String> { std::env::var(\"X\").map(|_| ()).map_err(|e| e.to_string()) }\n}\n",
            ),
            (
                "crates/nexus-testkit/src/lib.rs",
                "pub fn f() -> Result<(), String> { Ok(()) }\n",
            ),
        ],
    );
    let out = run("check-source", dir.path());
    let said = text(&out);
    assert!(!out.status.success(), "breaches passed:\n{said}");
    for want in [
        "crates/a/src/lib.rs:1: a library `pub fn` returns Result<_, String>",
        "crates/a/src/env.rs:2: a library reads the environment",
        "crates/a/src/token.rs:3: a hand-written redaction",
        "panic = \"abort\"",
    ] {
        assert!(said.contains(want), "missing {want:?} in:\n{said}");
    }
    assert!(!said.contains("ok.rs"), "test code was flagged:\n{said}");
    assert!(
        !said.contains("nexus-testkit"),
        "testkit was flagged:\n{said}"
    );
}

#[test]
fn check_docs_names_an_unmapped_crate_an_unused_and_an_undocumented_dependency() {
    let dir = tempfile::tempdir().unwrap();
    // The "external" dependencies are path crates outside the members, so
    // `cargo metadata` needs no registry.
    tree(
        dir.path(),
        &[
            (
                "Cargo.toml",
                "[workspace]\nmembers = [\"crates/*\"]\nresolver = \"3\"\n\n[workspace.dependencies]\nlisted = { path = \"vendor/listed\" }\nunlisted = { path = \"vendor/unlisted\" }\nunused = { path = \"vendor/unused\" }\n",
            ),
            (
                "crates/alpha/Cargo.toml",
                "[package]\nname = \"alpha\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\nlisted.workspace = true\nunlisted.workspace = true\ninline = { path = \"../../vendor/inline\" }\n",
            ),
            ("crates/alpha/src/lib.rs", "//! alpha\n"),
            (
                "docs/ARCHITECTURE.md",
                "# Architecture\n\n## Code map\n\n### `crates/gone`\n\n## Dependencies and why\n\n| crate | used by | why |\n|---|---|---|\n| listed, unused (`feature`) | alpha | a row |\n\n## Testing\n",
            ),
        ],
    );
    for name in ["listed", "unlisted", "unused", "inline"] {
        tree(
            dir.path(),
            &[
                (
                    &format!("vendor/{name}/Cargo.toml"),
                    &format!(
                        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n"
                    ),
                ),
                (&format!("vendor/{name}/src/lib.rs"), "//! x\n"),
            ],
        );
    }
    let lock = Command::new("cargo")
        .args(["generate-lockfile", "--offline"])
        .current_dir(dir.path())
        .run()
        .unwrap();
    assert!(
        lock.status.success(),
        "cargo generate-lockfile: {}",
        text(&lock)
    );
    let out = run("check-docs", dir.path());
    let said = text(&out);
    assert!(!out.status.success(), "breaches passed:\n{said}");
    for want in [
        "no `### ` heading naming `crates/alpha`",
        "names `crates/gone`, which is not a workspace package",
        "unused is used by no member",
        "no row for `unlisted`",
        "[dependencies] inline is declared inline",
    ] {
        assert!(said.contains(want), "missing {want:?} in:\n{said}");
    }
    assert!(
        !said.contains("no row for `listed`"),
        "a listed row was missed:\n{said}"
    );
}
