//! Nagios-style plugin probe: exit code 0/1/2/3 is the status, the first line
//! of output is the summary, and the perfdata after `|` is parsed.

use std::process::Stdio;

use serde::{Deserialize, Serialize};

use crate::error::SpecError;
use crate::{Outcome, Status};

/// `command = { argv = ["/usr/lib/nagios/plugins/check_load", "-w", "5,4,3", "-c", "9,8,7"] }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// The program and its arguments (no shell).
    pub argv: Vec<String>,
}

impl CommandSpec {
    /// Runs `argv` directly, no shell; `argv[0]` must name the program.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> CommandSpec {
        CommandSpec {
            argv: argv.into_iter().map(Into::into).collect(),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), SpecError> {
        match self.argv.first() {
            Some(p) if !p.is_empty() => Ok(()),
            _ => Err(SpecError::field("argv", "must name a program")),
        }
    }
}

/// One perfdata item: `'label'=value[UOM];[warn];[crit];[min];[max]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerfDatum {
    /// Label with the surrounding quotes removed (`''` unescaped to `'`).
    pub label: String,
    /// The value (`None` for `U`, unknown).
    pub value: Option<f64>,
    /// The unit (`s`, `%`, `B`, `KB`, `c`, ...), possibly empty.
    pub uom: String,
    /// Warning range as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warn: Option<String>,
    /// Critical range as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crit: Option<String>,
    /// Minimum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Maximum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// Parses perfdata; malformed items are skipped (their text is returned).
pub fn parse_perfdata(text: &str) -> (Vec<PerfDatum>, Vec<String>) {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        // Label: quoted ('' is an escaped quote) or up to '='.
        let (label, after) = if let Some(r) = rest.strip_prefix('\'') {
            let mut label = String::new();
            let mut chars = r.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c == '\'' {
                    if r[i + 1..].starts_with('\'') {
                        label.push('\'');
                        chars.next();
                    } else {
                        end = Some(i + 1);
                        break;
                    }
                } else {
                    label.push(c);
                }
            }
            match end {
                Some(e) => (label, &r[e..]),
                None => {
                    bad.push(rest.to_string());
                    break;
                }
            }
        } else {
            let stop = rest.find(['=', ' ']).unwrap_or(rest.len());
            (rest[..stop].to_string(), &rest[stop..])
        };
        let token_end = |s: &str| s.find(char::is_whitespace).unwrap_or(s.len());
        let Some(after) = after.strip_prefix('=') else {
            let skip = token_end(rest);
            bad.push(rest[..skip].to_string());
            rest = rest[skip..].trim_start();
            continue;
        };
        let end = token_end(after);
        let fields: Vec<&str> = after[..end].split(';').collect();
        rest = after[end..].trim_start();
        let v = fields[0];
        let split = v
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
            .unwrap_or(v.len());
        let (num, uom) = v.split_at(split);
        let value = if v == "U" {
            None
        } else if let Ok(n) = num.parse::<f64>() {
            Some(n)
        } else {
            bad.push(format!("{label}={}", &after[..end]));
            continue;
        };
        let opt = |i: usize| {
            fields
                .get(i)
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string())
        };
        let num_at = |i: usize| fields.get(i).and_then(|s| s.parse::<f64>().ok());
        out.push(PerfDatum {
            label,
            value,
            uom: if v == "U" {
                String::new()
            } else {
                uom.to_string()
            },
            warn: opt(1),
            crit: opt(2),
            min: num_at(3),
            max: num_at(4),
        });
    }
    (out, bad)
}

pub(crate) async fn check(spec: &CommandSpec) -> Outcome {
    if let Err(why) = spec.validate() {
        return Outcome::unknown(format!("command probe misconfigured: {why}"));
    }
    let program = &spec.argv[0];
    let out = tokio::process::Command::new(program)
        .args(&spec.argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) => return Outcome::unknown(format!("cannot run {program}: {e}")),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().next().unwrap_or("").trim();
    let (text, perf) = match first.split_once('|') {
        Some((t, p)) => (t.trim(), p.trim()),
        None => (first, ""),
    };
    let (perfdata, bad) = parse_perfdata(perf);
    let (status, summary) = match out.status.code() {
        Some(code) => {
            let status = Status::from_exit_code(code);
            let summary = if text.is_empty() {
                format!("{program} exited with code {code} and printed nothing")
            } else if !(0..=3).contains(&code) {
                format!("{program} exited with code {code} (not a plugin status): {text}")
            } else {
                text.chars().take(500).collect()
            };
            (status, summary)
        }
        None => {
            use std::os::unix::process::ExitStatusExt;
            let sig = out.status.signal().unwrap_or(0);
            (
                Status::Unknown,
                format!("{program} was killed by signal {sig}"),
            )
        }
    };
    let mut o = Outcome::new(status, summary)
        .with("exit_code", out.status.code())
        .with("perfdata", perfdata);
    if !bad.is_empty() {
        o = o.with("perfdata_unparsed", bad);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfdata_forms() {
        let (p, bad) = parse_perfdata(
            "time=0.002s;1;2;0;10 'in use'=42%;80;90 size=1.5e3B count=7 x=U junk 'it''s'=1",
        );
        assert_eq!(bad, ["junk"]);
        assert_eq!(p.len(), 6);
        assert_eq!(p[0].label, "time");
        assert_eq!(p[0].value, Some(0.002));
        assert_eq!(p[0].uom, "s");
        assert_eq!(p[0].warn.as_deref(), Some("1"));
        assert_eq!(p[0].max, Some(10.0));
        assert_eq!(p[1].label, "in use");
        assert_eq!(p[1].uom, "%");
        assert_eq!(p[2].value, Some(1500.0));
        assert_eq!(p[4].value, None);
        assert_eq!(p[5].label, "it's");
        assert_eq!(parse_perfdata("'unterminated=1").1.len(), 1);
        assert!(parse_perfdata("").0.is_empty());
    }
}
