//! Every agent's persisted [`AgentRecord`], by key, in one sorted vector.
//!
//! A pool of 10,000 agents holds 10,000 records for its whole life and
//! looks each one up once per sweep. A sorted vector costs exactly one
//! entry per agent (no tree nodes), finds a key by binary search, and
//! shares each key with the fleet's [`Target`](crate::fleet::Target)
//! (`Arc<str>`), so a key is allocated once, not once per structure.
//!
//! A sweep marks the records of the agents it saw ([`Records::mark`]) and
//! takes the others out at its end ([`Records::take_unmarked`]), without a
//! set of the fleet's keys: the pool keeps those of a cell it cannot read
//! and retires the rest (see `pool::unseen`).
//!
//! On disk it is a JSON object, key → record, in key order (as the
//! `BTreeMap` it replaces wrote it).

use std::sync::Arc;

use nexus_revive::AgentRecord;
use serde::de::{MapAccess, Visitor};

use crate::sighting::Sighting;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    key: Arc<str>,
    rec: AgentRecord,
    /// What its last check saw (for `--status`).
    seen: Sighting,
    /// Seen by the sweep in progress.
    marked: bool,
}

/// Per-agent records by key (see the module documentation).
#[derive(Debug, Clone, Default)]
pub struct Records {
    /// Sorted by key, keys unique.
    entries: Vec<Entry>,
    /// Where the next [`Records::take`] looks first: a sweep steps the
    /// cells in key order, so the next agent's record is usually the next
    /// entry (one comparison instead of a binary search).
    next: usize,
}

/// Equal when they hold the same records (marks and the search hint aside).
impl PartialEq for Records {
    fn eq(&self, other: &Records) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(&other.entries)
                .all(|(a, b)| a.key == b.key && a.rec == b.rec)
    }
}

impl Records {
    fn find(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| (*e.key).cmp(key))
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No record at all.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The record of `key`.
    pub fn get(&self, key: &str) -> Option<&AgentRecord> {
        self.find(key).ok().map(|i| &self.entries[i].rec)
    }

