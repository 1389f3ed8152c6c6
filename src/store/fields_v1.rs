//! managedFields' `fieldsV1` held as its JSON text, as kube's `metav1.FieldsV1{Raw}` holds it.
//! A field set is written on every write and read back only when ownership changes; as a tree
//! of its own it doubled what a large object cost to build and to keep (a 265k-key ConfigMap:
//! ~20 ms and ~20 MB more than its text).
//!
//! In an object the text sits in a one-key map whose key carries a token drawn at start-up, so
//! no body a client sends can hold one. Whatever writes an object's JSON writes the text in its
//! place (`write_json`); whatever else serializes an object wraps it in `Wire`, which writes the
//! set as a tree; whatever reads a set takes it as a tree (`tree`, `expand`).

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::LazyLock;

/// The key of the one-key map that holds a set's text: unguessable, and with a NUL no label,
/// annotation or field name kube accepts.
static KEY: LazyLock<String> = LazyLock::new(|| format!("\u{0}fieldsV1:{}", uuid::Uuid::new_v4().simple()));

/// A field set given as its JSON text (`text` must be a JSON object, as written by
/// serde_json or `object::owned_fields_text`: it is written out verbatim).
pub fn from_text(text: String) -> Value {
    let mut m = Map::new();
    m.insert(KEY.clone(), Value::String(text));
    Value::Object(m)
}

/// The set's JSON text, when `set` holds it as text.
pub fn text(set: &Value) -> Option<&str> {
    match set {
        Value::Object(m) if m.len() == 1 => m.get(KEY.as_str()).and_then(Value::as_str),
        _ => None,
    }
}

/// The set as a tree (parsed when held as text).
pub fn tree(set: &Value) -> Cow<'_, Value> {
    match text(set) {
        // the text is ours and valid JSON; were it not, the set reads as empty
        Some(t) => Cow::Owned(serde_json::from_str(t).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "a managedFields set held as text does not parse; read as empty");
            Value::Object(Map::new())
        })),
        None => Cow::Borrowed(set),
    }
}

/// Whether the set names no field.
pub fn is_empty(set: &Value) -> bool {
    match text(set) {
        Some(t) => t == "{}",
        None => set.as_object().is_none_or(Map::is_empty),
    }
}

/// Whether two sets name the same fields, whichever form each is in.
pub fn same(a: &Value, b: &Value) -> bool {
    match (text(a), text(b)) {
        (Some(x), Some(y)) => x == y,
        (None, None) => a == b,
        _ => *tree(a) == *tree(b),
    }
}

/// The set held as text, whichever form it is given in (what is not a map names no field).
pub fn as_text(set: Value) -> Value {
    match (text(&set), &set) {
        (Some(_), _) => set,
        (None, Value::Object(_)) => from_text(serde_json::to_string(&set).expect("a JSON tree serializes")),
        (None, _) => from_text("{}".into()),
    }
}

/// Whether `text` is a set as a set's writer writes it: maps of maps, compact, well-formed
/// JSON. Checked before a text is written out verbatim, so that a text the server did not
/// write (were the key ever learnt) can never change the JSON around it.
pub fn well_formed(text: &str) -> bool {
    let mut r = Reader { b: text.as_bytes(), i: 0 };
    r.skip_map().is_some() && r.i == r.b.len()
}

/// Whether a set a client sent decodes as structured-merge-diff's `SetFromJSON` reads one:
/// maps of maps keyed by path elements, `f:` a field, `k:` a JSON object, `v:` a JSON value,
/// `i:` an index, `.` the path itself; a key of another kind is skipped, as a later version's.
pub fn decodes(set: &Value) -> bool {
    if text(set).is_some() {
        return true; // the server's own
    }
    let Value::Object(m) = set else { return false };
    m.iter().all(|(k, v)| {
        let element = match k.split_at_checked(2) {
            _ if k == "." => true,
            Some(("k:", key)) => serde_json::from_str::<Value>(key).is_ok_and(|k| k.is_object()),
            Some(("v:", value)) => serde_json::from_str::<Value>(value).is_ok(),
            Some(("i:", index)) => index.parse::<i64>().is_ok(),
            _ => true,
        };
        element && decodes(v)
    })
}

