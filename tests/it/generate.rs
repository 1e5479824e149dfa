//! `<bin> --generate man|complete-bash|complete-zsh|complete-fish`: every
//! shipped binary prints its man page and completions (scripts/package puts
//! them in the Debian package).

use std::process::Command;

use nexus_e2e::{Run, bin};

/// The binaries the package ships (the heartbeat CLI's package is
/// `nexus-heartbeat-cli`, its binary `nexus-heartbeat`).
const SHIPPED: [&str; 6] = [
    "nexus-heartbeat",
    "nexus-watchdog",
    "cron-heartbeat-check",
    "mission-cell",
    "resurrection-pool",
    "nexus-health-sidecar",
];

fn generate(name: &str, kind: &str) -> String {
    let o = Command::new(bin(name))
        .args(["--generate", kind])
        .env_remove("NEXUS_LOG")
        .run()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{name} --generate {kind}: {stderr}");
    assert!(stderr.is_empty(), "{name} --generate {kind}: {stderr}");
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn every_binary_prints_its_man_page_naming_itself() {
    for name in SHIPPED {
        let man = generate(name, "man");
        assert!(
            man.starts_with(".ie") || man.starts_with(".TH"),
            "{name}: {man}"
        );
        let th = man.lines().find(|l| l.starts_with(".TH ")).unwrap_or("");
        assert!(th.starts_with(&format!(".TH {name} 1 ")), "{name}: {th}");
        assert!(man.contains("\\-\\-help"), "{name}: no options section");
        assert!(
            !man.contains("\\-\\-generate"),
            "{name}: the hidden flag shows"
        );
    }
}

#[test]
fn every_binary_prints_completions_bash_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    for name in SHIPPED {
        let script = generate(name, "complete-bash");
        assert!(
            script.contains(&format!("complete -F _{}", name.replace('-', "__"))),
            "{name}: {script}"
        );
        let file = tmp.path().join(name);
        std::fs::write(&file, &script).unwrap();
        let o = Command::new("bash").arg("-n").arg(&file).run().unwrap();
        assert!(
            o.status.success(),
            "{name}: bash -n: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(generate(name, "complete-zsh").starts_with(&format!("#compdef {name}")));
        assert!(generate(name, "complete-fish").contains(&format!("complete -c {name} ")));
    }
}

#[test]
fn an_unknown_kind_is_a_usage_error_naming_the_kinds() {
    let o = Command::new(bin("mission-cell"))
        .args(["--generate", "pdf"])
        .run()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("'pdf'") && stderr.contains("complete-bash"),
        "{stderr}"
    );
    assert!(o.stdout.is_empty());
}
