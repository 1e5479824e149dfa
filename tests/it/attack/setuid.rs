//! A setuid binary an agent plants survives no checkpoint and restore as
//! root's (issue 16, item 1), through the real `mission-cell`.

use std::process::Command;

use nexus_e2e::Run;

use crate::cell::mission_cell;

/// Issue 16: an agent (uid 65534, owner of its cell's workspace) copies
/// `id` into the workspace and makes it setuid; `mission-cell checkpoint`
/// then `restore`, run as root, used to hand back `-rwsr-xr-x root root`,
/// which runs with euid 0. The restored copy is the cell owner's, without
/// the setuid bit, and run by the agent it is the agent.
#[test]
fn a_setuid_copy_an_agent_planted_is_restored_as_the_agents_own_without_setuid() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    const AGENT: u32 = 65534;
    let dir = tempfile::tempdir().unwrap();
    // The agent must be able to reach its workspace.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = dir.path().join("missions");
    let id = mission_cell(&root, &["create", "--mission", "e2e"])
        .trim()
        .to_string();
    let ws = root.join(&id).join("workspace");
    std::os::unix::fs::chown(&ws, Some(AGENT), Some(AGENT))
        .expect("chown the workspace to the agent (the tests run as root)");
    let as_agent = |cmd: &mut Command| {
        let o = cmd.uid(AGENT).gid(AGENT).current_dir(&ws).run().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    as_agent(Command::new("sh").args(["-c", "cp /usr/bin/id id && chmod 4755 id"]));
    let planted = std::fs::metadata(ws.join("id")).unwrap();
    assert_eq!((planted.uid(), planted.mode() & 0o7777), (AGENT, 0o4755));

    let name = mission_cell(&root, &["checkpoint", &id]).trim().to_string();
    mission_cell(&root, &["restore", &id, &name]);

    let restored = std::fs::metadata(ws.join("id")).unwrap();
    assert_eq!(
        (restored.uid(), restored.gid(), restored.mode() & 0o7777),
        (AGENT, AGENT, 0o755),
        "owner and mode of the restored copy"
    );
    let ws_meta = std::fs::metadata(&ws).unwrap();
    assert_eq!((ws_meta.uid(), ws_meta.gid()), (AGENT, AGENT));
    // A root-owned setuid copy would print 0 here.
    let euid = as_agent(Command::new(ws.join("id")).arg("-u"));
    assert_eq!(euid.trim(), AGENT.to_string());
}
