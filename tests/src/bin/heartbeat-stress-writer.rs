//! Test helper: replaces one heartbeat file in a tight loop, as an agent
//! would, until killed. Each document is self-checking: `pad` is `cycle`
//! repeated, so a reader can tell a torn document from a whole one.
//!
//! Usage: heartbeat-stress-writer PATH [PAD_BYTES]
//! Prints `ready` on stdout after the first write.

use std::io::Write;
use std::path::PathBuf;

use nexus_heartbeat::{AgentHeartbeat, WriterStamp};
use nexus_stdx::{now_epoch, write_atomic};

fn main() {
    let mut args = std::env::args_os().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: heartbeat-stress-writer PATH [PAD_BYTES]");
        std::process::exit(2);
    };
    let pad_len: usize = args
        .next()
        .and_then(|s| s.to_str()?.parse().ok())
        .unwrap_or(64 * 1024);
    for cycle in 0u64.. {
        let digit = char::from(b'0' + (cycle % 10) as u8);
        let mut extra = serde_json::Map::new();
        extra.insert("pad".into(), digit.to_string().repeat(pad_len).into());
        let doc = AgentHeartbeat {
            timestamp: now_epoch(),
            pid: std::process::id(),
            cycle,
            model: "stress".into(),
            status: "thinking".into(),
            agent: None,
            cell_uuid: None,
            stamp: WriterStamp::next(Some(cycle)),
            extra,
        };
        let bytes = match serde_json::to_vec(&doc) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("serialise: {e}");
                std::process::exit(1);
            }
        };
        if let Err(e) = write_atomic(&path, &bytes, false) {
            eprintln!("{e}");
            std::process::exit(1);
        }
        if cycle == 0 {
            let mut out = std::io::stdout();
            let _ = writeln!(out, "ready");
            let _ = out.flush();
        }
    }
}