/// Whether `v`, or anything in it, is a set held as text.
fn holds_text(v: &Value) -> bool {
    match v {
        Value::Object(m) => text(v).is_some() || m.values().any(holds_text),
        Value::Array(a) => a.iter().any(holds_text),
        _ => false,
    }
}

/// Every set held as text anywhere in `v` made a tree.
fn expand_all(v: &mut Value) {
    if let Cow::Owned(t) = tree(v) {
        *v = t;
        return;
    }
    match v {
        Value::Object(m) => m.values_mut().for_each(expand_all),
        Value::Array(a) => a.iter_mut().for_each(expand_all),
        _ => {}
    }
}

/// `v` (a part of an object: a column's value, a CEL operand) with every set in it a tree,
/// copied only when it holds one.
pub fn with_trees(v: Cow<'_, Value>) -> Cow<'_, Value> {
    if !holds_text(&v) {
        return v;
    }
    let mut v = v.into_owned();
    expand_all(&mut v);
    Cow::Owned(v)
}

/// The bytes a set is written as (its JSON, as in protobuf's FieldsV1.Raw): its text verbatim
/// when well formed, else its tree.
pub fn write_set(out: &mut Vec<u8>, set: &Value) {
    match text(set) {
        Some(t) if well_formed(t) => out.extend_from_slice(t.as_bytes()),
        _ => plain(out, &*tree(set)),
    }
}

/// `set` with the fields of `add` added (a merge patch of sets, which hold no nulls), held as
/// text: merged in the text without building the set's tree when `set` is text.
pub fn union(set: Value, add: &Value) -> Value {
    if is_empty(add) {
        return as_text(set);
    }
    if is_empty(&set) {
        return as_text(add.clone());
    }
    let add = tree(add);
    if let (Some(t), Some(add)) = (text(&set), add.as_object()) {
        if let Some(merged) = merge_text(t, add) {
            return from_text(merged);
        }
    }
    let mut merged = tree(&set).into_owned();
    crate::store::patch::merge_patch(&mut merged, &add);
    as_text(merged)
}

/// `text` with `add`'s fields merged in, read and written in one pass; None when `text` is not
/// as a set's writer writes it (compact, every value a map), or `add` holds other than maps.
fn merge_text(text: &str, add: &Map<String, Value>) -> Option<String> {
    let mut r = Reader { b: text.as_bytes(), i: 0 };
    let mut out = Vec::with_capacity(text.len() + 64);
    merge_map(&mut r, add, &mut out)?;
    if r.i != r.b.len() {
        return None;
    }
    String::from_utf8(out).ok()
}

fn merge_map(r: &mut Reader, add: &Map<String, Value>, out: &mut Vec<u8>) -> Option<()> {
    r.expect(b'{')?;
    out.push(b'{');
    let mut adds = add.iter().peekable();
    let mut first = true;
    if !r.eat(b'}') {
        loop {
            let (raw, name) = r.string()?;
            r.expect(b':')?;
            while let Some((k, v)) = adds.next_if(|(k, _)| k.as_str() < &*name) {
                added(out, k, v, &mut first)?;
            }
            match adds.next_if(|(k, _)| k.as_str() == &*name) {
                Some((k, v)) => {
                    key(out, k, &mut first);
                    merge_map(r, v.as_object()?, out)?;
                }
                None => {
                    if !std::mem::take(&mut first) {
                        out.push(b',');
                    }
                    out.extend_from_slice(raw);
                    out.push(b':');
                    let start = r.i;
                    r.skip_map()?;
                    out.extend_from_slice(&r.b[start..r.i]);
                }
            }
            if r.eat(b',') {
                continue;
            }
            r.expect(b'}')?;
            break;
        }
    }
    for (k, v) in adds {
        added(out, k, v, &mut first)?;
    }
    out.push(b'}');
    Some(())
}

/// An added field (and what it holds) written whole.
fn added(out: &mut Vec<u8>, k: &str, v: &Value, first: &mut bool) -> Option<()> {
    v.as_object()?;
    key(out, k, first);
    plain(out, v);
    Some(())
}

/// A set is at most one deeper than the object it describes (`api::decode`'s bound), and
/// well within serde_json's own recursion bound wherever the set sits in a document.
const MAX_SET_DEPTH: usize = crate::api::decode::MAX_DEPTH + 2;

/// A cursor over a set's text.
struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.b.get(self.i) == Some(&c);
        self.i += usize::from(hit);
        hit
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        self.eat(c).then_some(())
    }

    /// A string: its bytes as written (quotes included) and its value.
    fn string(&mut self) -> Option<(&'a [u8], Cow<'a, str>)> {
        let start = self.i;
        let escaped = self.skip_string()?;
        let raw = &self.b[start..self.i];
        let value = match escaped {
            false => Cow::Borrowed(std::str::from_utf8(&raw[1..raw.len() - 1]).ok()?),
            true => Cow::Owned(serde_json::from_slice(raw).ok()?),
        };
        Some((raw, value))
    }

    /// Past one string, well formed as JSON writes it; whether it holds an escape.
    fn skip_string(&mut self) -> Option<bool> {
        self.expect(b'"')?;
        let mut escaped = false;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    // only the escapes serde_json writes (no `\/`, no other `\u`: a lone
                    // surrogate is JSON no serde_json reader takes)
                    let n = match *self.b.get(self.i + 1)? {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                        b'u' if matches!(self.b.get(self.i + 2..self.i + 6)?, [b'0', b'0', b'0' | b'1', h] if h.is_ascii_hexdigit()) => {
                            6
                        }
                        _ => return None,
                    };
                    self.i += n;
                }
                0..0x20 => return None,
                _ => self.i += 1,
            }
        }
        self.i += 1;
        Some(escaped)
    }

    /// Past one set: maps of maps by string keys, compact, nothing else (no recursion: a
    /// text nested a million deep is walked, not stacked).
    fn skip_map(&mut self) -> Option<()> {
        self.expect(b'{')?;
        let mut depth = 1usize;
        let mut may_close = true;
        loop {
            if may_close && self.eat(b'}') {
                depth -= 1;
                // past a map's end: the end of the map holding it, or that map's next entry
                loop {
                    if depth == 0 {
                        return Some(());
                    }
                    if self.eat(b',') {
                        break;
                    }
                    self.expect(b'}')?;
                    depth -= 1;
                }
                may_close = false;
                continue;
            }
            self.skip_string()?;
            self.expect(b':')?;
            self.expect(b'{')?;
            depth += 1;
            if depth > MAX_SET_DEPTH {
                return None;
            }
            may_close = true;
        }
    }
}

