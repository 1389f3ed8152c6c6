//! The token cache, as k8s.io/apiserver's cached token authenticator: results are keyed by
//! a keyed 128-bit hash of the audiences asked for and the token (the token itself is never
//! stored: a token reviewed for one audience is never answered from its review for another),
//! kept `success_ttl` when
//! the token authenticated and `failure_ttl` when it did not; errors are cached only when
//! `cache_errs` (otherwise a transient webhook error would stick). Bounded in size.
//!
//! The key is SipHash-1-3-128 under a per-process random 128-bit key: a PRF, so without
//! the key nobody can aim two tokens at one entry, and 128 bits make accidental
//! collisions negligible. kube uses a keyed SHA-256 here; SipHash is several times
//! cheaper on a JWT and this hash is the hit path's main cost.

use super::user::UserInfo;
use siphasher::sip128::{Hasher128, SipHasher13};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A token authenticator's answer: `Ok(Some(user))` authenticated, `Ok(None)` not
/// recognised, `Err(reason)` recognised but invalid (or the authenticator failed).
pub type TokenResult = Result<Option<Arc<UserInfo>>, String>;

const SHARDS: usize = 32;
const PER_SHARD: usize = 128;

/// What a cache keeps: a token result, or one with more beside it (the webhook's audiences).
pub trait Outcome: Clone {
    /// The token result it holds, which decides how long it is kept.
    fn result(&self) -> &TokenResult;
}

impl Outcome for TokenResult {
    fn result(&self) -> &TokenResult {
        self
    }
}

impl<T: Clone> Outcome for (TokenResult, T) {
    fn result(&self) -> &TokenResult {
        &self.0
    }
}

struct Entry<V> {
    result: V,
    expires: Instant,
}

/// The map's own hasher: the key already is a keyed hash, so its low 64 bits are used
/// as they are (no second hashing pass).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // only reached if a key type other than u128 is hashed: fold the bytes in
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

type Shard<V> = Mutex<HashMap<u128, Entry<V>, BuildHasherDefault<KeyHasher>>>;

pub struct TokenCache<V = TokenResult> {
    secret: SipHasher13,
    success_ttl: Duration,
    failure_ttl: Duration,
    cache_errs: bool,
    shards: Vec<Shard<V>>,
}

impl<V: Outcome> TokenCache<V> {
    pub fn new(success_ttl: Duration, failure_ttl: Duration, cache_errs: bool) -> Self {
        // two uuid v4s from the OS CSPRNG; the second, rotated by 32 bits, covers the first's
        // six fixed version/variant bits, so all 128 key bits are random
        let (a, b) = (uuid::Uuid::new_v4().as_u128(), uuid::Uuid::new_v4().as_u128());
        let secret = SipHasher13::new_with_key(&(a ^ b.rotate_left(32)).to_be_bytes());
        TokenCache {
            secret,
            success_ttl,
            failure_ttl,
            cache_errs,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::default())).collect(),
        }
    }

    fn key(&self, audiences: &[String], token: &str) -> u128 {
        let mut h = self.secret;
        // each audience length-prefixed, so no two lists write the same bytes
        h.write_usize(audiences.len());
        for a in audiences {
            h.write_usize(a.len());
            h.write(a.as_bytes());
        }
        h.write(token.as_bytes());
        h.finish128().as_u128()
    }

    fn shard(&self, key: u128) -> &Shard<V> {
        // the high bits pick the shard, the low bits the bucket
        &self.shards[(key >> 120) as usize % SHARDS]
    }

    /// The cached result for `token` reviewed for `audiences`, if fresh.
    pub fn get(&self, audiences: &[String], token: &str) -> Option<V> {
        let key = self.key(audiences, token);
        let shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let e = shard.get(&key)?;
        (e.expires > Instant::now()).then(|| e.result.clone())
    }

    /// Records a result with kube's TTL rules.
    pub fn put(&self, audiences: &[String], token: &str, result: &V) {
        let ttl = match result.result() {
            Err(_) if !self.cache_errs => return,
            Ok(Some(_)) => self.success_ttl,
            _ => self.failure_ttl,
        };
        if ttl.is_zero() {
            return;
        }
        let key = self.key(audiences, token);
        let now = Instant::now();
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
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
        c.put(&[], "t1", &ok);
        assert_eq!(c.get(&[], "t1").unwrap().unwrap().unwrap().username, "a");
        c.put(&[], "t2", &Ok(None));
        assert!(matches!(c.get(&[], "t2"), Some(Ok(None))));
        c.put(&[], "t3", &Err("boom".into()));
        assert!(c.get(&[], "t3").is_none(), "errors are not cached without cache_errs");
        c.clear();
        assert!(c.get(&[], "t1").is_none());

        let c = TokenCache::new(Duration::from_millis(1), Duration::ZERO, true);
        c.put(&[], "t", &ok);
        c.put(&[], "f", &Ok(None));
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.get(&[], "t").is_none(), "expired");
        assert!(c.get(&[], "f").is_none(), "zero failure ttl is not cached");
    }

    #[test]
    fn a_token_is_kept_per_audiences() {
        let c = TokenCache::new(Duration::from_secs(60), Duration::from_secs(60), false);
        let ok: TokenResult = Ok(Some(Arc::new(UserInfo::new("a", vec![]))));
        let (api, vault) = (["https://kubernetes.default.svc".to_string()], ["vault".to_string()]);
        c.put(&vault, "t", &ok);
        assert!(c.get(&vault, "t").is_some());
        assert!(c.get(&api, "t").is_none(), "reviewed for vault, not for the API");
        assert!(c.get(&[], "t").is_none());
        // lists that would write the same bytes unprefixed are other keys
        c.put(&["ab".to_string(), "c".to_string()], "t", &ok);
        assert!(c.get(&["a".to_string(), "bc".to_string()], "t").is_none());
    }

    #[test]
    fn bounded() {
        let c = TokenCache::new(Duration::from_secs(60), Duration::from_secs(60), true);
        for i in 0..(SHARDS * PER_SHARD * 3) {
            c.put(&[], &format!("t{i}"), &Ok(None));
        }
        let total: usize = c.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= SHARDS * PER_SHARD);
    }
}