    /// The record of `key`, to change.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut AgentRecord> {
        self.find(key).ok().map(|i| &mut self.entries[i].rec)
    }

    /// The key as the records hold it (to share rather than allocate again).
    pub fn key(&self, key: &str) -> Option<&Arc<str>> {
        self.find(key).ok().map(|i| &self.entries[i].key)
    }

    /// Whether `key` has a record.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    /// Sets the record of `key`; the previous one, if any. One insert moves
    /// the entries after it: for one agent at a time (a launch journal
    /// replayed, a test); a sweep adds its new agents with [`Records::add`].
    pub fn insert(&mut self, key: impl Into<Arc<str>>, rec: AgentRecord) -> Option<AgentRecord> {
        let key = key.into();
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].rec, rec)),
            Err(i) => {
                self.entries.insert(
                    i,
                    Entry {
                        key,
                        rec,
                        seen: Sighting::default(),
                        marked: false,
                    },
                );
                None
            }
        }
    }

    /// Gives each of `keys` that has no record a default one, in one sort
    /// (a first sweep adds 10,000 at once). Duplicate keys get one record.
    pub fn add<'a>(&mut self, keys: impl Iterator<Item = &'a Arc<str>> + Clone) {
        let known = |e: &[Entry], key: &str| e.binary_search_by(|e| (*e.key).cmp(key)).is_ok();
        // Counted first so the vector grows once, to its exact size (growth
        // by doubling would hold up to twice the records at the peak).
        let missing = keys.clone().filter(|k| !known(&self.entries, k)).count();
        if missing == 0 {
            return;
        }
        let before = self.entries.len();
        self.entries.reserve_exact(missing);
        for key in keys {
            if !known(&self.entries[..before], key) {
                self.entries.push(Entry {
                    key: key.clone(),
                    rec: AgentRecord::default(),
                    seen: Sighting::default(),
                    marked: false,
                });
            }
        }
        // In place (no scratch copy); equal keys are all new, default records.
        self.entries.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        self.entries.dedup_by(|a, b| a.key == b.key);
    }

    /// What the last check of `key` saw.
    pub fn sighting(&self, key: &str) -> Option<Sighting> {
        self.find(key).ok().map(|i| self.entries[i].seen)
    }

    /// Sets what the last check of `key` saw; false if it has no record.
    pub fn set_sighting(&mut self, key: &str, seen: Sighting) -> bool {
        match self.find(key) {
            Ok(i) => {
                self.entries[i].seen = seen;
                true
            }
            Err(_) => false,
        }
    }

    /// Every record with what its last check saw, by key order.
    pub fn iter_seen(&self) -> impl Iterator<Item = (&str, &AgentRecord, Sighting)> + '_ {
        self.entries.iter().map(|e| (&*e.key, &e.rec, e.seen))
    }

    /// Takes out the record of `key` (leaving a default one), marks it seen
    /// by this sweep, and tells where it was and what its last check saw:
    /// the sweep steps it and puts it back with [`Records::put`], one
    /// search for both.
    pub fn take(&mut self, key: &str) -> Option<(usize, AgentRecord, Sighting)> {
        let i = match self.entries.get(self.next) {
            Some(e) if *e.key == *key => self.next,
            _ => self.find(key).ok()?,
        };
        self.next = i + 1;
        let e = &mut self.entries[i];
        e.marked = true;
        Some((i, std::mem::take(&mut e.rec), e.seen))
    }

    /// Puts back the record of `key` taken from `at` (searched for again
    /// only if the records changed in between), marked, with what this
    /// check saw.
    pub fn put(&mut self, at: usize, key: &Arc<str>, rec: AgentRecord, seen: Sighting) {
        let at = match self.entries.get(at) {
            Some(e) if *e.key == **key => at,
            _ => {
                self.insert(key.clone(), rec.clone());
                match self.find(key) {
                    Ok(i) => i,
                    Err(_) => return,
                }
            }
        };
        let e = &mut self.entries[at];
        e.rec = rec;
        e.seen = seen;
        e.marked = true;
    }

    /// Forgets which records the last sweep saw.
    pub fn unmark_all(&mut self) {
        for e in &mut self.entries {
            e.marked = false;
        }
    }

    /// Marks `key` as seen by this sweep; false if it has no record.
    pub fn mark(&mut self, key: &str) -> bool {
        match self.find(key) {
            Ok(i) => {
                self.entries[i].marked = true;
                true
            }
            Err(_) => false,
        }
    }

    /// Drops the records this sweep did not mark (agents that left).
    pub fn retain_marked(&mut self) {
        self.entries.retain(|e| e.marked);
    }

    /// The keys this sweep did not mark, in key order.
    pub fn unmarked(&self) -> impl Iterator<Item = &Arc<str>> + '_ {
        self.entries.iter().filter(|e| !e.marked).map(|e| &e.key)
    }

    /// Takes out the records this sweep did not mark.
    pub fn take_unmarked(&mut self) -> Vec<(Arc<str>, AgentRecord)> {
        if self.entries.iter().all(|e| e.marked) {
            return Vec::new();
        }
        let (kept, gone) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|e| e.marked);
        self.entries = kept;
        gone.into_iter().map(|e: Entry| (e.key, e.rec)).collect()
    }

    /// Every record, by key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AgentRecord)> + '_ {
        self.entries.iter().map(|e| (&*e.key, &e.rec))
    }
}

impl std::ops::Index<&str> for Records {
    type Output = AgentRecord;

    /// # Panics
    /// If `key` has no record (tests).
    fn index(&self, key: &str) -> &AgentRecord {
        match self.get(key) {
            Some(r) => r,
            None => panic!("no record for {key:?}"),
        }
    }
}

/// A record as the state file holds it: the record's fields and, once
/// checked, `seen` (a state file without it loads as never checked; an
/// older pool ignores it).
#[derive(Serialize)]
struct Out<'a> {
    #[serde(flatten)]
    rec: &'a AgentRecord,
    #[serde(skip_serializing_if = "unchecked")]
    seen: &'a Sighting,
}

fn unchecked(s: &&Sighting) -> bool {
    !s.checked()
}

#[derive(Deserialize)]
struct In {
    #[serde(flatten)]
    rec: AgentRecord,
    #[serde(default)]
    seen: Sighting,
}

