//! Bounded decoding of request bodies, JSON and YAML alike. Every body a client sends is
//! decoded here, so none costs more than its size allows:
//!
//! - nesting is checked from the bytes before any parser runs (a linear scan), so a body
//!   nested 100,000 levels is refused at once: Go's encoding/json refuses past 10,000 as
//!   kube-apiserver does; our parsers recurse, so the bound is `MAX_DEPTH` (serde's own
//!   recursion limit is 128), in kube's words;
//! - a YAML document may have at most `MAX_YAML_NODES` tokens, counted by the same scan, and
//!   its aliases may not expand it past as many nodes (go-yaml's "excessive aliasing" guard
//!   against billion-laughs bodies): libyaml and serde_yaml cost up to ~350 ns a token, so a
//!   3 MiB body of tiny YAML tokens would take a second of CPU; with the bound no YAML body
//!   takes more than ~100 ms. kube has no such bound, but kubectl and client-go send JSON,
//!   which is not bounded this way;
//! - a body that parses as JSON is parsed as JSON even where YAML is accepted (JSON is YAML,
//!   and serde_json is many times faster than libyaml).

mod yaml_depth;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::Cell;
use std::fmt;

/// The deepest nesting of objects and arrays a request body may have.
pub const MAX_DEPTH: usize = 100;

/// The tokens a YAML body may have, and the nodes its aliases may expand it to: about a 1 MiB
/// ConfigMap of short keys and values.
pub const MAX_YAML_NODES: usize = 200_000;

/// The values a JSON body may have: more than any kind's object within kube's 3 MiB body limit
/// (a ConfigMap of that size has ~300,000), a bound on the tree a body of one-byte values
/// and empty arrays could cost (1.5 million nodes, ~130 ms of CPU to build and free).
pub const MAX_JSON_VALUES: usize = 500_000;

/// Refuses JSON nested deeper than `MAX_DEPTH`, as Go's scanner words it, or with more than
/// `MAX_JSON_VALUES` values: one linear scan, before any tree is built. A string's contents
/// are skipped to its next quote or backslash at once (memchr): large bodies are mostly strings.
pub fn check_json_depth(b: &[u8]) -> Result<(), String> {
    scan_json(b).map(drop)
}

/// What the bounds scan saw of a document's shape: the sizes of its large containers, so the
/// tree is built without growing them (a 265k-key map's pairs vector was reallocated ~16 times
/// as it doubled: 15 MB copied, and as much memory touched again).
#[derive(Debug, Default, PartialEq)]
struct Shape {
    /// (the container's place in document order, its values), for those of `LARGE` or more
    large: Vec<(u32, u32)>,
}

impl Shape {
    /// Containers smaller than this grow as they are built (their copies cost little).
    const LARGE: u32 = 1024;

    /// The values of the `nth` container (objects and arrays, counted in document order), when
    /// it is large. Only a capacity: a scan that misjudged a malformed body costs no more than
    /// `MAX_JSON_VALUES` values of room.
    fn size_of(&self, nth: u32) -> usize {
        self.large.binary_search_by_key(&nth, |(n, _)| *n).map_or(0, |i| self.large[i].1 as usize)
    }
}

/// `check_json_depth`, returning the document's `Shape`.
fn scan_json(b: &[u8]) -> Result<Shape, String> {
    // a well-formed document has 1 + (its commas) + (its non-empty containers) values
    let (mut values, mut opened) = (1usize, false);
    // the open containers: their place in document order and the values seen in each (on the
    // stack: every JSON body a request sends is scanned)
    let mut open = [(0u32, 0u32); MAX_DEPTH];
    let mut depth = 0usize;
    let (mut containers, mut shape) = (0u32, Shape::default());
    let mut i = 0;
    'scan: while i < b.len() {
        let c = b[i];
        i += 1;
        if opened && !c.is_ascii_whitespace() {
            opened = false;
            if c != b']' && c != b'}' {
                values += 1;
                if let Some(top) = depth.checked_sub(1) {
                    open[top].1 = 1;
                }
            }
        }
        match c {
            b'"' => loop {
                match memchr::memchr2(b'"', b'\\', &b[i.min(b.len())..]) {
                    None => break 'scan,                           // unterminated: the parser says so
                    Some(at) if b[i + at] == b'\\' => i += at + 2, // and the escaped byte
                    Some(at) => {
                        i += at + 1;
                        break;
                    }
                }
            },
            b'[' | b'{' => {
                if depth == MAX_DEPTH {
                    return Err(format!("invalid character '{}' exceeded max depth", c as char));
                }
                open[depth] = (containers, 0);
                depth += 1;
                containers = containers.wrapping_add(1);
                opened = true;
            }
            b']' | b'}' => {
                if let Some(top) = depth.checked_sub(1) {
                    depth = top;
                    if open[top].1 >= Shape::LARGE {
                        shape.large.push(open[top]);
                    }
                }
            }
            b',' => {
                values += 1;
                if let Some(top) = depth.checked_sub(1) {
                    open[top].1 += 1;
                }
            }
            _ => {}
        }
        if values > MAX_JSON_VALUES {
            return Err(format!("json: document has more than {MAX_JSON_VALUES} values"));
        }
    }
    // closed innermost first: put in document order for the lookup
    shape.large.sort_unstable();
    Ok(shape)
}

