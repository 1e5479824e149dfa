//! The example configs in `docs/examples` list every option the code
//! reads (issue 21): for every table of an example, the parser itself is
//! asked which keys that table takes (a key it does not know is slipped
//! in, and its "unknown field …, expected one of …" answer read back),
//! and each of them must be in the example, set or shown in a comment
//! (`# token_file = "…"`). A field added to a config struct without a line
//! in its example fails here, naming the table and the key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The key slipped into a table to make the parser list the table's keys
/// (sorted first: the parser meets it before any other).
const PROBE: &str = "__nexus_probe";

fn example(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/examples")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A path into a TOML document: table keys and array indexes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Key(String),
    Index(usize),
}

/// Every table of `v` (inline ones and those in arrays too), by path.
fn tables(v: &toml::Table, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(at.clone());
    for (k, v) in v {
        at.push(Step::Key(k.clone()));
        match v {
            toml::Value::Table(t) => tables(t, at, out),
            toml::Value::Array(a) => {
                for (i, e) in a.iter().enumerate() {
                    if let toml::Value::Table(t) = e {
                        at.push(Step::Index(i));
                        tables(t, at, out);
                        at.pop();
                    }
                }
            }
            _ => {}
        }
        at.pop();
    }
}

fn table_at<'a>(doc: &'a mut toml::Table, path: &[Step]) -> &'a mut toml::Table {
    let mut t = doc;
    let mut i = 0;
    while i < path.len() {
        let Step::Key(k) = &path[i] else {
            unreachable!("a path starts each level with a key")
        };
        let v = t.get_mut(k).unwrap();
        t = match (v, path.get(i + 1)) {
            (toml::Value::Array(a), Some(Step::Index(n))) => {
                let n = *n;
                i += 1;
                a[n].as_table_mut().unwrap()
            }
            (toml::Value::Table(t), _) => t,
            (other, _) => panic!("not a table at {path:?}: {other:?}"),
        };
        i += 1;
    }
    t
}