impl Serialize for Records {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for e in &self.entries {
            let out = Out {
                rec: &e.rec,
                seen: &e.seen,
            };
            map.serialize_entry(&*e.key, &out)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Records {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Records, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Records;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of agent records by key")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Records, A::Error> {
                let mut entries = Vec::with_capacity(m.size_hint().unwrap_or(0).min(1 << 16));
                while let Some((key, e)) = m.next_entry::<String, In>()? {
                    entries.push(Entry {
                        key: Arc::from(key),
                        rec: e.rec,
                        seen: e.seen,
                        marked: false,
                    });
                }
                // A key written twice: the last one wins, as in a map.
                entries.reverse();
                entries.sort_by(|a, b| a.key.cmp(&b.key)); // stable: the last first
                entries.dedup_by(|a, b| a.key == b.key);
                Ok(Records { entries, next: 0 })
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexus_revive::State;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn rec(attempts: u32) -> AgentRecord {
        AgentRecord {
            episode_attempts: attempts,
            ..AgentRecord::default()
        }
    }

    #[test]
    fn add_gives_new_keys_a_default_record_and_keeps_old_ones() {
        let mut r = Records::default();
        r.insert("b", rec(2));
        r.add(["c", "a", "b", "a"].map(Arc::from).iter());
        let keys: Vec<&str> = r.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "c"]);
        assert_eq!(r["b"].episode_attempts, 2, "an existing record is kept");
        assert_eq!(r["a"], AgentRecord::default());
    }

