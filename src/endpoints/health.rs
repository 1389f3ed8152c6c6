//! `/healthz`, `/livez`, `/readyz`: kube's named checks, `?verbose`, `?exclude=`, and
//! `/<endpoint>/<check>`.

use crate::request_info::query::Query;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

pub type CheckFn = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Which endpoints a check belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// healthz, livez and readyz
    All,
    /// readyz only (e.g. `shutdown`)
    Ready,
}

#[derive(Default)]
pub struct Health {
    checks: RwLock<Vec<(String, Scope, CheckFn)>>,
    shutting_down: Arc<AtomicBool>,
}

impl Health {
    pub fn new() -> Self {
        let h = Health::default();
        h.add("ping", Scope::All, Arc::new(|| Ok(())));
        h.add("log", Scope::All, Arc::new(|| Ok(())));
        let flag = h.shutting_down.clone();
        h.add(
            "shutdown",
            Scope::Ready,
            Arc::new(
                move || if flag.load(Ordering::Relaxed) { Err("process is shutting down".into()) } else { Ok(()) },
            ),
        );
        h
    }

    /// Registers a named check (a store registers `etcd`, backends their own).
    pub fn add(&self, name: &str, scope: Scope, check: CheckFn) {
        self.checks.write().unwrap().push((name.to_string(), scope, check));
    }

    /// From now on `/readyz` fails: the first step of graceful shutdown.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Answers `path` (one of the three endpoints, optionally with `/<check>`), or None when
    /// the path is not a health path. Returns (HTTP code, text body).
    pub fn serve(&self, path: &str, query: &Query) -> Option<(u16, String)> {
        let (endpoint, rest) = match path.trim_start_matches('/').split_once('/') {
            Some((e, r)) => (e, Some(r)),
            None => (path.trim_start_matches('/'), None),
        };
        let ready = match endpoint {
            "healthz" | "livez" => false,
            "readyz" => true,
            _ => return None,
        };
        let checks = self.checks.read().unwrap();
        let applies = |scope: &Scope| ready || *scope == Scope::All;
        if let Some(name) = rest {
            let (_, _, check) = checks.iter().find(|(n, s, _)| n == name && applies(s))?;
            return Some(match check() {
                Ok(()) => (200, "ok".into()),
                Err(e) => (500, format!("internal server error: {e}\n")),
            });
        }
        let verbose = query.first("verbose").is_some();
        let excluded: Vec<&str> = query.all("exclude").collect();
        let mut body = String::new();
        let mut failed = false;
        for (name, _, check) in checks.iter().filter(|(_, s, _)| applies(s)) {
            if excluded.contains(&name.as_str()) {
                body.push_str(&format!("[+]{name} excluded: ok\n"));
                continue;
            }
            match check() {
                Ok(()) => body.push_str(&format!("[+]{name} ok\n")),
                Err(_) => {
                    failed = true;
                    body.push_str(&format!("[-]{name} failed: reason withheld\n"));
                }
            }
        }
        if failed {
            body.push_str(&format!("{endpoint} check failed\n"));
            return Some((500, body));
        }
        if verbose {
            body.push_str(&format!("{endpoint} check passed\n"));
            Some((200, body))
        } else {
            Some((200, "ok".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readyz_fails_on_shutdown_livez_does_not() {
        let h = Health::new();
        assert_eq!(h.serve("/readyz", &Query::default()).unwrap(), (200, "ok".into()));
        h.begin_shutdown();
        let (code, body) = h.serve("/readyz", &Query::parse("verbose")).unwrap();
        assert_eq!(code, 500);
        assert!(body.contains("[-]shutdown failed: reason withheld"), "{body}");
        assert!(body.ends_with("readyz check failed\n"));
        assert_eq!(h.serve("/livez", &Query::default()).unwrap().0, 200);
        assert_eq!(h.serve("/readyz", &Query::parse("exclude=shutdown")).unwrap().0, 200);
        assert_eq!(h.serve("/readyz/shutdown", &Query::default()).unwrap().0, 500);
        assert_eq!(h.serve("/readyz/ping", &Query::default()).unwrap(), (200, "ok".into()));
        assert!(h.serve("/livez/shutdown", &Query::default()).is_none(), "shutdown is a readyz check only");
        assert!(h.serve("/other", &Query::default()).is_none());
    }

    #[test]
    fn verbose_lists_every_check() {
        let h = Health::new();
        h.add("etcd", Scope::All, Arc::new(|| Err("down".into())));
        let (code, body) = h.serve("/healthz", &Query::parse("verbose=1")).unwrap();
        assert_eq!(code, 500);
        assert!(body.contains("[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n"), "{body}");
    }
}
