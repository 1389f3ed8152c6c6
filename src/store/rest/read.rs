//! get and list: selectors, limit/continue over a consistent snapshot, resourceVersion and
//! resourceVersionMatch as kube defines them.

use super::continue_token;
use super::list::reply_list;
use super::object::{reply_stored, status};
use super::Target;
use crate::api::Status;
use crate::filters::Reply;
use crate::store::backend::{StorageError, Stored};
use crate::store::selectors::{FieldSelector, LabelSelector};
use crate::store::Store;
use serde_json::{json, Value};

pub fn get(store: &Store, t: &Target) -> Result<Reply, Status> {
    // a version asked for is the least the answer is as new as (kube's NotOlderThan)
    if let Some(asked) = t.query.revision()? {
        let current = store.storage.revision();
        if asked > current {
            return Err(status(t, &t.name, StorageError::TooLarge { asked, current }));
        }
    }
    let key = t.def.key(&t.namespace, &t.name);
    let obj = store.storage.get(&key).ok_or_else(|| Status::not_found(&t.def.group, &t.def.resource, &t.name))?;
    Ok(reply_stored(store, t, 200, &obj))
}

/// Extra field-selector fields a resource supports beyond metadata.name/namespace.
pub fn extra_fields(resource: &str) -> &'static [&'static str] {
    match resource {
        "secrets" => &["type"],
        "namespaces" => &["status.phase"],
        // kube's event ToSelectableFields
        "events" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        _ => &[],
    }
}

/// The selectors of a list or watch. A name RequestInfo resolved (a watch's path name, or a
/// list's `metadata.name=` field selector, which authorization checks as resourceNames) is
/// always one more requirement: what is served never goes past the name that was authorized,
/// whatever the selector parsers make of the rest (kube's watch handler adds the same term).
pub fn selectors(t: &Target) -> Result<(LabelSelector, FieldSelector), Status> {
    let labels = LabelSelector::parse(&t.query.label_selector).map_err(Status::bad_request)?;
    let mut fields = if crate::store::events::is_events_v1(t.def) {
        // its labels are mapped to core's, which the stored objects have
        FieldSelector::parse(&t.query.field_selector, &crate::store::events::FIELD_LABELS)
            .map_err(Status::bad_request)?
            .relabel(crate::store::events::core_field_label)
    } else if let Some(c) = &t.def.custom {
        // a custom resource's selectableFields
        let labels: Vec<&str> = c.selectable.iter().map(String::as_str).collect();
        FieldSelector::parse(&t.query.field_selector, &labels).map_err(Status::bad_request)?
    } else {
        FieldSelector::parse(&t.query.field_selector, extra_fields(&t.def.resource)).map_err(Status::bad_request)?
    };
    if !t.name.is_empty() {
        // kube's ListResource: a named watch's field selector may only pin that same name
        if !fields.is_empty() && fields.name() != Some(t.name.as_str()) {
            return Err(Status::bad_request("fieldSelector metadata.name doesn't match requested name"));
        }
        fields.require_name(&t.name);
    }
    Ok((labels, fields))
}

/// One page of a list: the objects, the revision they are as of, the continue token and
/// how many objects remain after this page (when known).
pub struct ListPage {
    /// Shared with the store (a list copies no object).
    pub items: Vec<Stored>,
    pub rev: u64,
    pub next: Option<String>,
    pub remaining: Option<usize>,
}

/// The objects of a list request, in key order, and the revision they are as of.
pub fn list_items(store: &Store, t: &Target) -> Result<ListPage, Status> {
    // kube validates a list's options, and a deletecollection's (its ListOptions) alike
    t.query.validate_list(false)?;
    let (labels, fields) = selectors(t)?;
    let prefix = t.def.list_prefix(&t.namespace);
    let q = &t.query;
    let (at, start) = if !q.continue_.is_empty() {
        // kube's ValidateListOptions: the token first, then the version beside it. The token's
        // start is relative to this list's prefix, whichever list it came from.
        let (rv, start) = continue_token::decode(&q.continue_)
            .map_err(|e| Status::bad_request(format!("invalid continue token: {e}")))?;
        if !q.resource_version.is_empty() && q.resource_version != "0" {
            return Err(Status::bad_request("specifying resource version is not allowed when using continue"));
        }
        (rv, Some(start))
    } else {
        // the options are valid (`validate_list`): an Exact match has a revision
        match (q.resource_version_match.as_str(), q.revision()?) {
            ("Exact", Some(r)) => (Some(r), None),
            // kube's legacy reading of a paged list at a version: exactly that version
            ("", Some(r)) if q.limit.is_some_and(|l| l > 0) => (Some(r), None),
            (_, rv) => {
                if let Some(r) = rv {
                    let cur = store.storage.revision();
                    if r > cur {
                        return Err(status(t, "", StorageError::TooLarge { asked: r, current: cur }));
                    }
                }
                (None, None)
            }
        }
    };
    let (objs, rev) = store.storage.list(&prefix, at).map_err(|e| match (e, &start) {
        // kube's handleCompactedErrorForPaging: a token to go on from the latest revision
        (StorageError::Expired { .. }, Some(start)) => {
            let mut s = Status::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.");
            s.metadata.insert("continue".into(), json!(continue_token::encode_latest(start)));
            s
        }
        (e, _) => status(t, "", e),
    })?;
    // the first key this page may hold (inclusive, as etcd's range from it)
    let from = start.map(|s| format!("{prefix}{s}"));
    let mut items = Vec::new();
    let mut next = None;
    let mut remaining = None;
    let unfiltered = labels.is_empty() && fields.is_empty();
    let mut iter = objs.iter().filter(|o| from.as_ref().is_none_or(|f| o.key.as_str() >= f.as_str()));
    for o in iter.by_ref() {
        if !labels.matches(&o.value) || !fields.matches(&o.value) {
            continue;
        }
        items.push(o.clone());
        if q.limit.is_some_and(|l| items.len() >= l) {
            let rest: Vec<_> = iter.filter(|o| labels.matches(&o.value) && fields.matches(&o.value)).collect();
            if !rest.is_empty() {
                next = Some(continue_token::encode_after(rev, o.key.strip_prefix(&prefix).unwrap_or(&o.key)));
                if unfiltered {
                    remaining = Some(rest.len());
                }
            }
            break;
        }
    }
    Ok(ListPage { items, rev, next, remaining })
}

pub fn list(store: &Store, t: &Target) -> Result<Reply, Status> {
    let page = list_items(store, t)?;
    let meta = list_meta(&page);
    Ok(reply_list(store, t, page.items.into_iter().map(Into::into).collect(), meta))
}

/// The ListMeta of `page`.
pub fn list_meta(page: &ListPage) -> Value {
    let mut meta = json!({"resourceVersion": page.rev.to_string()});
    if let Some(c) = &page.next {
        meta["continue"] = json!(c);
    }
    if let Some(n) = page.remaining {
        meta["remainingItemCount"] = json!(n);
    }
    meta
}
