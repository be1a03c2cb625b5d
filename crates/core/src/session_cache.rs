//! A short-lived in-memory cache of validated sessions, so a session check on a warm
//! session costs no database round trip and no write.
//!
//! Entries are keyed by the SHA-256 of the session token (never the token) and live at
//! most `ttl`; the session's own absolute expiry and inactivity timeout are still checked
//! on every hit. Revocation, logout and password changes invalidate entries at once on
//! this instance ([`SessionCache::invalidate`]) and, through a [`Fanout`] (Redis pub/sub
//! in the server), on every other instance; the TTL only bounds how long a change made
//! behind Aegis's back (a row deleted by hand, a lost pub/sub message) can go unseen.
//!
//! A read that raced with an invalidation must not put a dead session back: every
//! invalidation bumps an epoch before it removes entries, and an insert is dropped
//! when the epoch moved since its database read began (see [`SessionCache::epoch`]).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crate::clock::Millis;
use crate::ids::{SessionId, TenantId, UserId};
use crate::model::Identity;

/// Number of independently locked parts, so readers on different cores rarely meet.
const SHARDS: usize = 16;

/// What another instance must forget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// One session ended (logout, revocation).
    Session(SessionId),
    /// Every session of a user ended (password change or reset, "sign out everywhere").
    User(UserId),
}

impl Invalidation {
    /// The wire form used between instances: `s:<uuid>` or `u:<uuid>`.
    pub fn encode(&self) -> String {
        match self {
            Invalidation::Session(id) => format!("s:{id}"),
            Invalidation::User(id) => format!("u:{id}"),
        }
    }

    /// Parses [`Invalidation::encode`]'s output; `None` for anything else.
    pub fn decode(s: &str) -> Option<Self> {
        let (kind, id) = s.split_once(':')?;
        match kind {
            "s" => id.parse().ok().map(Invalidation::Session),
            "u" => id.parse().ok().map(Invalidation::User),
            _ => None,
        }
    }
}

/// Carries invalidations to the other instances. Fire and forget: the caller's
/// transaction has committed, and a lost message is bounded by the cache TTL.
pub trait Fanout: Send + Sync {
    fn publish(&self, invalidation: Invalidation);
}

/// A validated session as the cache keeps it.
struct Entry {
    /// The session's identity; a token presented to another tenant than its
    /// `tenant_id` misses.
    identity: Arc<Identity>,
    /// When this entry stops being trusted (cache TTL).
    fresh_until: Millis,
    /// Last activity as last written to the database (sliding refresh).
    last_seen_at: AtomicI64,
}

/// What a hit tells the caller.
pub struct Hit {
    pub identity: Arc<Identity>,
    /// The session's last recorded activity, to decide on the idle timeout and refresh.
    pub last_seen_at: Millis,
}

/// The token hash already is uniformly random: its first eight bytes are the hash.
#[derive(Clone, Copy, Default)]
struct TokenHashState;

#[derive(Default)]
struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Keys are `[u8; 32]`, hashed as one slice (after a length prefix, which
        // `write_usize` ignores below).
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(first);
    }

    fn write_usize(&mut self, _: usize) {}
}

impl BuildHasher for TokenHashState {
    type Hasher = TokenHasher;

    fn build_hasher(&self) -> TokenHasher {
        TokenHasher::default()
    }
}

type Shard = RwLock<HashMap<[u8; 32], Entry, TokenHashState>>;

/// The cache. Cheap to share: hand out `Arc<SessionCache>`.
pub struct SessionCache {
    shards: Box<[Shard]>,
    /// Session id → token hash, so a revocation by id finds its entry without a scan.
    by_session: Mutex<HashMap<SessionId, [u8; 32]>>,
    epoch: AtomicU64,
    ttl_ms: Millis,
    shard_capacity: usize,
    fanout: OnceLock<Arc<dyn Fanout>>,
}

impl SessionCache {
    /// A cache keeping entries `ttl_ms` and at most about `capacity` of them.
    /// `ttl_ms == 0` or `capacity == 0` turns it off: every lookup misses.
    pub fn new(ttl_ms: Millis, capacity: usize) -> Self {
        let shards = (0..SHARDS).map(|_| Shard::default()).collect();
        SessionCache {
            shards,
            by_session: Mutex::default(),
            epoch: AtomicU64::new(0),
            ttl_ms,
            shard_capacity: capacity.div_ceil(SHARDS),
            fanout: OnceLock::new(),
        }
    }

    fn enabled(&self) -> bool {
        self.ttl_ms > 0 && self.shard_capacity > 0
    }

    /// Sets where invalidations go besides this instance (once, at start-up).
    pub fn set_fanout(&self, fanout: Arc<dyn Fanout>) {
        let _ = self.fanout.set(fanout);
    }

    fn shard(&self, hash: &[u8; 32]) -> &Shard {
        // The last byte picks the shard; the first eight feed the map's hash.
        &self.shards[usize::from(hash[31]) % SHARDS]
    }