/// Refuses YAML nested deeper than `MAX_DEPTH` (go-yaml's text) or with more than
/// `MAX_YAML_NODES` tokens.
pub fn check_yaml_bounds(b: &[u8]) -> Result<(), String> {
    yaml_depth::check(b, MAX_DEPTH, MAX_YAML_NODES)
}

/// Refuses YAML (a policy file's, of any number of documents) nested deeper than `MAX_DEPTH`;
/// a file may hold more tokens than a body, being the operator's.
pub fn check_yaml_depth(b: &[u8]) -> Result<(), String> {
    yaml_depth::check(b, MAX_DEPTH, usize::MAX)
}

/// Decodes a JSON body.
pub fn json(b: &[u8]) -> Result<Value, String> {
    check_json_depth(b)?;
    serde_json::from_slice(b).map_err(|e| e.to_string())
}

/// Whether the body is JSON by its first non-blank byte.
pub fn looks_like_json(b: &[u8]) -> bool {
    matches!(b.iter().find(|c| !c.is_ascii_whitespace()), Some(b'{' | b'['))
}

/// Whether the body is a well-formed JSON array, found without building it: where an object is
/// required, a 3 MiB array of tiny values would otherwise cost a 48 MB tree to refuse.
pub fn is_json_array(b: &[u8]) -> bool {
    b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'[')
        && check_json_depth(b).is_ok()
        && serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok()
}

/// Decodes a YAML (or JSON) body: one document.
pub fn yaml(b: &[u8]) -> Result<Value, String> {
    if looks_like_json(b) {
        if let Ok(v) = json(b) {
            return Ok(v);
        }
    }
    yaml_value(b, None)
}

/// The YAML document within its bounds, its duplicate keys told to `dups` when given.
fn yaml_value(b: &[u8], dups: Option<&std::cell::RefCell<Vec<String>>>) -> Result<Value, String> {
    check_yaml_bounds(b)?;
    let budget = Cell::new(MAX_YAML_NODES);
    let de = serde_yaml::Deserializer::from_slice(b);
    Bounded { budget: &budget, dups }.deserialize(de).map_err(|e| {
        // serde_yaml adds where it stopped; go-yaml's text has no place
        let e = e.to_string();
        if e.contains(EXCESSIVE_ALIASING) {
            EXCESSIVE_ALIASING.to_string()
        } else {
            e
        }
    })
}

const EXCESSIVE_ALIASING: &str = "yaml: document contains excessive aliasing";

/// A serde_json::Value built from any deserializer, failing once more than `budget` nodes
/// were made (aliases replay their anchor's nodes through it, so their expansion counts).
#[derive(Clone, Copy)]
struct Bounded<'a> {
    budget: &'a Cell<usize>,
    /// Keys set twice in a map, when asked for.
    dups: Option<&'a std::cell::RefCell<Vec<String>>>,
}

impl Bounded<'_> {
    fn spend<E: serde::de::Error>(&self) -> Result<(), E> {
        match self.budget.get() {
            0 => Err(E::custom(EXCESSIVE_ALIASING)),
            n => {
                self.budget.set(n - 1);
                Ok(())
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.spend()?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::String(v))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Null)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.spend()?;
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.spend()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.spend()?;
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            self.spend()?;
            let v = map.next_value_seed(self)?;
            if let Some(d) = self.dups.filter(|_| out.contains_key(&k)) {
                d.borrow_mut().push(k.clone());
            }
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

/// How many values `v` holds, itself included: what a body's bound counts (a CEL rule's
/// cost is estimated from it too).
pub fn value_count(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(value_count).sum::<usize>(),
        Value::Object(m) => 1 + m.values().map(value_count).sum::<usize>(),
        _ => 1,
    }
}

