//! watch: events after a resourceVersion (or the current state as ADDED first), selectors
//! applied to old and new object as kube does, BOOKMARKs, timeoutSeconds, and a 410 Expired
//! ERROR event for a compacted resourceVersion; streamed as JSON lines.

use super::object::present_as;
use super::read::selectors;
use super::Target;
use crate::api::Status;
use crate::context::RequestContext;
use crate::filters::shutdown::Drain;
use crate::request_info::RequestInfo;
use crate::store::backend::{Event, EventType, StorageError, Watch};
use crate::store::resources::ResourceDef;
use crate::store::selectors::{FieldSelector, LabelSelector};
use crate::store::table::{self, IncludeObject};
use crate::store::Store;
use bytes::Bytes;
use pingora::protocols::http::ServerSession;
use pingora::proxy::Session;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);
/// A client that does not take a write within this long is cut off.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// kube's --min-request-timeout: a watch without timeoutSeconds lasts between one and two of these.
const MIN_REQUEST_TIMEOUT: u64 = 1800;

/// The event `ev` is for this watcher after its selectors, as kube's watch cache decides:
/// an object moving into the selection is ADDED, out of it DELETED.
pub fn classify(ev: &Event, matches: &dyn Fn(&Value) -> bool) -> Option<&'static str> {
    let now = matches(&ev.value);
    let before = ev.prev.as_ref().is_some_and(|(p, _)| matches(p));
    match ev.kind {
        EventType::Added => now.then_some("ADDED"),
        EventType::Deleted => (before || now).then_some("DELETED"),
        EventType::Modified => match (before, now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        },
    }
}

pub async fn serve(
    rest: &super::Rest,
    session: &mut Session,
    ctx: &mut RequestContext,
    t: &Target<'_>,
) -> pingora::Result<()> {
    let (labels, fields) = match selectors(t) {
        Ok(s) => s,
        Err(s) => return rest.respond.send(session, ctx, s.into()).await,
    };
    let from = match t.query.revision() {
        Ok(r) => r,
        Err(s) => return rest.respond.send(session, ctx, s.into()).await,
    };
    let watch = rest.store.storage.watch(&t.def.list_prefix(&t.namespace), from);
    rest.respond.start_stream(session, ctx, 200, "application/json").await?;

    let watch = match watch {
        Ok(w) => w,
        Err(StorageError::Expired { asked, oldest }) => {
            let s = Status::gone(format!("too old resource version: {asked} ({oldest})"));
            let line = event_line("ERROR", serde_json::to_value(&s).unwrap_or_default());
            session.write_response_body(Some(line), false).await?;
            return session.write_response_body(None, true).await;
        }
        Err(e) => {
            let line = event_line("ERROR", serde_json::to_value(Status::internal_error(e)).unwrap_or_default());
            session.write_response_body(Some(line), false).await?;
            return session.write_response_body(None, true).await;
        }
    };
    let timeout = t
        .query
        .timeout_seconds
        .unwrap_or_else(|| MIN_REQUEST_TIMEOUT + (uuid::Uuid::new_v4().as_u128() % MIN_REQUEST_TIMEOUT as u128) as u64);
    let stream = WatchStream {
        store: rest.store.clone(),
        drain: rest.drain.clone(),
        info: ctx.request_info.clone(),
        labels,
        fields,
        partial: t.partial,
        table: t.table,
        include: IncludeObject::parse(t.query.include_object.as_deref()),
        bookmarks: t.query.allow_watch_bookmarks,
        initial_events_end: t.query.send_initial_events && t.query.allow_watch_bookmarks,
        deadline: Instant::now() + Duration::from_secs(timeout),
        watch,
        seat: ctx.inflight.take(),
    };
    crate::filters::detach::run(&rest.log, session, ctx, stream).await;
    Ok(())
}

/// A watch once its header is written: only what its stream needs, as it may be idle for
/// an hour (it runs detached from the request, see `filters::detach`).
struct WatchStream {
    store: Arc<Store>,
    drain: Arc<Drain>,
    /// The resource's group and name, to find its definition again.
    info: Arc<RequestInfo>,
    labels: LabelSelector,
    fields: FieldSelector,
    partial: bool,
    table: bool,
    include: IncludeObject,
    bookmarks: bool,
    initial_events_end: bool,
    deadline: Instant,
    watch: Watch,
    /// Priority & fairness seats, held while the initial events are written (as kube's).
    seat: Option<crate::flowcontrol::Permit>,
}

impl crate::filters::detach::Stream for WatchStream {
    async fn run<'a>(&'a mut self, session: &'a mut ServerSession) {
        let store = self.store.clone();
        if let Some(def) = store.def(&self.info.api_group, &self.info.resource) {
            self.events(def, session).await;
        }
        let _ = Box::pin(session.write_response_body(Bytes::new(), true)).await;
    }
}

