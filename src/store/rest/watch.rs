//! watch: events after a resourceVersion (or the current state as ADDED first), selectors
//! applied to old and new object as kube does, BOOKMARKs, timeoutSeconds, and a 410 Expired
//! ERROR event for a compacted resourceVersion; streamed as JSON lines.

use super::object::present_as;
use super::read::selectors;
use super::Target;
use crate::api::Status;
use crate::context::RequestContext;
use crate::filters::detach::Body;
use crate::request_info::RequestInfo;
use crate::store::backend::{Event, EventType, StorageError, Watch};
use crate::store::resources::ResourceDef;
use crate::store::selectors::{FieldSelector, LabelSelector};
use crate::store::table::{self, IncludeObject};
use crate::store::watch::Delivery;
use crate::store::Store;
use bytes::Bytes;
use pingora::proxy::Session;
use serde_json::{json, Value};
use std::borrow::Cow;
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
    let from = match watch_start(&rest.store, t) {
        Ok(r) => r,
        Err(s) => return rest.respond.send(session, ctx, s.into()).await,
    };
    let watch = rest.store.storage.watch(&t.def.list_prefix(&t.namespace), from);
    let protobuf = t.output == super::negotiate::Output::Protobuf;
    let api_version = t.def.api_version();
    let content_type = match protobuf {
        true => "application/vnd.kubernetes.protobuf;stream=watch",
        false => "application/json",
    };
    rest.respond.start_stream(session, ctx, 200, content_type).await?;

    let watch = match watch {
        Ok(w) => w,
        Err(e) => {
            let s = match e {
                StorageError::Expired { asked, oldest } => {
                    Status::gone(format!("too old resource version: {asked} ({oldest})"))
                }
                e => Status::internal_error(e),
            };
            let line =
                frame(protobuf.then_some(api_version.as_str()), "ERROR", &serde_json::to_value(&s).unwrap_or_default());
            session.write_response_body(Some(line), false).await?;
            return session.write_response_body(None, true).await;
        }
    };
    let timeout = t
        .query
        .timeout_seconds
        .unwrap_or_else(|| MIN_REQUEST_TIMEOUT + (uuid::Uuid::new_v4().as_u128() % MIN_REQUEST_TIMEOUT as u128) as u64);
    // a resourceVersion ahead of the store: nothing up to it is sent (kube's cacheWatcher
    // sends only events newer than the version asked for)
    let after = from.filter(|&f| f > watch.rev).unwrap_or(0);
    let stream = WatchStream {
        after,
        store: rest.store.clone(),
        info: ctx.request_info.clone(),
        selectors: (!labels.is_empty() || !fields.is_empty()).then(|| Box::new((labels, fields))),
        partial: t.partial,
        table: t.table,
        include: IncludeObject::parse(t.query.include_object.as_deref()),
        bookmarks: t.query.allow_watch_bookmarks,
        protobuf,
        api_version: api_version.into(),
        initial_events_end: t.query.send_initial_events == Some(true) && t.query.allow_watch_bookmarks,
        deadline: deadline_in(timeout),
        watch,
        seat: ctx.inflight.take(),
    };
    crate::filters::detach::run(&rest.log, session, ctx, stream).await;
    Ok(())
}

/// Where a watch starts: None for the current state first (as ADDED events), else the
/// revision after which it streams. With `sendInitialEvents` (resourceVersionMatch
/// NotOlderThan, checked before): true is the current state, which must be at least as new as
/// the resourceVersion; false is no state, from the resourceVersion or from now. Without it,
/// kube's legacy rules: "" and "0" are the current state, N the events after N.
fn watch_start(store: &Store, t: &Target) -> Result<Option<u64>, Status> {
    let rv = t.query.revision()?;
    match t.query.send_initial_events {
        None => Ok(rv),
        Some(true) => {
            let current = store.storage.revision();
            match rv {
                Some(asked) if asked > current => {
                    Err(super::object::status(t, "", StorageError::TooLarge { asked, current }))
                }
                _ => Ok(None),
            }
        }
        Some(false) => Ok(Some(rv.unwrap_or_else(|| store.storage.revision()))),
    }
}