/// How deeply `v` nests objects and arrays (a scalar is 0), without recursing: what a patch
/// made of a stored object is held to the same bound as a body.
pub fn value_depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, d + 1))),
            Value::Object(m) => stack.extend(m.values().map(|c| (c, d + 1))),
            _ => continue,
        }
        max = max.max(d + 1);
    }
    max
}

/// Where kube's create and update handlers name the body they could not decode
/// (transformDecodeError): the kind expected, the error, and the body's first 30 bytes.
pub fn unrecognized(kind: &str, err: &str, body: &[u8]) -> String {
    const MAX: usize = 30;
    let head = &body[..body.len().min(MAX)];
    let more = if body.len() > MAX { " ..." } else { "" };
    let summary = match body.first() {
        None => "<empty>".to_string(),
        Some(b'{') => format!("{}{more}", String::from_utf8_lossy(head)),
        Some(_) => format!("{}{more}", head.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    };
    format!("the object provided is unrecognized (must be of type {kind}): {err} ({summary})")
}

#[cfg(test)]
mod tests;

/// A body decoded with the duplicate fields kube's strict decoder reports: for JSON,
/// `duplicate field "<path>"`; for YAML, go-yaml's `line N: key "k" already set in map`.
/// The later value wins, as in kube's non-strict decoding.
pub struct Strict {
    pub value: Value,
    pub duplicates: Vec<String>,
}

/// Decodes a JSON body as `json` does, reporting duplicate fields.
pub fn json_strict(b: &[u8]) -> Result<Strict, String> {
    let shape = scan_json(b)?;
    let dup = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(b);
    let value = Dups { found: &dup, paths: None, shape: &shape, nth: &Cell::new(0) }
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    let mut duplicates = Vec::new();
    if dup.get() {
        // rare: a second pass names where they are
        let paths = std::cell::RefCell::new((String::new(), Vec::new()));
        let mut de = serde_json::Deserializer::from_slice(b);
        let _ = Dups { found: &dup, paths: Some(&paths), shape: &shape, nth: &Cell::new(0) }.deserialize(&mut de);
        duplicates = paths.into_inner().1.into_iter().map(|p| format!("duplicate field \"{p}\"")).collect();
    }
    Ok(Strict { value, duplicates })
}

/// A map's pairs, ready for the map's own sort. That sort is stable and merges the runs it
/// finds: cheap for keys that come sorted (as Go writes them) or in a few runs, but a large map
/// whose keys come in no order (265k of them cost ~48 ms) is sorted here first: by the keys'
/// first 8 bytes in a radix sort, then each run of keys alike in those by the whole key. Both
/// sorts are stable, so of keys set twice the last still wins.
fn in_key_order(mut pairs: Vec<(String, Value)>) -> Vec<(String, Value)> {
    const FEW_RUNS: usize = 64; // runs per key: more and the merges cost more than this sort
    let n = pairs.len();
    let runs = n / FEW_RUNS; // stops counting descents at enough of them
    if n < 2 * FEW_RUNS || pairs.windows(2).filter(|w| w[0].0 > w[1].0).take(runs).count() < runs {
        return pairs;
    }
    let head = |k: &str| {
        let mut h = [0u8; 8];
        let b = &k.as_bytes()[..k.len().min(8)];
        h[..b.len()].copy_from_slice(b);
        u64::from_be_bytes(h) // zero-padded: orders as the keys do, or ties
    };
    let mut order: Vec<(u64, u32)> = pairs.iter().enumerate().map(|(i, (k, _))| (head(k), i as u32)).collect();
    radsort::sort_by_key(&mut order, |e| e.0);
    for alike in order.chunk_by_mut(|a, b| a.0 == b.0).filter(|c| c.len() > 1) {
        alike.sort_by(|a, b| pairs[a.1 as usize].0.cmp(&pairs[b.1 as usize].0));
    }
    // the gather reads the pairs in no order, a cache miss each: each is asked for a few pairs
    // ahead (265k pairs: 17-28 ms without, 9 ms with)
    const AHEAD: usize = 16;
    let mut sorted = Vec::with_capacity(n);
    for (j, (_, i)) in order.iter().enumerate() {
        if let Some((_, next)) = order.get(j + AHEAD) {
            prefetch(&pairs[*next as usize]);
        }
        sorted.push(std::mem::take(&mut pairs[*i as usize]));
    }
    sorted
}

/// Asks the CPU to bring `t` into its cache ahead of its use (a hint: no effect on meaning).
#[inline(always)]
fn prefetch<T>(t: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing into the program; `t` is a valid reference anyway
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((t as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = t;
}

/// Decodes a YAML (or JSON) body as `yaml` does, reporting duplicate keys.
pub fn yaml_strict(b: &[u8]) -> Result<Strict, String> {
    if looks_like_json(b) {
        if let Ok(v) = json_strict(b) {
            return Ok(v);
        }
    }
    let dups = std::cell::RefCell::new(Vec::new());
    let value = yaml_value(b, Some(&dups))?;
    let duplicates = dups.into_inner().iter().map(|k| yaml_duplicate(b, k)).collect();
    Ok(Strict { value, duplicates })
}

/// go-yaml's text for a key set twice in a map, with the line of its second setting (found
/// from the text: serde_yaml does not tell a visitor where it is).
fn yaml_duplicate(b: &[u8], key: &str) -> String {
    let text = String::from_utf8_lossy(b);
    let lines = text.lines().enumerate().filter(|(_, l)| {
        let l = l.trim_start().trim_start_matches("- ").trim_start();
        let k = l
            .strip_prefix(key)
            .or_else(|| l.strip_prefix(&format!("\"{key}\"")))
            .or_else(|| l.strip_prefix(&format!("'{key}'")));
        k.is_some_and(|rest| rest.trim_start().starts_with(':'))
    });
    let line = lines.map(|(n, _)| n + 1).nth(1).unwrap_or(0);
    format!("line {line}: key \"{key}\" already set in map")
}

/// A JSON value built with a flag for keys set twice in an object; with `paths`, the path of
/// each such key is collected too (kube's `spec.rules[0].verbs` form).
#[derive(Clone, Copy)]
struct Dups<'a> {
    found: &'a Cell<bool>,
    paths: Option<&'a std::cell::RefCell<(String, Vec<String>)>>,
    /// the scan's sizes of the large containers, and how many containers were begun so far
    shape: &'a Shape,
    nth: &'a Cell<u32>,
}

impl Dups<'_> {
    /// Room for the next container's values, as the scan counted them.
    fn room<T>(&self) -> Vec<T> {
        let nth = self.nth.get();
        self.nth.set(nth.wrapping_add(1));
        Vec::with_capacity(self.shape.size_of(nth))
    }
}

impl<'de> DeserializeSeed<'de> for Dups<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Dups<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = self.room();
        loop {
            let len = self.paths.map(|p| {
                let mut p = p.borrow_mut();
                let l = p.0.len();
                let i = out.len();
                p.0.push_str(&format!("[{i}]"));
                l
            });
            let next = seq.next_element_seed(self)?;
            if let (Some(p), Some(l)) = (self.paths, len) {
                p.borrow_mut().0.truncate(l);
            }
            match next {
                Some(v) => out.push(v),
                None => return Ok(Value::Array(out)),
            }
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut pairs = self.room(); // taken on both ways: it counts the containers begun
        if self.paths.is_none() {
            // collected, then built in one pass from the sorted pairs: half the cost of
            // inserting a large map's keys one by one; a duplicate (the last one wins, as with
            // inserts) shows as a shorter map
            while let Some(k) = map.next_key::<String>()? {
                pairs.push((k, map.next_value_seed(self)?));
            }
            let n = pairs.len();
            let out: Map<String, Value> = in_key_order(pairs).into_iter().collect();
            if out.len() < n {
                self.found.set(true);
            }
            return Ok(Value::Object(out));
        }
        drop(pairs);
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let len = self.paths.map(|p| {
                let mut p = p.borrow_mut();
                let l = p.0.len();
                if l > 0 {
                    p.0.push('.');
                }
                p.0.push_str(&k);
                l
            });
            let v = map.next_value_seed(self)?;
            if out.insert(k, v).is_some() {
                self.found.set(true);
                if let Some(p) = self.paths {
                    let mut p = p.borrow_mut();
                    let path = p.0.clone();
                    p.1.push(path);
                }
            }
            if let (Some(p), Some(l)) = (self.paths, len) {
                p.borrow_mut().0.truncate(l);
            }
        }
        Ok(Value::Object(out))
    }
}