impl WatchStream {
    fn matches(&self, o: &Value) -> bool {
        self.labels.matches(o) && self.fields.matches(o)
    }

    /// The object as this watcher sends it.
    fn render(&self, def: &ResourceDef, o: &Value) -> Value {
        let o = present_as(&self.store, def, o);
        if self.partial {
            super::object::partial(&o)
        } else if self.table {
            table::table(&def.group, &def.resource, &[o], json!({"resourceVersion": "" }), self.include)
        } else {
            o
        }
    }

    /// The initial events, then the live ones until the deadline, the client leaves or the
    /// server drains.
    async fn events(&mut self, def: &ResourceDef, session: &mut ServerSession) {
        let mut last_rev = self.watch.rev;
        for ev in std::mem::take(&mut self.watch.initial) {
            if let Some(ty) = classify(&ev, &|o| self.matches(o)) {
                if !write(session, event_line(ty, self.render(def, &ev.value))).await {
                    return;
                }
            }
        }
        if self.initial_events_end && !write(session, bookmark(def, last_rev, true)).await {
            return;
        }
        self.seat = None;
        let deadline = tokio::time::sleep_until(self.deadline);
        let next_bookmark = tokio::time::sleep(BOOKMARK_EVERY);
        let drain = self.drain.clone();
        let closing = drain.closing();
        tokio::pin!(deadline, next_bookmark, closing);
        loop {
            tokio::select! {
                d = self.watch.rx.recv() => {
                    let Some(d) = d else { break };
                    let ev = &d.event;
                    last_rev = last_rev.max(ev.rev);
                    if let Some(ty) = classify(ev, &|o| self.matches(o)) {
                        let line = if self.partial || self.table {
                            event_line(ty, self.render(def, &ev.value))
                        } else {
                            // the plain form is the same for every watcher: rendered once
                            d.shared_line(ty, || event_line(ty, self.render(def, &ev.value)))
                        };
                        if !write(session, line).await {
                            return;
                        }
                    }
                }
                _ = &mut next_bookmark, if self.bookmarks => {
                    next_bookmark.as_mut().reset(Instant::now() + BOOKMARK_EVERY);
                    if !write(session, bookmark(def, last_rev, false)).await {
                        return;
                    }
                }
                // the client went away (HTTP/2 reset or close): end the watch now, not at its next event
                gone = session.read_body_or_idle(true) => {
                    if !matches!(gone, Ok(Some(_))) {
                        return;
                    }
                }
                // shutting down: end the watch so the client re-establishes it elsewhere (kube does the same)
                _ = &mut closing => break,
                _ = &mut deadline => {
                    if self.bookmarks {
                        let _ = write(session, bookmark(def, last_rev, false)).await;
                    }
                    break;
                }
            }
        }
    }
}

fn event_line(ty: &str, object: Value) -> Bytes {
    let mut b = serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

fn bookmark(def: &ResourceDef, rev: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line("BOOKMARK", json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta}))
}

/// Writes one line; false when the client is gone or stalled. The write's future is boxed:
/// it exists only while a line is written, not in an idle watch's state.
async fn write(session: &mut ServerSession, line: Bytes) -> bool {
    let w = Box::pin(session.write_response_body(line, false));
    matches!(tokio::time::timeout(WRITE_TIMEOUT, w).await, Ok(Ok(())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_transitions() {
        let sel = |o: &Value| o["metadata"]["labels"]["app"] == "x";
        let x = Arc::new(json!({"metadata": {"labels": {"app": "x"}}}));
        let y = Arc::new(json!({"metadata": {"labels": {"app": "y"}}}));
        let ev = |kind, value: &Arc<Value>, prev: Option<&Arc<Value>>| Event {
            rev: 2,
            kind,
            key: "k".into(),
            value: value.clone(),
            prev: prev.map(|p| (p.clone(), 1)),
        };
        assert_eq!(classify(&ev(EventType::Added, &x, None), &sel), Some("ADDED"));
        assert_eq!(classify(&ev(EventType::Added, &y, None), &sel), None);
        assert_eq!(classify(&ev(EventType::Modified, &x, Some(&y)), &sel), Some("ADDED"));
        assert_eq!(classify(&ev(EventType::Modified, &y, Some(&x)), &sel), Some("DELETED"));
        assert_eq!(classify(&ev(EventType::Modified, &x, Some(&x)), &sel), Some("MODIFIED"));
        assert_eq!(classify(&ev(EventType::Deleted, &x, Some(&x)), &sel), Some("DELETED"));
    }
}