/// A watch once its header is written: only what its stream needs, as it may be idle for
/// an hour (it runs detached from the request, see `filters::detach`).
struct WatchStream {
    store: Arc<Store>,
    /// The resource's group and name, to find its definition again.
    info: Arc<RequestInfo>,
    /// The label and field selectors, boxed: most watches have none, and every idle one would
    /// keep their room.
    selectors: Option<Box<(LabelSelector, FieldSelector)>>,
    partial: bool,
    table: bool,
    include: IncludeObject,
    bookmarks: bool,
    /// Framed protobuf (with `api_version`) instead of JSON lines.
    protobuf: bool,
    /// The apiVersion served (watchers of another version render their own lines); a box, not a
    /// `String`, as every idle watch keeps it.
    api_version: Box<str>,
    initial_events_end: bool,
    deadline: Instant,
    watch: Watch,
    /// Events up to this revision are not sent (a watch from a version the store had not
    /// reached yet); 0: none held back.
    after: u64,
    /// Priority & fairness seats, held while the initial events are written (as kube's).
    seat: Option<crate::flowcontrol::Permit>,
}

impl crate::filters::detach::Stream for WatchStream {
    async fn run<'a, B: Body>(&'a mut self, body: &'a mut B) {
        let store = self.store.clone();
        // A custom resource's definition (owned) is boxed: the future keeps a reference, not
        // room for a whole `ResourceDef` (~230 bytes) in every idle watch.
        let owned: Box<ResourceDef>;
        let def = match store.served_def(self.info.api_group(), self.info.api_version(), self.info.resource()) {
            Some(Cow::Borrowed(def)) => Some(def),
            Some(Cow::Owned(def)) => {
                owned = Box::new(def);
                Some(&*owned)
            }
            None => None,
        };
        if let Some(def) = def {
            self.events(def, body).await;
        }
        // bounded as every write is: a client that takes nothing more holds nothing
        let _ = tokio::time::timeout(WRITE_TIMEOUT, Box::pin(body.end())).await;
    }
}

impl WatchStream {
    /// When the watch's one timer fires next: at its next bookmark or its deadline, whichever
    /// comes first.
    fn next_tick(&self) -> Instant {
        match self.bookmarks {
            true => self.deadline.min(Instant::now() + BOOKMARK_EVERY),
            false => self.deadline,
        }
    }

    fn matches(&self, o: &Value) -> bool {
        self.selectors.as_deref().is_none_or(|(labels, fields)| labels.matches(o) && fields.matches(o))
    }

    /// The object as this watcher sends it.
    fn render<'a>(&self, def: &ResourceDef, o: &'a Value) -> Cow<'a, Value> {
        let o = present_as(&self.store, def, o);
        if self.partial {
            Cow::Owned(super::object::partial(&o))
        } else if self.table {
            Cow::Owned(table::table_of(def, &[o], json!({"resourceVersion": "" }), self.include))
        } else {
            o
        }
    }

    /// The initial events, then the live ones until the deadline, the client leaves or the
    /// server drains.
    async fn events<B: Body>(&mut self, def: &ResourceDef, body: &mut B) {
        let mut last_rev = self.watch.rev;
        // boxed: an idle watch keeps no room for what the writes of its initial events awaited
        if !Box::pin(self.initial(def, body, last_rev)).await {
            return;
        }
        self.seat = None;
        // One timer, for the next bookmark or the deadline, whichever comes first: each timer is
        // ~100 bytes of every idle watch's state.
        let timer = tokio::time::sleep_until(self.next_tick());
        tokio::pin!(timer);
        // What an arm awaits is boxed: `select!` keeps its branches' futures while an arm runs, so
        // inline, an arm's writes would widen the state every idle watch holds.
        loop {
            tokio::select! {
                // None: the watcher was cut off, or the server is shutting down (the drain closes
                // every watcher: the watch ends so that the client watches again elsewhere, as
                // kube's do)
                d = self.watch.rx.recv() => {
                    let Some(d) = d else { break };
                    last_rev = last_rev.max(d.event.rev);
                    if !Box::pin(self.deliver(def, body, &d)).await {
                        return;
                    }
                }
                // the client went away (HTTP/2 reset or close): end the watch now, not at its next event
                _ = body.gone() => return,
                // a bookmark is due, or the deadline has come (with a last bookmark)
                _ = &mut timer => {
                    let ended = Instant::now() >= self.deadline;
                    if !ended {
                        timer.as_mut().reset(self.next_tick());
                    }
                    if self.bookmarks {
                        let Some(rev) = Box::pin(self.catch_up(def, body, last_rev)).await else { return };
                        last_rev = rev;
                        let due = last_rev > self.after;
                        if due && !Box::pin(write(body, self.line("BOOKMARK", &bookmark(def, last_rev, false)))).await {
                            return;
                        }
                    }
                    if ended {
                        break;
                    }
                }
            }
        }
    }
}