    #[test]
    fn a_taken_record_is_put_back_in_place_or_found_again() {
        let mut r = Records::default();
        r.add(["a", "b"].map(Arc::from).iter());
        let b: Arc<str> = Arc::from("b");
        let (at, mut rec, seen) = r.take("b").unwrap();
        assert!(!seen.checked());
        rec.episode_attempts = 3;
        let probe = nexus_revive::Probe {
            gateway: None,
            process: None,
            heartbeat: nexus_revive::Heartbeat::Missing,
        };
        let now = Sighting::new(
            9.0,
            State::Dead,
            crate::sighting::Why::NoHeartbeat,
            &probe,
            None,
        );
        r.put(at, &b, rec.clone(), now);
        assert_eq!(r["b"], rec);
        assert_eq!(r.sighting("b"), Some(now));
        // Moved in between: found again, not written over another record.
        let (at, _, _) = r.take("b").unwrap();
        r.insert("0", AgentRecord::default());
        r.put(at, &b, rec.clone(), now);
        assert_eq!(r["b"], rec);
        assert_eq!(r.sighting("b"), Some(now));
        assert_eq!(r.sighting("0"), Some(Sighting::default()));
        assert_eq!(r["a"], AgentRecord::default());
        assert!(r.take("zz").is_none());
        r.retain_marked();
        assert_eq!(r.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn unmarked_records_are_dropped() {
        let mut r = Records::default();
        r.add(["a", "b", "c"].map(Arc::from).iter());
        r.mark("a");
        r.mark("c");
        assert!(!r.mark("zz"), "no record, nothing marked");
        r.retain_marked();
        assert_eq!(r.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["a", "c"]);
        r.unmark_all();
        r.retain_marked();
        assert!(r.is_empty());
    }

    #[test]
    fn unmarked_records_are_listed_and_taken_out_in_key_order() {
        let mut r = Records::default();
        r.add(["c", "a", "b"].map(Arc::from).iter());
        r.insert("b", rec(4));
        r.mark("a");
        let unmarked: Vec<&str> = r.unmarked().map(|k| &**k).collect();
        assert_eq!(unmarked, ["b", "c"]);
        let taken = r.take_unmarked();
        assert_eq!(taken[0].0.as_ref(), "b");
        assert_eq!(taken[0].1.episode_attempts, 4, "taken with its record");
        assert_eq!(r.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["a"]);
        assert!(r.take_unmarked().is_empty());
    }

    #[test]
    fn json_is_an_object_in_key_order_and_the_last_duplicate_wins() {
        let mut r = Records::default();
        r.insert("z", rec(1));
        r.insert("a", rec(2));
        let text = serde_json::to_string(&r).unwrap();
        let as_map: BTreeMap<String, AgentRecord> = serde_json::from_str(&text).unwrap();
        assert_eq!(as_map.keys().collect::<Vec<_>>(), ["a", "z"]);
        assert!(text.find("\"a\"").unwrap() < text.find("\"z\"").unwrap());
        let back: Records = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);

        let a = serde_json::to_string(&rec(1)).unwrap();
        let b = serde_json::to_string(&rec(7)).unwrap();
        let dup: Records = serde_json::from_str(&format!(r#"{{"k":{a},"k":{b}}}"#)).unwrap();
        assert_eq!(dup.len(), 1);
        assert_eq!(dup["k"].episode_attempts, 7);
    }

    #[test]
    fn a_sighting_is_saved_beside_its_record_and_an_old_file_still_loads() {
        // A state file from before sightings: records only.
        let old: Records =
            serde_json::from_str(r#"{"k": {"state": "dead", "episode_attempts": 2}}"#).unwrap();
        assert_eq!(old["k"].state, State::Dead);
        assert_eq!(old["k"].episode_attempts, 2);
        assert_eq!(old.sighting("k"), Some(Sighting::default()));
        // Never checked: nothing more is written.
        assert!(!serde_json::to_string(&old).unwrap().contains(r#""seen""#));

        let mut r = old;
        let (at, rec, _) = r.take("k").unwrap();
        let probe = nexus_revive::Probe {
            gateway: Some(false),
            process: None,
            heartbeat: nexus_revive::Heartbeat::Stale,
        };
        let why = crate::sighting::Why::HeartbeatStale;
        let seen = Sighting::new(1_800_000_000.0, State::Dead, why, &probe, Some(70.0));
        r.put(at, &Arc::from("k"), rec, seen);
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""seen":{"#), "{text}");
        // An older pool reads the record and ignores the rest.
        let as_old: BTreeMap<String, AgentRecord> = serde_json::from_str(&text).unwrap();
        assert_eq!(as_old["k"].episode_attempts, 2);
        let back: Records = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.sighting("k"), Some(seen));
    }

    #[test]
    fn a_record_of_the_wrong_type_is_an_error_not_a_panic() {
        let e = serde_json::from_str::<Records>(r#"{"a": 3}"#).unwrap_err();
        assert!(e.to_string().contains("invalid type"), "{e}");
        assert!(serde_json::from_str::<Records>("[]").is_err());
    }

    proptest! {
        /// The vector behaves as the map it replaces.
        #[test]
        fn behaves_as_a_map(ops in proptest::collection::vec((0u8..4, "[a-e]{1,2}", 0u32..5), 0..60)) {
            let mut ours = Records::default();
            let mut model: BTreeMap<String, AgentRecord> = BTreeMap::new();
            for (op, key, n) in ops {
                match op {
                    0 => {
                        prop_assert_eq!(ours.insert(key.as_str(), rec(n)), model.insert(key.clone(), rec(n)));
                    }
                    1 => {
                        ours.add([Arc::from(key.as_str())].iter());
                        model.entry(key.clone()).or_default();
                    }
                    2 => {
                        if let Some(r) = ours.get_mut(&key) { r.state = State::Dead; }
                        if let Some(r) = model.get_mut(&key) { r.state = State::Dead; }
                    }
                    _ => {
                        ours.unmark_all();
                        for k in model.keys().filter(|k| k.len() == 1) { ours.mark(k); }
                        ours.retain_marked();
                        model.retain(|k, _| k.len() == 1);
                    }
                }
                prop_assert_eq!(ours.get(&key), model.get(&key));
                prop_assert_eq!(ours.len(), model.len());
            }
            let listed: Vec<(&str, &AgentRecord)> = ours.iter().collect();
            let expected: Vec<(&str, &AgentRecord)> = model.iter().map(|(k, v)| (k.as_str(), v)).collect();
            prop_assert_eq!(listed, expected);
        }
    }
}

#[cfg(test)]
mod footprint {
    /// An entry exists per agent for the pool's whole life: at 10,000
    /// agents every 8 bytes here are 80 kB of the daemon's idle RSS.
    #[test]
    fn an_entry_stays_small() {
        let (entry, rec) = (size_of::<super::Entry>(), size_of::<super::AgentRecord>());
        eprintln!("Entry {entry} bytes, AgentRecord {rec}");
        assert!(entry <= 200, "Entry grew: {entry} bytes (record {rec})");
    }
}