/// The object's managedFields entries, when it has any.
fn entries(obj: &Value) -> Option<&Vec<Value>> {
    obj.get("metadata")?.get("managedFields")?.as_array()
}

/// Whether any of `obj`'s sets is held as text.
pub fn has_text(obj: &Value) -> bool {
    entries(obj).is_some_and(|l| l.iter().any(|e| e.get("fieldsV1").and_then(text).is_some()))
}

/// The sets of managedFields entries `list`, to change in place.
fn sets_mut(list: &mut [Value]) -> impl Iterator<Item = &mut Value> {
    list.iter_mut().filter_map(|e| e.get_mut("fieldsV1"))
}

/// `obj`'s managedFields entries, to change in place.
fn entries_mut(obj: &mut Value) -> &mut [Value] {
    match obj.get_mut("metadata").and_then(|m| m.get_mut("managedFields")) {
        Some(Value::Array(list)) => list,
        _ => &mut [],
    }
}

/// Every set of `obj`'s managedFields as a tree: for what edits or compares them in place.
pub fn expand(obj: &mut Value) {
    for set in sets_mut(entries_mut(obj)) {
        if let Cow::Owned(t) = tree(set) {
            *set = t;
        }
    }
}

/// Every set of `obj`'s managedFields held as text: for an object read from storage, so that
/// it holds what the write that stored it held.
pub fn hold_as_text(obj: &mut Value) {
    hold_entries_as_text(entries_mut(obj));
}

/// Every set of managedFields entries `list` held as text (a set that is no map is left as it is).
pub fn hold_entries_as_text(list: &mut [Value]) {
    for set in sets_mut(list).filter(|s| s.is_object()) {
        *set = as_text(set.take());
    }
}