impl WatchStream {
    /// The initial events, then (with sendInitialEvents) the bookmark at `rev` that ends them;
    /// false when the client is gone.
    async fn initial<B: Body>(&mut self, def: &ResourceDef, body: &mut B, rev: u64) -> bool {
        for ev in std::mem::take(&mut self.watch.initial) {
            if let Some(ty) = classify(&ev, &|o| self.matches(o)) {
                if !write(body, self.event_frame(def, ty, &ev)).await {
                    return false;
                }
            }
        }
        !self.initial_events_end || write(body, self.line("BOOKMARK", &bookmark(def, rev, true))).await
    }

    /// Sends one event if it is for this watcher; false when the client is gone.
    async fn deliver<B: Body>(&self, def: &ResourceDef, body: &mut B, d: &Delivery) -> bool {
        let ev = &d.event;
        if ev.rev <= self.after {
            return true;
        }
        let Some(ty) = classify(ev, &|o| self.matches(o)) else { return true };
        // the plain form (JSON or protobuf) is the same for every watcher of the resource's
        // version: rendered once
        let line = if self.partial || self.table {
            self.event_frame(def, ty, ev)
        } else {
            d.shared_line(self.protobuf, &self.api_version, ty, || self.event_frame(def, ty, ev))
        };
        write(body, line).await
    }

    /// The store's current revision for a bookmark, once every event up to it that is for
    /// this watcher has been sent (the store publishes each change under the lock that makes its
    /// revision visible, so what is queued now is all there is up to it). None when the client is
    /// gone, or when the watcher was cut off or closed: events up to the revision may not have
    /// reached it, so no bookmark may claim them (the client would watch again past them).
    async fn catch_up<B: Body>(&mut self, def: &ResourceDef, body: &mut B, last: u64) -> Option<u64> {
        let current = self.store.storage.revision();
        let mut rev = last.max(current);
        loop {
            match self.watch.rx.try_recv() {
                Ok(d) => {
                    rev = rev.max(d.event.rev);
                    if !self.deliver(def, body, &d).await {
                        return None;
                    }
                }
                Err(true) => return None,
                Err(false) => return Some(rev),
            }
        }
    }
}

impl WatchStream {
    /// One event as this watch frames it.
    fn line(&self, ty: &str, object: &Value) -> Bytes {
        frame(self.protobuf.then_some(&self.api_version), ty, object)
    }

    /// `ev` as this watch frames it as a `ty` event: a JSON line of an object served as stored
    /// is written around its stored bytes.
    fn event_frame(&self, def: &ResourceDef, ty: &str, ev: &Event) -> Bytes {
        // an object leaving the selection is deleted for this watcher as it was when selected
        // (kube's cacheWatcher sends the previous object at the event's resourceVersion): its
        // new state is what the watcher did not select
        if let (EventType::Modified, "DELETED", Some((prev, _))) = (ev.kind, ty, &ev.prev) {
            let mut was = (**prev).clone();
            was["metadata"]["resourceVersion"] = json!(ev.rev.to_string());
            return self.line(ty, &self.render(def, &was));
        }
        let o = self.render(def, &ev.value);
        match (&o, &ev.raw, self.protobuf) {
            (Cow::Borrowed(_), Some(raw), false) => event_line_raw(ty, raw),
            _ => self.line(ty, &o),
        }
    }
}

/// One event: a JSON line, or (with the resource's apiVersion) kube's protobuf frame. An
/// object without a protobuf form (which the negotiation ruled out for its kind) becomes an
/// ERROR event, after which the client watches again.
fn frame(protobuf: Option<&str>, ty: &str, object: &Value) -> Bytes {
    let Some(api_version) = protobuf else { return event_line(ty, object) };
    let framed = crate::store::protobuf::encode_watch_event(api_version, ty, object).or_else(|e| {
        let s = serde_json::to_value(Status::internal_error(e)).unwrap_or_default();
        crate::store::protobuf::encode_watch_event(api_version, "ERROR", &s)
    });
    Bytes::from(framed.unwrap_or_default())
}

fn event_line(ty: &str, object: &Value) -> Bytes {
    event_line_raw(ty, &crate::store::backend::raw_json(object))
}

