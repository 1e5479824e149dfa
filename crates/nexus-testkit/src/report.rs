//! Reading what a binary printed with `--json`: the document on stdout
//! (panicking with both streams when stdout is not JSON, e.g. a log line
//! that went to the wrong stream) and a watchdog check by name.

use std::process::Output;

use serde_json::Value;

/// The JSON document a run printed on stdout.
pub fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// The watchdog report's check called `name`.
pub fn check<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {v:#}"))
}
