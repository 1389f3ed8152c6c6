//! List replies: a `<Kind>List`, a Table or a PartialObjectMetadataList written item by
//! item from each object's stored JSON where it is served as stored, in chunks of about
//! `CHUNK` bytes made as they are sent (a large list is never held twice, and its first byte
//! leaves before its last item is written). Protobuf and YAML lists are written whole.

use super::negotiate::Output;
use super::object::{encoded, present, served_kind};
use super::Target;
use crate::filters::Reply;
use crate::store::backend::Stored;
use crate::store::fields_v1::Wire;
use crate::store::table::{self, IncludeObject, Printer};
use crate::store::Store;
use bytes::Bytes;
use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;

/// The size a list body is written in: a list under it goes whole, with a Content-Length.
pub const CHUNK: usize = 64 * 1024;

/// An object of a list: its tree and, when it is served as stored, its stored JSON.
#[derive(Debug, Clone)]
pub struct Item {
    pub value: Arc<Value>,
    pub raw: Option<Bytes>,
}

impl From<Stored> for Item {
    fn from(s: Stored) -> Self {
        Item { value: s.value, raw: s.raw }
    }
}

impl From<Value> for Item {
    fn from(v: Value) -> Self {
        Item { value: Arc::new(v), raw: None }
    }
}

/// A `<Kind>List` (or a Table, or metadata only, as `t` asks) of `items` as stored.
pub fn reply_list(store: &Store, t: &Target, items: Vec<Item>, list_meta: Value) -> Reply {
    // as served: the same tree and bytes when served as stored, else the served tree alone
    // (whether reading may change an object is asked once, not per object)
    let as_stored = store.reads_as_stored(t.def);
    fn served<'a>(store: &Store, t: &Target, as_stored: bool, v: &'a Value) -> Cow<'a, Value> {
        match as_stored {
            true => served_kind(t.def, Cow::Borrowed(v)),
            false => present(store, t, v),
        }
    }
    let items: Vec<Item> = items
        .into_iter()
        .map(|i| match served(store, t, as_stored, &i.value) {
            Cow::Borrowed(_) => i,
            Cow::Owned(v) => Item::from(v),
        })
        .collect();
    let (kind, api_version) = (format!("{}List", t.def.kind), t.def.api_version());
    let (envelope, write) = if t.partial {
        let list =
            List { kind: "PartialObjectMetadataList", api_version: "meta.k8s.io/v1", metadata: &list_meta, items: [] };
        (serde_json::to_vec(&list), Write::Partial)
    } else if t.table {
        let printer = Printer::of(t.def);
        let include = IncludeObject::parse(t.query.include_object.as_deref());
        (serde_json::to_vec(&table::envelope(&printer, list_meta, Vec::new())), Write::Row(printer, include))
    } else if t.output == Output::Json {
        (
            serde_json::to_vec(&List { kind: &kind, api_version: &api_version, metadata: &list_meta, items: [] }),
            Write::Object,
        )
    } else {
        let items: Vec<&Value> = items.iter().map(|i| &*i.value).collect();
        let wire: Vec<Wire> = items.iter().map(|i| Wire(i)).collect();
        let list = TreeList { kind: &kind, api_version: &api_version, metadata: &list_meta, items: &wire };
        return encoded(t.output, 200, &list, || {
            crate::store::protobuf::encode_list(&api_version, &t.def.kind, &list_meta, &items)
        });
    };
    let envelope = envelope.expect("a list envelope serializes");
    Reply::chunked(200, "application/json", ListBody::new(envelope, items, write))
}

/// A list as kube writes it (kind, apiVersion, metadata, items, in that order), with no
/// items: its JSON ends in `"items":[]}`, and the items go between the brackets.
#[derive(serde::Serialize)]
struct List<'a> {
    kind: &'a str,
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    metadata: &'a Value,
    items: [(); 0],
}

/// A whole list of trees, for the YAML and protobuf forms.
#[derive(serde::Serialize)]
struct TreeList<'a> {
    kind: &'a str,
    #[serde(rename = "apiVersion")]
    api_version: &'a str,
    metadata: &'a Value,
    items: &'a [Wire<'a>],
}

