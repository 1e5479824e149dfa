//! Test helper: appends COUNT events to an `events.jsonl` through
//! `nexus_cell::append_event`, as the daemon, the CLI and agents do.
//! Each event is `heartbeat {agent: "w<ID>", status: "<i>:<pad>"}`, so a
//! reader can check that every line of every writer arrived exactly once,
//! whole and in order.
//!
//! Usage: cell-event-appender EVENTS_PATH WRITER_ID COUNT [PAD_BYTES]
//! Waits for a line on stdin before writing (so all writers start together).

use std::io::BufRead;
use std::path::PathBuf;

use nexus_cell::{AgentName, Event, EventKind, append_event};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(path), Some(id), Some(count)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: cell-event-appender EVENTS_PATH WRITER_ID COUNT [PAD_BYTES]");
        std::process::exit(2);
    };
    let path = PathBuf::from(path);
    let count: u32 = count.parse().unwrap_or(0);
    let pad: usize = args.get(3).and_then(|p| p.parse().ok()).unwrap_or(0);
    let agent = match AgentName::new(&format!("w{id}")) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cell-event-appender: {e}");
            std::process::exit(2);
        }
    };
    let mut go = String::new();
    let _ = std::io::stdin().lock().read_line(&mut go);
    let filler = "x".repeat(pad);
    for i in 0..count {
        let ev = Event::now(EventKind::Heartbeat {
            agent: agent.clone(),
            status: format!("{i}:{filler}"),
        });
        if let Err(e) = append_event(&path, &ev) {
            eprintln!("cell-event-appender: {e}");
            std::process::exit(1);
        }
    }
}