/// `event_line` of an object whose JSON is `raw`, byte for byte.
fn event_line_raw(ty: &str, raw: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(raw.len() + ty.len() + 24);
    b.extend_from_slice(b"{\"type\":");
    serde_json::to_writer(&mut b, ty).expect("a string serializes");
    b.extend_from_slice(b",\"object\":");
    b.extend_from_slice(raw);
    b.extend_from_slice(b"}\n");
    Bytes::from(b)
}

fn bookmark(def: &ResourceDef, rev: u64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta})
}

/// When a watch of `timeout` seconds ends. A timeout past what the clock holds (a
/// `timeoutSeconds` near 2^63) ends in a century: adding it would overflow.
fn deadline_in(timeout: u64) -> Instant {
    const CENTURY: u64 = 100 * 365 * 24 * 3600;
    Instant::now() + Duration::from_secs(timeout.min(CENTURY))
}

/// Writes one line; false when the client is gone or stalled. The write's future is boxed:
/// it exists only while a line is written, not in an idle watch's state.
async fn write<B: Body>(body: &mut B, line: Bytes) -> bool {
    let w = Box::pin(body.write(line));
    matches!(tokio::time::timeout(WRITE_TIMEOUT, w).await, Ok(Ok(())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any timeoutSeconds is a deadline, the largest too (it overflowed the clock: a panic).
    #[tokio::test]
    async fn the_largest_timeout_is_a_deadline() {
        let year = Duration::from_secs(365 * 24 * 3600);
        for t in [i64::MAX as u64, u64::MAX] {
            assert!(deadline_in(t) > Instant::now() + year);
        }
        let ten = deadline_in(10) - Instant::now();
        assert!(ten <= Duration::from_secs(10) && ten > Duration::from_secs(9), "{ten:?}");
    }

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
            raw: None,
        };
        assert_eq!(classify(&ev(EventType::Added, &x, None), &sel), Some("ADDED"));
        assert_eq!(classify(&ev(EventType::Added, &y, None), &sel), None);
        assert_eq!(classify(&ev(EventType::Modified, &x, Some(&y)), &sel), Some("ADDED"));
        assert_eq!(classify(&ev(EventType::Modified, &y, Some(&x)), &sel), Some("DELETED"));
        assert_eq!(classify(&ev(EventType::Modified, &x, Some(&x)), &sel), Some("MODIFIED"));
        assert_eq!(classify(&ev(EventType::Deleted, &x, Some(&x)), &sel), Some("DELETED"));
    }

    /// The size of the future `f` returns.
    fn future_size<A, B, F>(_: fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    fn run<'a>(
        w: &'a mut WatchStream,
        s: &'a mut pingora::protocols::http::ServerSession,
    ) -> impl std::future::Future<Output = ()> + 'a {
        use crate::filters::detach::Stream as _;
        w.run(s)
    }

    /// An idle watch's body holds its events' loop and a reference to its resource's
    /// definition: not a copy of the definition, nor room for what an arm of the loop or the
    /// initial events await, one timer, whose next time is read from the watch, and no wait
    /// of its own on the server's drain, which closes its events instead (debug build: 592
    /// bytes; 704 with a wait on the drain, 744 with the deadline copied into the loop too, 760
    /// with the initial events' writes inline, 832 with a timer each for the deadline and the
    /// bookmarks, 1288 with the arms and the definition inline). Every idle watch holds it,
    /// and the watch once.
    #[test]
    fn an_idle_watch_holds_its_loop_only() {
        let size =
            future_size(run as fn(&'static mut WatchStream, &'static mut pingora::protocols::http::ServerSession) -> _);
        assert!(size <= 600, "{size} bytes");
        // (176 bytes; 208 with the protobuf apiVersion a second copy of the one served and a
        // reference to the drain)
        let watch = std::mem::size_of::<WatchStream>();
        assert!(watch <= 176, "{watch} bytes");
    }

    #[test]
    fn a_line_around_stored_bytes_is_the_serialized_line() {
        let o = json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "a\"b", "resourceVersion": "3"},
            "data": {"k": "v\u{e9}\n", "n": "1.5"}});
        for ty in ["ADDED", "MODIFIED", "DELETED"] {
            let want = format!("{{\"type\":\"{ty}\",\"object\":{}}}\n", serde_json::to_string(&o).unwrap());
            assert_eq!(String::from_utf8(event_line(ty, &o).to_vec()).unwrap(), want);
        }
    }
}
