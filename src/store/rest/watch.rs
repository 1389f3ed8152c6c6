//! watch: events after a resourceVersion (or the current state as ADDED first), selectors
//! applied to old and new object as kube does, BOOKMARKs, timeoutSeconds, and a 410 Expired
//! ERROR event for a compacted resourceVersion; streamed as JSON lines.

use super::object::present;
use super::read::selectors;
use super::Target;
use crate::api::Status;
use crate::context::RequestContext;
use crate::filters::response::{send, start_stream};
use crate::server::Gateway;
use crate::store::backend::{Event, EventType, StorageError};
use crate::store::table::{self, IncludeObject};
use bytes::Bytes;
use pingora::proxy::Session;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// How often a watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);
/// A client that does not take a write within this long is cut off.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a watch checks whether the server is draining.
const SHUTDOWN_POLL: Duration = Duration::from_secs(1);
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
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut RequestContext,
    t: &Target<'_>,
) -> pingora::Result<()> {
    let (labels, fields) = match selectors(t) {
        Ok(s) => s,
        Err(s) => return send(gw, session, ctx, s.into()).await,
    };
    let from = match t.query.revision() {
        Ok(r) => r,
        Err(s) => return send(gw, session, ctx, s.into()).await,
    };
    let watch = gw.store.storage.watch(&t.def.list_prefix(&t.namespace), from);
    start_stream(gw, session, ctx, 200, "application/json").await?;

    let mut w = match watch {
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
    let matches = |o: &Value| labels.matches(o) && fields.matches(o);
    let include = IncludeObject::parse(t.query.include_object.as_deref());
    let render = |o: &Value| {
        let o = present(&gw.store, t, o);
        if t.partial {
            super::object::partial(&o)
        } else if t.table {
            table::table(&t.def.group, &t.def.resource, &[o], json!({"resourceVersion": "" }), include)
        } else {
            o
        }
    };
    let timeout = t
        .query
        .timeout_seconds
        .unwrap_or_else(|| MIN_REQUEST_TIMEOUT + (uuid::Uuid::new_v4().as_u128() % MIN_REQUEST_TIMEOUT as u128) as u64);
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let bookmarks = t.query.allow_watch_bookmarks;
    let mut last_rev = w.rev;

    for ev in std::mem::take(&mut w.initial) {
        if let Some(ty) = classify(&ev, &matches) {
            if !write(session, event_line(ty, render(&ev.value))).await {
                return Ok(());
            }
        }
    }
    if t.query.send_initial_events && bookmarks {
        let b = bookmark(t, last_rev, true);
        if !write(session, b).await {
            return Ok(());
        }
    }
    let mut next_bookmark = Instant::now() + BOOKMARK_EVERY;
    loop {
        tokio::select! {
            ev = w.rx.recv() => {
                let Some(ev) = ev else { break };
                last_rev = last_rev.max(ev.rev);
                if let Some(ty) = classify(&ev, &matches) {
                    if !write(session, event_line(ty, render(&ev.value))).await {
                        return Ok(());
                    }
                }
            }
            _ = tokio::time::sleep_until(next_bookmark), if bookmarks => {
                next_bookmark = Instant::now() + BOOKMARK_EVERY;
                if !write(session, bookmark(t, last_rev, false)).await {
                    return Ok(());
                }
            }
            // the client went away (HTTP/2 reset or close): end the watch now, not at its next event
            gone = session.read_body_or_idle(true) => {
                if !matches!(gone, Ok(Some(_))) {
                    return Ok(());
                }
            }
            // shutting down: end the watch so the client re-establishes it elsewhere (kube does the same)
            _ = tokio::time::sleep(SHUTDOWN_POLL), if !gw.drain.is_closing() => {}
            _ = std::future::ready(()), if gw.drain.is_closing() => break,
            _ = tokio::time::sleep_until(deadline) => {
                if bookmarks {
                    let _ = write(session, bookmark(t, last_rev, false)).await;
                }
                break;
            }
        }
    }
    session.write_response_body(None, true).await
}

fn event_line(ty: &str, object: Value) -> Bytes {
    let mut b = serde_json::to_vec(&json!({"type": ty, "object": object})).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

fn bookmark(t: &Target, rev: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line("BOOKMARK", json!({"kind": t.def.kind, "apiVersion": t.def.api_version(), "metadata": meta}))
}

/// Writes one line; false when the client is gone or stalled.
async fn write(session: &mut Session, line: Bytes) -> bool {
    matches!(tokio::time::timeout(WRITE_TIMEOUT, session.write_response_body(Some(line), false)).await, Ok(Ok(())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