/// `obj` as serde_json writes it (compact, keys in order), its sets' texts written verbatim.
pub fn write_json(out: &mut Vec<u8>, obj: &Value) {
    write_json_without(out, obj, None);
}

/// `write_json`, leaving out the metadata field named `skip` (etcd keeps objects without their
/// resourceVersion).
pub fn write_json_without(out: &mut Vec<u8>, obj: &Value, skip: Option<&str>) {
    let Some(m) = obj.as_object().filter(|_| skip.is_some() || has_text(obj)) else {
        serde_json::to_writer(&mut *out, obj).expect("a JSON tree serializes");
        return;
    };
    write_map(out, m, |out, k, v| match k {
        "metadata" => match v {
            Value::Object(meta) => write_meta(out, meta, skip),
            _ => plain(out, v),
        },
        _ => plain(out, v),
    });
}

/// An object's metadata as `write_json` writes it.
pub fn write_metadata_json(out: &mut Vec<u8>, meta: &Value) {
    match meta {
        Value::Object(m) => write_meta(out, m, None),
        _ => plain(out, meta),
    }
}

fn write_meta(out: &mut Vec<u8>, meta: &Map<String, Value>, skip: Option<&str>) {
    let kept = meta.iter().filter(|(k, _)| Some(k.as_str()) != skip);
    write_map(out, kept, |out, k, v| match v {
        Value::Array(list) if k == "managedFields" => {
            out.push(b'[');
            for (i, e) in list.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match e {
                    Value::Object(e) => write_map(out, e, |out, k, v| match k {
                        "fieldsV1" => write_set(out, v),
                        _ => plain(out, v),
                    }),
                    _ => plain(out, e),
                }
            }
            out.push(b']');
        }
        _ => plain(out, v),
    });
}

fn write_map<'a>(
    out: &mut Vec<u8>,
    entries: impl IntoIterator<Item = (&'a String, &'a Value)>,
    mut value: impl FnMut(&mut Vec<u8>, &str, &Value),
) {
    out.push(b'{');
    let mut first = true;
    for (k, v) in entries {
        key(out, k, &mut first);
        value(out, k, v);
    }
    out.push(b'}');
}

fn key(out: &mut Vec<u8>, k: &str, first: &mut bool) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    plain(out, k);
    out.push(b':');
}

fn plain(out: &mut Vec<u8>, v: &(impl Serialize + ?Sized)) {
    serde_json::to_writer(&mut *out, v).expect("a JSON tree serializes");
}

/// `obj` for any serializer (YAML, a reply's JSON, an audit event): its sets written as trees.
pub struct Wire<'a>(pub &'a Value);

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_object().filter(|_| has_text(self.0)) {
            Some(m) => Spine(m, Level::Object).serialize(s),
            None => self.0.serialize(s),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Object,
    Metadata,
    Entry,
}

/// A map on the way from the object down to its sets.
struct Spine<'a>(&'a Map<String, Value>, Level);

/// managedFields' list.
struct Entries<'a>(&'a [Value]);

impl Serialize for Spine<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            match (self.1, k.as_str(), v) {
                (Level::Object, "metadata", Value::Object(m)) => map.serialize_entry(k, &Spine(m, Level::Metadata))?,
                (Level::Metadata, "managedFields", Value::Array(l)) => map.serialize_entry(k, &Entries(l))?,
                (Level::Entry, "fieldsV1", _) => map.serialize_entry(k, &*tree(v))?,
                _ => map.serialize_entry(k, v)?,
            }
        }
        map.end()
    }
}