/// How an item is written into a list's body.
enum Write {
    /// The object itself.
    Object,
    /// Its PartialObjectMetadata.
    Partial,
    /// Its Table row.
    Row(Printer, IncludeObject),
}

/// A JSON list body, made chunk by chunk: the envelope up to its items' `[`, the items, `]}`.
struct ListBody {
    head: Option<Vec<u8>>,
    items: std::vec::IntoIter<Item>,
    first: bool,
    done: bool,
    write: Write,
}

impl ListBody {
    fn new(mut envelope: Vec<u8>, items: Vec<Item>, write: Write) -> Self {
        debug_assert!(envelope.ends_with(b"[]}"));
        envelope.truncate(envelope.len() - 2);
        ListBody { head: Some(envelope), items: items.into_iter(), first: true, done: false, write }
    }

    /// About the size of the next chunk: its items' stored sizes, up to a chunk (a small
    /// list's body is allocated at its size, not a chunk's).
    fn estimate(&self) -> usize {
        let mut n = 64;
        for i in self.items.as_slice() {
            if n >= CHUNK {
                break;
            }
            n += i.raw.as_ref().map_or(512, |r| r.len() + 64);
        }
        n
    }
}

impl Iterator for ListBody {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let mut b = self.head.take().unwrap_or_default();
        b.reserve(self.estimate());
        while b.len() < CHUNK {
            let Some(item) = self.items.next() else {
                b.extend_from_slice(b"]}");
                self.done = true;
                break;
            };
            if !std::mem::take(&mut self.first) {
                b.push(b',');
            }
            match &self.write {
                Write::Object => object(&item, &mut b),
                Write::Partial => partial(&item, &mut b),
                Write::Row(printer, include) => row(printer, *include, &item, &mut b),
            }
        }
        Some(b.into())
    }
}

/// The object: its stored bytes, or its tree serialized (the same bytes).
fn object(item: &Item, b: &mut Vec<u8>) {
    match &item.raw {
        Some(raw) => b.extend_from_slice(raw),
        None => crate::store::fields_v1::write_json(b, &item.value),
    }
}

/// `{"apiVersion":"meta.k8s.io/v1","kind":"PartialObjectMetadata","metadata":…}`, the
/// metadata cut out of the stored bytes where known.
fn partial(item: &Item, b: &mut Vec<u8>) {
    b.extend_from_slice(br#"{"apiVersion":"meta.k8s.io/v1","kind":"PartialObjectMetadata","metadata":"#);
    match item.raw.as_deref().and_then(metadata_of) {
        Some(meta) => b.extend_from_slice(meta),
        None => crate::store::fields_v1::write_metadata_json(b, &item.value["metadata"]),
    }
    b.push(b'}');
}

/// A Table row: `{"cells":[…]}`, with `"object":…` as `include` asks (keys in the order a
/// serialized row has them).
fn row(printer: &Printer, include: IncludeObject, item: &Item, b: &mut Vec<u8>) {
    b.extend_from_slice(br#"{"cells":"#);
    serde_json::to_writer(&mut *b, &printer.cells(&item.value)).expect("cells serialize");
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            b.extend_from_slice(br#","object":"#);
            partial(item, b);
        }
        IncludeObject::Object => {
            b.extend_from_slice(br#","object":"#);
            object(item, b);
        }
    }
    b.push(b'}');
}

/// The `metadata` of an object's stored JSON, as the bytes it has there (the serialized
/// form of its metadata tree: the stored bytes are the tree's compact serialization).
fn metadata_of(raw: &[u8]) -> Option<&[u8]> {
    #[derive(serde::Deserialize)]
    struct Meta<'a> {
        #[serde(borrow)]
        metadata: Option<&'a serde_json::value::RawValue>,
    }
    serde_json::from_slice::<Meta>(raw).ok()?.metadata.map(|m| m.get().as_bytes())
}
