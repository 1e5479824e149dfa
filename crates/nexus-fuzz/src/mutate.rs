//! Deterministic mutations of a valid document, driven by a list of
//! choices (proptest draws the choices, so a failure shrinks and replays).
//! Byte-level: flips, truncation, deletion, duplication, splicing, hostile
//! tokens (NUL, non-UTF-8, huge numbers, `../`). Structure-aware, for JSON
//! and TOML: a node of the parsed document replaced by a wrong type, a huge
//! or negative number, a very long string, deep nesting, or removed.

use serde_json::Value;

/// The shape of a target's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON document.
    Json,
    /// One JSON document per line.
    JsonLines,
    /// One TOML document; its parsed tree is mutated like a JSON one.
    Toml,
    /// Anything (byte mutations only).
    Bytes,
}

/// Tokens that break parsers.
const HOSTILE: &[&[u8]] = &[
    b"\0",
    b"\xff\xfe\xfd",
    b"\xc3",
    b"99999999999999999999999999999999",
    b"-1",
    b"1e400",
    b"-0",
    b"NaN",
    b"null",
    b"\"\"",
    b"[[[[[[[[[[[[[[[[",
    b"{\"a\":",
    b"\n",
    b"\r\n",
    b"../../../etc/passwd",
    b"/ping/..%2f..%2fx",
    b"\xe2\x80\xae",
    b"=",
    b"[[probe]]",
    b"}",
];

/// Applies one mutation per choice to `seed`; `other` is spliced from.
pub fn mutate(format: Format, seed: &[u8], other: &[u8], choices: &[u32]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for &c in choices {
        let structured = format != Format::Bytes && !c.is_multiple_of(3);
        if structured && let Some(d) = structure(format, &data, c / 3) {
            data = d;
            continue;
        }
        bytes(&mut data, other, c / 3);
    }
    data
}

fn bytes(data: &mut Vec<u8>, other: &[u8], c: u32) {
    let op = c % 7;
    let p = (c / 7) as usize;
    let at = |len: usize| if len == 0 { 0 } else { p % (len + 1) };
    match op {
        0 if !data.is_empty() => {
            let i = p % data.len();
            data[i] ^= 1 << (p % 8);
        }
        1 => {
            let i = at(data.len());
            data.truncate(i);
        }
        2 if !data.is_empty() => {
            let i = p % data.len();
            let n = (p / 7 % 16 + 1).min(data.len() - i);
            data.drain(i..i + n);
        }
        3 if !data.is_empty() => {
            let i = p % data.len();
            let n = (p / 5 % 32 + 1).min(data.len() - i);
            let chunk = data[i..i + n].to_vec();
            let j = at(data.len());
            data.splice(j..j, chunk);
        }
        4 if !other.is_empty() => {
            let i = p % other.len();
            let n = (p / 3 % 64 + 1).min(other.len() - i);
            let j = at(data.len());
            data.splice(j..j, other[i..i + n].iter().copied());
        }
        _ => {
            let tok = HOSTILE[p % HOSTILE.len()];
            let j = at(data.len());
            data.splice(j..j, tok.iter().copied());
        }
    }
}

fn structure(format: Format, data: &[u8], c: u32) -> Option<Vec<u8>> {
    match format {
        Format::Json => {
            let mut v: Value = serde_json::from_slice(data).ok()?;
            json(&mut v, c);
            serde_json::to_vec(&v).ok()
        }
        Format::JsonLines => {
            let text = std::str::from_utf8(data).ok()?;
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            if lines.is_empty() {
                return None;
            }
            let i = c as usize % lines.len();
            let mut v: Value = serde_json::from_str(&lines[i]).ok()?;
            json(&mut v, c / 7);
            lines[i] = serde_json::to_string(&v).ok()?;
            Some((lines.join("\n") + "\n").into_bytes())
        }
        Format::Toml => {
            let text = std::str::from_utf8(data).ok()?;
            let mut v: toml::Table = toml::from_str(text).ok()?;
            let mut root = toml::Value::Table(std::mem::take(&mut v));
            toml_value(&mut root, c);
            toml::to_string(&root).ok().map(String::into_bytes)
        }
        Format::Bytes => None,
    }
}