impl Serialize for Entries<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for e in self.0 {
            match e {
                Value::Object(m) => seq.serialize_element(&Spine(m, Level::Entry))?,
                _ => seq.serialize_element(e)?,
            }
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn with_text(set: &Value) -> Value {
        let mut o = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v\"\u{e9}"},
            "metadata": {"name": "a", "resourceVersion": "4", "labels": {"x": "y"}, "managedFields": [
                {"manager": "m", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {}},
                {"manager": "n", "operation": "Apply", "fieldsV1": {"f:data": {}}, "time": "t"},
                "odd"]}});
        o["metadata"]["managedFields"][0]["fieldsV1"] = from_text(serde_json::to_string(set).unwrap());
        o
    }

    #[test]
    fn a_set_held_as_text_is_written_as_its_tree_would_be() {
        let set = json!({"f:data": {"f:k": {}, "f:\u{0}\"q": {}}, "f:metadata": {"f:labels": {".": {}, "f:x": {}}}});
        let o = with_text(&set);
        let mut tree_form = o.clone();
        expand(&mut tree_form);
        assert_eq!(tree_form["metadata"]["managedFields"][0]["fieldsV1"], set);
        assert!(!has_text(&tree_form) && has_text(&o));
        let want = serde_json::to_vec(&tree_form).unwrap();
        let mut got = Vec::new();
        write_json(&mut got, &o);
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
        assert_eq!(serde_json::to_vec(&Wire(&o)).unwrap(), want);
        assert_eq!(serde_yaml::to_string(&Wire(&o)).unwrap(), serde_yaml::to_string(&tree_form).unwrap());
        // the marker's key is never written
        assert!(!String::from_utf8_lossy(&got).contains("fieldsV1:"));
        let mut meta = Vec::new();
        write_metadata_json(&mut meta, &o["metadata"]);
        assert_eq!(meta, serde_json::to_vec(&tree_form["metadata"]).unwrap());
    }

    #[test]
    fn etcd_form_leaves_out_the_named_field_only() {
        let o = with_text(&json!({"f:data": {}}));
        let mut got = Vec::new();
        write_json_without(&mut got, &o, Some("resourceVersion"));
        let mut want = o.clone();
        expand(&mut want);
        want["metadata"].as_object_mut().unwrap().remove("resourceVersion");
        assert_eq!(got, serde_json::to_vec(&want).unwrap());
        let plain = json!({"metadata": {"resourceVersion": "1", "name": "x"}, "a": 1});
        got.clear();
        write_json_without(&mut got, &plain, Some("resourceVersion"));
        assert_eq!(got, br#"{"a":1,"metadata":{"name":"x"}}"#);
    }

    #[test]
    fn a_client_cannot_send_a_set_as_text() {
        // a body holding a one-key map that looks like ours is a tree like any other
        let forged = json!({"\u{0}fieldsV1:": "}],\"evil\":{"});
        assert_eq!(text(&forged), None);
        let o = json!({"metadata": {"managedFields": [{"fieldsV1": forged}]}});
        let mut got = Vec::new();
        write_json(&mut got, &o);
        assert_eq!(got, serde_json::to_vec(&o).unwrap());
    }

    #[test]
    fn a_union_in_the_text_is_the_merge_of_the_trees() {
        let sets = [
            json!({}),
            json!({"f:a": {}}),
            json!({"f:data": {"f:k": {}, "f:\u{0}\"q\\": {}, "f:z": {}}, "f:metadata": {"f:labels": {".": {}, "f:x": {}}}}),
            json!({"f:data": {"f:a": {}, "f:k": {"f:deep": {}}, "f:\u{0}\"q\\": {"f:in": {}}}, "f:spec": {}}),
            json!({"f:metadata": {"f:annotations": {"f:n": {}}, "f:labels": {"f:y": {}}}, "k:{\"name\":\"c\"}": {}}),
        ];
        for set in &sets {
            for add in &sets {
                let mut want = set.clone();
                crate::store::patch::merge_patch(&mut want, add);
                let got = union(from_text(serde_json::to_string(set).unwrap()), add);
                assert_eq!(text(&got), Some(serde_json::to_string(&want).unwrap().as_str()), "{set} + {add}");
                let from_trees = union(set.clone(), add);
                assert_eq!(*tree(&from_trees), want);
                // read in the text, not by the trees' fallback
                if !is_empty(set) && !is_empty(add) {
                    assert!(merge_text(&serde_json::to_string(set).unwrap(), add.as_object().unwrap()).is_some());
                }
            }
        }
        // what a set's writer would not write falls back to the trees
        assert_eq!(merge_text("{\"f:a\": {}}", &Map::new()), None);
        assert_eq!(merge_text("{\"f:a\":1}", &Map::new()), None);
        assert_eq!(merge_text("{\"f:a\":{}}x", &Map::new()), None);
        assert_eq!(*tree(&union(from_text("{\"f:a\":1}".into()), &json!({"f:b": {}}))), json!({"f:a": 1, "f:b": {}}));
    }

    #[test]
    fn only_a_well_formed_set_is_written_verbatim() {
        for ok in [r#"{}"#, r#"{"f:a":{}}"#, r#"{"f:a":{"f:b":{},"k:{\"n\":\"x\"}":{}},"v:\u001f\n\t":{}}"#] {
            assert!(well_formed(ok), "{ok}");
        }
        let bad = [
            r#"{}],"evil":{"#,
            r#"{"a""b"}"#,
            r#"{"a":{},}"#,
            r#"{"a":"b"}"#,
            r#"{"a":{}}}"#,
            r#"{"a":{}"#,
            r#"{"a" :{}}"#,
            r#"{"\x":{}}"#,
            r#"{"\u12":{}}"#,
            r#"{"\ud800":{}}"#,
            r#"{"\udc00":{}}"#,
            r#"{"\ud800\u0041":{}}"#,
            r#"{"\u0041":{}}"#,
            r#"{"\/":{}}"#,
            "{\"\n\":{}}",
            r#"{"a":{}} "#,
            "",
            "{",
        ];
        for text in bad {
            assert!(!well_formed(text), "{text}");
            // written as its tree (or as no fields): the JSON around it is whole either way
            let o = json!({"metadata": {"managedFields": [{"fieldsV1": from_text(text.into())}], "name": "n"}});
            let mut out = Vec::new();
            write_json(&mut out, &o);
            let back: Value = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(back["metadata"]["name"], "n");
            assert_eq!(back["metadata"]["managedFields"][0]["fieldsV1"], *tree(&from_text(text.into())));
        }
        // walked without recursion, and no deeper than an object may be
        let nested = |n: usize| "{\"a\":".repeat(n) + "{}" + &"}".repeat(n);
        assert!(well_formed(&nested(100)));
        assert!(!well_formed(&nested(100_000)));
        assert_eq!(*tree(&from_text(nested(100_000))), json!({}));
    }

    #[test]
    fn parts_of_an_object_read_with_their_sets_as_trees() {
        let o = with_text(&json!({"f:data": {}}));
        let meta = with_trees(Cow::Borrowed(&o["metadata"]));
        assert!(matches!(meta, Cow::Owned(_)));
        assert_eq!(meta["managedFields"][0]["fieldsV1"], json!({"f:data": {}}));
        assert!(matches!(with_trees(Cow::Borrowed(&o["data"])), Cow::Borrowed(_)));
        assert_eq!(*tree(&as_text(json!(null))), json!({}));
        // as read from storage: every map set held as text, anything else left alone
        let mut stored = json!({"metadata": {"managedFields": [{"fieldsV1": {"f:a": {}}}, {"fieldsV1": 1}, "x", {}]}});
        let want = stored.clone();
        hold_as_text(&mut stored);
        assert_eq!(text(&stored["metadata"]["managedFields"][0]["fieldsV1"]), Some(r#"{"f:a":{}}"#));
        assert_eq!(
            stored["metadata"]["managedFields"].as_array().unwrap()[1..],
            want["metadata"]["managedFields"].as_array().unwrap()[1..]
        );
        let mut out = Vec::new();
        write_json(&mut out, &stored);
        assert_eq!(out, serde_json::to_vec(&want).unwrap());
        assert!(is_empty(&as_text(json!([1]))));
    }

    #[test]
    fn sets_compare_and_empty_in_either_form() {
        let t = json!({"f:a": {}});
        let x = from_text(serde_json::to_string(&t).unwrap());
        assert!(same(&x, &t) && same(&t, &x) && same(&x, &x.clone()));
        assert!(!same(&x, &json!({"f:b": {}})));
        assert!(is_empty(&from_text("{}".into())) && is_empty(&json!({})) && !is_empty(&x));
        assert_eq!(*tree(&x), t);
    }
}
