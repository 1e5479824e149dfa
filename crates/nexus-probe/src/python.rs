//! Python syntax check (docs/SPEC.md §2.3.4, defect W15): the configured interpreter
//! runs `ast.parse` on the file. The path is passed as an argument, never
//! interpolated into code; nothing is written to disk (`ast.parse` writes no
//! `.pyc`, `-B` makes sure); the child is killed when the probe times out.

use std::path::PathBuf;
use std::process::Stdio;

use serde::Deserialize;
use serde_json::Value;

use crate::Outcome;

/// `python_syntax = { path = "nexus/nexus_think.py", python = "python3" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonSyntaxSpec {
    /// Python source file to check (`~` expanded), e.g. `nexus/nexus_think.py`.
    pub path: PathBuf,
    /// The interpreter that will run the agent (default `python3`).
    #[serde(default = "python3")]
    pub python: String,
}

fn python3() -> String {
    "python3".to_string()
}

impl PythonSyntaxSpec {
    /// Checks `path` with `python3`.
    pub fn new(path: impl Into<PathBuf>) -> PythonSyntaxSpec {
        PythonSyntaxSpec {
            path: path.into(),
            python: python3(),
        }
    }
}

/// The program `python -c` runs. It reads `sys.argv[1]` and prints one JSON line.
const CHECKER: &str = r#"
import ast, json, sys
p = sys.argv[1]
def out(**kw):
    print(json.dumps(kw)); sys.exit(0)
try:
    with open(p, 'rb') as f:
        src = f.read()
except OSError as e:
    out(kind='io', msg=e.strerror or str(e))
try:
    ast.parse(src, p)
except SyntaxError as e:
    out(kind='syntax', type=type(e).__name__, msg=e.msg, line=e.lineno, col=e.offset)
except (ValueError, UnicodeError) as e:
    out(kind='decode', type=type(e).__name__, msg=str(e))
except (MemoryError, RecursionError) as e:
    out(kind='limit', type=type(e).__name__, msg=str(e))
out(kind='ok')
"#;

pub(crate) async fn check(spec: &PythonSyntaxSpec) -> Outcome {
    let path = nexus_stdx::expand_home(&spec.path);
    let shown = path.display().to_string();
    match tokio::fs::metadata(&path).await {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Outcome::critical(format!("Source not found: {shown}"));
        }
        Err(e) => return Outcome::critical(format!("Source unreadable: {shown}: {e}")),
        Ok(m) if !m.is_file() => {
            return Outcome::critical(format!("Source is not a regular file: {shown}"));
        }
        Ok(_) => {}
    }
    let child = tokio::process::Command::new(&spec.python)
        .arg("-I") // isolated: no PYTHON* env, no user site, script dir not on sys.path
        .arg("-B") // never write bytecode
        .arg("-c")
        .arg(CHECKER)
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = match child.await {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Outcome::unknown(format!(
                "Python interpreter {:?} not found: cannot check {shown}",
                spec.python
            ));
        }
        Err(e) => return Outcome::unknown(format!("cannot run {:?}: {e}", spec.python)),
    };
    let line = String::from_utf8_lossy(&out.stdout);
    let parsed: Option<Value> = line
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok());
    let Some(v) = parsed else {
        let err = String::from_utf8_lossy(&out.stderr);
        return Outcome::unknown(format!(
            "{:?} gave no verdict on {shown} ({}): {}",
            spec.python,
            out.status,
            err.lines()
                .last()
                .unwrap_or("no output")
                .chars()
                .take(200)
                .collect::<String>()
        ));
    };
    let msg = v["msg"].as_str().unwrap_or("").to_string();
    let o = match v["kind"].as_str() {
        Some("ok") => Outcome::ok(format!("Syntax OK ({shown})")),
        Some("syntax") => {
            let line = v["line"].as_u64();
            let col = v["col"].as_u64();
            let ty = v["type"].as_str().unwrap_or("SyntaxError");
            Outcome::critical(format!(
                "{ty} in {shown} line {}, col {}: {msg}",
                line.map_or("?".to_string(), |l| l.to_string()),
                col.map_or("?".to_string(), |c| c.to_string())
            ))
            .with("line", line)
            .with("col", col)
        }
        Some("decode") => Outcome::critical(format!("Source undecodable: {shown}: {msg}")),
        Some("io") => Outcome::critical(format!("Source unreadable: {shown}: {msg}")),
        _ => Outcome::unknown(format!("Syntax check of {shown} hit a limit: {msg}")),
    };
    o.with("file", &shown)
        .with("message", if msg.is_empty() { None } else { Some(msg) })
}