/// Every node of a JSON tree, in pre-order, as a path of steps.
fn json_nodes(v: &Value, path: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(path.clone());
    match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                path.push(Step::Index(i));
                json_nodes(x, path, out);
                path.pop();
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                path.push(Step::Key(k.clone()));
                json_nodes(x, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum Step {
    Index(usize),
    Key(String),
}

fn json_at<'a>(v: &'a mut Value, path: &[Step]) -> Option<&'a mut Value> {
    let mut cur = v;
    for s in path {
        cur = match s {
            Step::Index(i) => cur.get_mut(*i)?,
            Step::Key(k) => cur.get_mut(k.as_str())?,
        };
    }
    Some(cur)
}

fn nest(depth: usize) -> Value {
    let mut v = Value::Null;
    for _ in 0..depth {
        v = Value::Array(vec![v]);
    }
    v
}

fn json(root: &mut Value, c: u32) {
    let mut nodes = Vec::new();
    json_nodes(root, &mut Vec::new(), &mut nodes);
    let path = &nodes[c as usize % nodes.len()];
    let op = (c as usize / nodes.len()) % 12;
    // Removing a key needs the parent.
    if op == 11 {
        if let Some((Step::Key(k), parent)) = path.split_last()
            && let Some(Value::Object(m)) = json_at(root, parent)
        {
            m.remove(k);
        }
        return;
    }
    let Some(node) = json_at(root, path) else {
        return;
    };
    let new = match op {
        0 => Value::Null,
        1 => Value::Bool(true),
        2 => Value::from(u64::MAX),
        3 => Value::from(i64::MIN),
        4 => Value::from(1e308),
        5 => Value::from(-1),
        6 => Value::String(String::new()),
        7 => Value::String("x".repeat(100_000)),
        8 => nest(200),
        9 => Value::String(match &*node {
            Value::String(s) => format!("{s}\0../\u{202e}"),
            other => other.to_string(),
        }),
        _ => serde_json::json!({ "\u{0}": [node.clone()] }),
    };
    *node = new;
}

fn toml_value(cur: &mut toml::Value, c: u32) {
    use toml::Value as T;
    // Walk down by the choice's digits until a leaf or the digits run out.
    let deeper = c / 5;
    if !c.is_multiple_of(4) && deeper != 0 {
        let i = (c as usize / 4) % 64;
        let next = match cur {
            T::Table(t) if !t.is_empty() => {
                let n = t.len();
                t.iter_mut().nth(i % n).map(|(_, v)| v)
            }
            T::Array(a) if !a.is_empty() => {
                let n = a.len();
                a.get_mut(i % n)
            }
            _ => None,
        };
        if let Some(n) = next {
            toml_value(n, deeper);
            return;
        }
    }
    *cur = match c % 9 {
        0 => T::Integer(i64::MAX),
        1 => T::Integer(-1),
        2 => T::Float(f64::NAN),
        3 => T::Boolean(false),
        4 => T::String(String::new()),
        5 => T::String("y".repeat(100_000)),
        6 => T::String("../../etc/shadow\u{0}".into()),
        7 => {
            let mut v = T::Array(vec![]);
            for _ in 0..200 {
                v = T::Array(vec![v]);
            }
            v
        }
        _ => T::Array(vec![T::Integer(1), T::String("mixed".into())]),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_change_documents_and_stay_deterministic() {
        let seed = br#"{"a": [1, 2, {"b": "c"}], "d": 4.5}"#;
        let mut changed = 0;
        for c in 0..200u32 {
            let a = mutate(Format::Json, seed, b"zz", &[c, c * 7 + 1]);
            assert_eq!(a, mutate(Format::Json, seed, b"zz", &[c, c * 7 + 1]));
            changed += usize::from(a != seed);
        }
        assert!(
            changed > 190,
            "only {changed} of 200 mutations changed the seed"
        );
        let toml = b"[x]\na = 1\nb = [\"q\"]\n";
        let t = mutate(Format::Toml, toml, b"", &[1, 2, 4]);
        assert_ne!(t, toml);
    }
}