    /// The invalidation epoch. Read it before the database read whose result is to be
    /// cached and pass it to [`SessionCache::insert`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The cached identity for this token hash in `tenant`, if fresh at `now`.
    pub fn get(&self, tenant: TenantId, hash: &[u8; 32], now: Millis) -> Option<Hit> {
        if !self.enabled() {
            return None;
        }
        let shard = self.shard(hash).read().ok()?;
        let entry = shard.get(hash)?;
        if entry.identity.tenant_id != tenant || now >= entry.fresh_until {
            return None;
        }
        Some(Hit {
            identity: entry.identity.clone(),
            last_seen_at: entry.last_seen_at.load(Ordering::Relaxed),
        })
    }

    /// Remembers a validated session read from the database, unless an invalidation
    /// happened since `epoch` was read (the read may predate it).
    pub fn insert(
        &self,
        hash: [u8; 32],
        identity: Arc<Identity>,
        last_seen_at: Millis,
        now: Millis,
        epoch: u64,
    ) {
        if !self.enabled() {
            return;
        }
        let session = identity.session_id;
        let mut evicted = Vec::new();
        let Ok(mut shard) = self.shard(&hash).write() else {
            return;
        };
        // Checked under the shard lock: an invalidation bumps the epoch before it
        // takes this lock to remove entries, so either we see the bump here or the
        // removal sees our entry.
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if shard.len() >= self.shard_capacity && !shard.contains_key(&hash) {
            evicted = remove_where(&mut shard, |e| e.fresh_until <= now);
            if shard.len() >= self.shard_capacity {
                // Still full of fresh entries: give up one (a miss costs a query).
                if let Some(k) = shard.keys().next().copied()
                    && let Some(e) = shard.remove(&k)
                {
                    evicted.push(e.identity.session_id);
                }
            }
        }
        let entry = Entry {
            identity,
            fresh_until: now.saturating_add(self.ttl_ms),
            last_seen_at: AtomicI64::new(last_seen_at),
        };
        shard.insert(hash, entry);
        drop(shard);
        if let Ok(mut index) = self.by_session.lock() {
            for id in &evicted {
                index.remove(id);
            }
            index.insert(session, hash);
        }
    }

    /// Claims the activity write for a session last seen at `seen`: true for exactly
    /// one caller, who then writes `at` to the database (others go on without writing).
    pub fn claim_touch(&self, hash: &[u8; 32], seen: Millis, at: Millis) -> bool {
        let Ok(shard) = self.shard(hash).read() else {
            return true;
        };
        match shard.get(hash) {
            Some(e) => e
                .last_seen_at
                .compare_exchange(seen, at, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok(),
            None => true,
        }
    }

    /// Forgets a session, or all of a user's sessions, here and on every other
    /// instance. Call after the change committed.
    pub fn invalidate(&self, what: Invalidation) {
        self.forget(what);
        if let Some(f) = self.fanout.get() {
            f.publish(what);
        }
    }

    /// Forgets entries on this instance only (an invalidation from another instance).
    pub fn forget(&self, what: Invalidation) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if !self.enabled() {
            return;
        }
        match what {
            Invalidation::Session(id) => {
                let hash = self.by_session.lock().ok().and_then(|mut i| i.remove(&id));
                if let Some(hash) = hash
                    && let Ok(mut shard) = self.shard(&hash).write()
                {
                    shard.remove(&hash);
                }
            }
            Invalidation::User(user) => {
                self.remove_everywhere(|e| e.identity.user_id == user);
            }
        }
    }

    /// Forgets everything on this instance (after invalidations may have been missed,
    /// e.g. while the pub/sub connection was down).
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for shard in self.shards.iter() {
            if let Ok(mut shard) = shard.write() {
                shard.clear();
            }
        }
        if let Ok(mut index) = self.by_session.lock() {
            index.clear();
        }
    }

    /// Entries held (fresh or not yet swept).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.read().ok().map(|s| s.len()))
            .sum()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops entries past their TTL (and their index rows); returns how many.
    pub fn sweep(&self, now: Millis) -> usize {
        self.remove_everywhere(|e| e.fresh_until <= now)
    }

    /// Removes the entries of every shard for which `gone` holds, and their index rows;
    /// returns how many.
    fn remove_everywhere(&self, gone: impl Fn(&Entry) -> bool) -> usize {
        let mut removed = Vec::new();
        for shard in self.shards.iter() {
            if let Ok(mut shard) = shard.write() {
                removed.extend(remove_where(&mut shard, &gone));
            }
        }
        if let Ok(mut index) = self.by_session.lock() {
            for id in &removed {
                index.remove(id);
            }
        }
        removed.len()
    }
}