/// The keys the parser takes in the table at `path` of `doc`, or `None`
/// when it takes any (a map, e.g. `[jobs]` or `headers`).
fn expected(
    doc: &toml::Table,
    path: &[Step],
    parse: &dyn Fn(&str) -> Result<(), String>,
) -> Option<BTreeSet<String>> {
    let mut probed = doc.clone();
    table_at(&mut probed, path).insert(PROBE.into(), toml::Value::Integer(0));
    let err = parse(&toml::to_string(&probed).unwrap()).err()?;
    let (_, rest) = err.split_once(&format!("unknown field `{PROBE}`"))?;
    let rest = rest.lines().next().unwrap_or_default();
    Some(
        rest.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

/// The group a table's keys are compared in: its path without array
/// indexes, a map's entries as `*` (`probe.http`, `jobs.*`).
fn group(path: &[Step], maps: &BTreeSet<String>) -> String {
    let mut g = String::new();
    for s in path {
        if let Step::Key(k) = s {
            let seg = if maps.contains(&g) { "*" } else { k.as_str() };
            if !g.is_empty() {
                g.push('.');
            }
            g.push_str(seg);
        }
    }
    g
}

/// `text` with its commented-out keys and tables (`# token_file = "…"`,
/// `# [nostr]`) uncommented where that stays valid TOML: what the example
/// shows, set or not.
fn shown(text: &str) -> toml::Table {
    let key = |l: &str| {
        let t = l.trim_start().strip_prefix('#')?.trim_start();
        let name_end = t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
        (name_end > 0 && t[name_end..].trim_start().starts_with('=') || t.starts_with('['))
            .then(|| t.to_string())
    };
    let mut lines: Vec<(String, bool)> = text
        .lines()
        .map(|l| match key(l) {
            Some(u) => (u, true),
            None => (l.to_string(), false),
        })
        .collect();
    // A comment that clashes (a key set above it too, an alternative that
    // is no TOML) goes back to being a comment; bounded by the lines.
    for _ in 0..=lines.len() {
        let joined: String = lines.iter().map(|(l, _)| format!("{l}\n")).collect();
        match joined.parse::<toml::Table>() {
            Ok(t) => return t,
            Err(e) => {
                let at = e.span().map_or(0, |s| s.start);
                let line = joined[..at.min(joined.len())].matches('\n').count();
                let back = (0..=line)
                    .rev()
                    .find(|&i| lines.get(i).is_some_and(|(_, u)| *u))
                    .unwrap_or_else(|| panic!("the example is no TOML: {e}"));
                lines[back] = (format!("# {}", lines[back].0), false);
            }
        }
    }
    unreachable!("each round comments one line back")
}

/// The keys each group of `text` lacks: what the parser takes there and
/// the example neither sets nor shows, less `allowed` (`group.key`).
fn omitted(
    text: &str,
    parse: &dyn Fn(&str) -> Result<(), String>,
    allowed: &[&str],
) -> Vec<String> {
    parse(text).unwrap_or_else(|e| panic!("the example does not load: {e}"));
    // The tables are asked in the example as shown (its commented-out
    // tables too, e.g. an endpoint that is off by default) when that loads,
    // else as it is.
    let shown_doc = shown(text);
    let doc: toml::Table = match toml::to_string(&shown_doc) {
        Ok(t) if parse(&t).is_ok() => shown_doc.clone(),
        // Not as a whole (two alternatives shown at once): each commented
        // table that loads beside the set ones on its own.
        _ => {
            let mut doc: toml::Table = text.parse().unwrap();
            for (k, v) in &shown_doc {
                if doc.contains_key(k) {
                    continue;
                }
                let mut with = doc.clone();
                with.insert(k.clone(), v.clone());
                if toml::to_string(&with).is_ok_and(|t| parse(&t).is_ok()) {
                    doc = with;
                }
            }
            doc
        }
    };
    let mut paths = Vec::new();
    tables(&doc, &mut Vec::new(), &mut paths);
    paths.sort_by_key(Vec::len);
    let mut maps = BTreeSet::new();
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &paths {
        let g = group(p, &maps);
        match expected(&doc, p, parse) {
            Some(keys) => wanted.entry(g).or_default().extend(keys),
            None => {
                maps.insert(g);
            }
        }
    }
    let mut shown_paths = Vec::new();
    tables(&shown_doc, &mut Vec::new(), &mut shown_paths);
    let mut present: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in &shown_paths {
        let mut d = shown_doc.clone();
        let keys: Vec<String> = table_at(&mut d, p).keys().cloned().collect();
        present.entry(group(p, &maps)).or_default().extend(keys);
    }
    let mut missing = Vec::new();
    for (g, keys) in &wanted {
        for k in keys {
            let name = if g.is_empty() {
                k.clone()
            } else {
                format!("{g}.{k}")
            };
            let there = present.get(g).is_some_and(|p| p.contains(k));
            if !there && !allowed.contains(&name.as_str()) {
                missing.push(name);
            }
        }
    }
    missing
}

fn check(name: &str, parse: &dyn Fn(&str) -> Result<(), String>, allowed: &[&str]) {
    let missing = omitted(&example(name), parse, allowed);
    assert!(
        missing.is_empty(),
        "docs/examples/{name} omits keys its parser reads (add each, set or as a `# key = …` comment): {missing:?}"
    );
}

#[test]
fn the_watchdog_example_lists_every_option_and_probe_kind() {
    check(
        "watchdog.toml",
        &|t| {
            nexus_watch::WatchdogFile::parse_with::<
                nexus_history::WithHistory<nexus_alert::AlertTables>,
            >(t, "watchdog.toml")
            .map(drop)
            .map_err(|e| e.to_string())
        },
        &[],
    );
}

#[test]
fn the_pool_example_lists_every_option() {
    check(
        "resurrection-pool.toml",
        &|t| {
            nexus_pool::config::PoolConfig::parse(t, "resurrection-pool.toml")
                .map(drop)
                .map_err(|e| e.to_string())
        },
        &[],
    );
}

#[test]
fn the_cron_registry_example_lists_every_option() {
    check(
        "cron-jobs.toml",
        &|t| {
            nexus_cron::Registry::parse_with::<nexus_history::WithHistory<nexus_alert::AlertTables>>(
                t,
                Path::new("cron-jobs.toml"),
            )
            .map(drop)
            .map_err(|e| e.to_string())
        },
        &[],
    );
}

/// The check itself: a table missing a key is found, named with its group.
#[test]
fn an_omitted_key_is_named() {
    let parse = |t: &str| {
        nexus_watch::WatchdogFile::parse(t, "w.toml")
            .map(drop)
            .map_err(|e| e.to_string())
    };
    let text = "[runner]\nconcurrency = 4\n# default_timeout = \"5s\"\n[[probe]]\nname = \"d\"\ndisk = { path = \"/\" }\n";
    let missing = omitted(text, &parse, &[]);
    assert!(
        missing.contains(&"probe.disk.warn_pct".to_string()),
        "{missing:?}"
    );
    assert!(missing.contains(&"probe.http".to_string()), "{missing:?}");
    assert!(missing.contains(&"watchdog".to_string()), "{missing:?}");
    assert!(
        !missing.iter().any(|m| m == "runner.default_timeout"),
        "a comment shows it: {missing:?}"
    );
}
