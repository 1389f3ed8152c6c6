//! The token cache, as k8s.io/apiserver's cached token authenticator: results are keyed by
//! a keyed SHA-256 of the token (the token itself is never stored), kept `success_ttl` when
//! the token authenticated and `failure_ttl` when it did not; errors are cached only when
//! `cache_errs` (otherwise a transient webhook error would stick). Bounded in size.

use super::user::UserInfo;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A token authenticator's answer: `Ok(Some(user))` authenticated, `Ok(None)` not
/// recognised, `Err(reason)` recognised but invalid (or the authenticator failed).
pub type TokenResult = Result<Option<Arc<UserInfo>>, String>;

const SHARDS: usize = 32;
const PER_SHARD: usize = 128;

struct Entry {
    result: TokenResult,
    expires: Instant,
}

pub struct TokenCache {
    secret: [u8; 32],
    success_ttl: Duration,
    failure_ttl: Duration,
    cache_errs: bool,
    shards: Vec<Mutex<HashMap<[u8; 32], Entry>>>,
}

impl TokenCache {
    pub fn new(success_ttl: Duration, failure_ttl: Duration, cache_errs: bool) -> Self {
        let mut secret = [0u8; 32];
        secret[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        secret[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        TokenCache {
            secret,
            success_ttl,
            failure_ttl,
            cache_errs,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn key(&self, token: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(token.as_bytes());
        h.finalize().into()
    }

    fn shard(&self, key: &[u8; 32]) -> &Mutex<HashMap<[u8; 32], Entry>> {
        &self.shards[key[0] as usize % SHARDS]
    }

    /// The cached result for `token`, if fresh.
    pub fn get(&self, token: &str) -> Option<TokenResult> {
        let key = self.key(token);
        let shard = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
        let e = shard.get(&key)?;
        (e.expires > Instant::now()).then(|| e.result.clone())
    }

    /// Records a result with kube's TTL rules.
    pub fn put(&self, token: &str, result: &TokenResult) {
        let ttl = match result {
            Err(_) if !self.cache_errs => return,
            Ok(Some(_)) => self.success_ttl,
            _ => self.failure_ttl,
        };
        if ttl.is_zero() {
            return;
        }
        let key = self.key(token);
        let now = Instant::now();
        let mut shard = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= PER_SHARD {
            shard.retain(|_, e| e.expires > now);
            if shard.len() >= PER_SHARD {
                // still full of live entries: drop an arbitrary one
                if let Some(k) = shard.keys().next().copied() {
                    shard.remove(&k);
                }
            }
        }
        shard.insert(key, Entry { result: result.clone(), expires: now + ttl });
    }

    /// Forgets everything (after a reload changed what tokens mean).
    pub fn clear(&self) {
        for s in &self.shards {
            s.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rules() {
        let c = TokenCache::new(Duration::from_secs(60), Duration::from_secs(60), false);
        let ok: TokenResult = Ok(Some(Arc::new(UserInfo::new("a", vec![]))));
        c.put("t1", &ok);
        assert_eq!(c.get("t1").unwrap().unwrap().unwrap().username, "a");
        c.put("t2", &Ok(None));
        assert!(matches!(c.get("t2"), Some(Ok(None))));
        c.put("t3", &Err("boom".into()));
        assert!(c.get("t3").is_none(), "errors are not cached without cache_errs");
        c.clear();
        assert!(c.get("t1").is_none());

        let c = TokenCache::new(Duration::from_millis(1), Duration::ZERO, true);
        c.put("t", &ok);
        c.put("f", &Ok(None));
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.get("t").is_none(), "expired");
        assert!(c.get("f").is_none(), "zero failure ttl is not cached");
    }

    #[test]
    fn bounded() {
        let c = TokenCache::new(Duration::from_secs(60), Duration::from_secs(60), true);
        for i in 0..(SHARDS * PER_SHARD * 3) {
            c.put(&format!("t{i}"), &Ok(None));
        }
        let total: usize = c.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= SHARDS * PER_SHARD);
    }
}