/// Removes a shard's entries for which `gone` holds; returns their session ids, whose
/// index rows the caller removes (the index has its own lock).
fn remove_where(
    shard: &mut HashMap<[u8; 32], Entry, TokenHashState>,
    gone: impl Fn(&Entry) -> bool,
) -> Vec<SessionId> {
    let mut removed = Vec::new();
    shard.retain(|_, e| {
        let drop_it = gone(e);
        if drop_it {
            removed.push(e.identity.session_id);
        }
        !drop_it
    });
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AuthMethod;

    fn identity(tenant: TenantId, user: UserId) -> Identity {
        Identity {
            user_id: user,
            tenant_id: tenant,
            email: "a@example.com".into(),
            roles: vec!["member".into()],
            session_id: SessionId::new(),
            session_expires_at: 10_000,
            auth_method: AuthMethod::Password,
            rendered: Default::default(),
        }
    }

    fn hash(n: u8) -> [u8; 32] {
        let mut h = [n; 32];
        h[0] = n.wrapping_mul(37);
        h
    }

    #[test]
    fn hit_until_ttl_then_miss() {
        let c = SessionCache::new(100, 10);
        let t = TenantId::new();
        let id = identity(t, UserId::new());
        c.insert(hash(1), Arc::new(id.clone()), 5, 1000, c.epoch());
        let hit = c.get(t, &hash(1), 1099).expect("fresh");
        assert_eq!(hit.identity.session_id, id.session_id);
        assert_eq!(hit.last_seen_at, 5);
        assert!(c.get(t, &hash(1), 1100).is_none());
        assert_eq!(c.sweep(1100), 1);
        assert!(c.is_empty());
    }

    #[test]
    fn another_tenant_misses() {
        let c = SessionCache::new(100, 10);
        let t = TenantId::new();
        c.insert(
            hash(1),
            Arc::new(identity(t, UserId::new())),
            0,
            0,
            c.epoch(),
        );
        assert!(c.get(TenantId::new(), &hash(1), 1).is_none());
        assert!(c.get(t, &hash(1), 1).is_some());
    }

    #[test]
    fn invalidate_by_session_and_by_user() {
        let c = SessionCache::new(1000, 100);
        let t = TenantId::new();
        let alice = UserId::new();
        let a1 = identity(t, alice);
        let a2 = identity(t, alice);
        let b = identity(t, UserId::new());
        c.insert(hash(1), Arc::new(a1.clone()), 0, 0, c.epoch());
        c.insert(hash(2), Arc::new(a2), 0, 0, c.epoch());
        c.insert(hash(3), Arc::new(b), 0, 0, c.epoch());
        c.invalidate(Invalidation::Session(a1.session_id));
        assert!(c.get(t, &hash(1), 1).is_none());
        assert!(c.get(t, &hash(2), 1).is_some());
        c.invalidate(Invalidation::User(alice));
        assert!(c.get(t, &hash(2), 1).is_none());
        assert!(c.get(t, &hash(3), 1).is_some());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_read_older_than_an_invalidation_is_not_cached() {
        let c = SessionCache::new(1000, 100);
        let t = TenantId::new();
        let id = identity(t, UserId::new());
        let before = c.epoch();
        // The session is revoked while the read is in flight.
        c.invalidate(Invalidation::Session(id.session_id));
        c.insert(hash(1), Arc::new(id), 0, 0, before);
        assert!(c.get(t, &hash(1), 1).is_none());
    }

    #[test]
    fn capacity_is_bounded() {
        let c = SessionCache::new(1000, 32);
        let t = TenantId::new();
        for n in 0..=255u8 {
            c.insert(
                hash(n),
                Arc::new(identity(t, UserId::new())),
                0,
                0,
                c.epoch(),
            );
        }
        assert!(c.len() <= 32, "{} entries", c.len());
        let indexed = c.by_session.lock().unwrap().len();
        assert_eq!(indexed, c.len(), "evicted entries leave the index too");
    }

    #[test]
    fn one_caller_claims_the_activity_write() {
        let c = SessionCache::new(1000, 10);
        let t = TenantId::new();
        c.insert(
            hash(1),
            Arc::new(identity(t, UserId::new())),
            50,
            0,
            c.epoch(),
        );
        assert!(c.claim_touch(&hash(1), 50, 70));
        assert!(!c.claim_touch(&hash(1), 50, 71), "second claimant");
        assert_eq!(c.get(t, &hash(1), 1).map(|h| h.last_seen_at), Some(70));
    }

    #[test]
    fn disabled_cache_keeps_nothing() {
        let c = SessionCache::new(0, 0);
        let t = TenantId::new();
        c.insert(
            hash(1),
            Arc::new(identity(t, UserId::new())),
            0,
            0,
            c.epoch(),
        );
        assert!(c.get(t, &hash(1), 1).is_none());
    }

    #[test]
    fn invalidation_wire_form_round_trips() {
        let s = Invalidation::Session(SessionId::new());
        let u = Invalidation::User(UserId::new());
        assert_eq!(Invalidation::decode(&s.encode()), Some(s));
        assert_eq!(Invalidation::decode(&u.encode()), Some(u));
        assert_eq!(Invalidation::decode("x:1"), None);
        assert_eq!(Invalidation::decode("s:not-a-uuid"), None);
    }
}
