//! Who is bound to which uid: the uid map and the small-string `Uid`.
//!
//! Connections sharing a uid (tabs, devices) form an intrusive doubly linked
//! list through their slots (`prev`/`next` indices). The map is a table of
//! those lists' first slots, 4 bytes a bucket: each uid is stored once, in
//! its slots, and the table reads keys through them. Binding allocates
//! nothing for uids up to 14 bytes.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash, Hasher};

/// Sentinel for "no slot" in the links.
pub const NIL: u32 = u32::MAX;

const INLINE: usize = 14;

/// A user id in 16 bytes: up to 14 bytes inline (no heap allocation), longer
/// ones behind one thin pointer.
#[derive(Clone)]
pub enum Uid {
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    // Box<Box<str>> on purpose: a thin pointer keeps the enum at 16 bytes
    // instead of 24, in every slot and every map entry.
    #[allow(clippy::redundant_allocation)]
    Heap(Box<Box<str>>),
}

impl Uid {
    pub fn new(s: &str) -> Uid {
        if s.len() <= INLINE {
            let mut bytes = [0u8; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Uid::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Uid::Heap(Box::new(s.into()))
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            // SAFETY: `Uid::new` is the only constructor and copies whole
            // `&str` bytes, so `bytes[..len]` is valid UTF-8; checking it again
            // on every hash and comparison would cost the push path.
            Uid::Inline { len, bytes } => unsafe {
                std::str::from_utf8_unchecked(&bytes[..*len as usize])
            },
            Uid::Heap(s) => s,
        }
    }

    /// Heap bytes owned by this uid (0 when inline).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Uid::Inline { .. } => 0,
            Uid::Heap(s) => s.len() + std::mem::size_of::<Box<str>>(),
        }
    }
}

impl PartialEq for Uid {
    fn eq(&self, other: &Uid) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for Uid {}

impl Hash for Uid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash exactly like `str` for the `Borrow<str>` lookups.
        self.as_str().hash(state)
    }
}

impl Borrow<str> for Uid {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Debug for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// The per-connection half of a binding, stored in the connection's slot.
pub trait Member {
    fn uid(&self) -> Option<&Uid>;
    fn set_uid(&mut self, uid: Option<Uid>);
    fn links(&self) -> (u32, u32);
    fn set_links(&mut self, prev: u32, next: u32);
}

/// uid -> first connection of its list: open addressing with linear probing
/// over slot indices (`NIL` is an empty bucket), at most 3/4 full, with
/// backward-shift deletion (no tombstones). Keys are hashed with std's
/// randomly keyed SipHash, so clients choosing uids cannot aim collisions.
///
/// Against `HashMap<Uid, u32>` (24-byte entries plus a control byte) this is
/// 4 bytes a bucket: at 19,000 uids, 7 bytes per uid instead of 43.
#[derive(Default)]
pub struct Hub {
    table: Vec<u32>,
    uids: usize,
    connections: usize,
    keys: RandomState,
}

/// Buckets of the first table; it doubles from there.
const FIRST_TABLE: usize = 16;

impl Hub {
    /// Number of distinct uids online.
    pub fn uids(&self) -> usize {
        self.uids
    }

    /// Number of bound connections.
    pub fn connections(&self) -> usize {
        self.connections
    }

    /// The first connection bound to `uid`.
    pub fn head<M: Member>(&self, slots: &[M], uid: &str) -> Option<u32> {
        self.find(slots, uid).ok().map(|b| self.table[b])
    }

    /// Bytes the map itself holds, for the footprint report (the uids are
    /// the slots' own).
    pub fn heap_bytes(&self) -> usize {
        self.table.capacity() * std::mem::size_of::<u32>()
    }

    fn home(&self, uid: &str) -> usize {
        self.keys.hash_one(uid) as usize & (self.table.len() - 1)
    }

    fn key_of<M: Member>(slots: &[M], idx: u32) -> &str {
        slots[idx as usize].uid().map_or("", Uid::as_str)
    }

    /// `Ok(bucket)` holding `uid`'s first slot, or `Err(empty bucket)` where
    /// it would go (`Err(0)` while there is no table).
    fn find<M: Member>(&self, slots: &[M], uid: &str) -> Result<usize, usize> {
        if self.table.is_empty() {
            return Err(0);
        }
        let mask = self.table.len() - 1;
        let mut b = self.home(uid);
        loop {
            let at = self.table[b];
            if at == NIL {
                return Err(b);
            }
            if Self::key_of(slots, at) == uid {
                return Ok(b);
            }
            b = (b + 1) & mask;
        }
    }

    /// Adds `idx` (whose slot holds the uid already) as a new uid's list.
    fn insert<M: Member>(&mut self, slots: &[M], idx: u32) {
        if (self.uids + 1) * 4 > self.table.len() * 3 {
            self.grow(slots);
        }
        self.place(slots, idx);
        self.uids += 1;
    }

    /// Puts `idx` in the first empty bucket from its uid's home on.
    fn place<M: Member>(&mut self, slots: &[M], idx: u32) {
        let mask = self.table.len() - 1;
        let mut b = self.home(Self::key_of(slots, idx));
        while self.table[b] != NIL {
            b = (b + 1) & mask;
        }
        self.table[b] = idx;
    }

    fn grow<M: Member>(&mut self, slots: &[M]) {
        let size = (self.table.len() * 2).max(FIRST_TABLE);
        let old = std::mem::replace(&mut self.table, vec![NIL; size]);
        for at in old.into_iter().filter(|&at| at != NIL) {
            self.place(slots, at);
        }
    }

    /// Empties `bucket` and shifts back the entries after it that probed
    /// past it, so that every entry stays reachable from its home bucket.
    fn remove<M: Member>(&mut self, slots: &[M], bucket: usize) {
        let mask = self.table.len() - 1;
        let mut hole = bucket;
        self.table[hole] = NIL;
        let mut b = (hole + 1) & mask;
        while self.table[b] != NIL {
            let at = self.table[b];
            let home = self.home(Self::key_of(slots, at));
            // `at` may fill the hole if the hole lies on its probe path,
            // from its home up to `b`.
            if (b.wrapping_sub(home) & mask) >= (b.wrapping_sub(hole) & mask) {
                self.table[hole] = at;
                self.table[b] = NIL;
                hole = b;
            }
            b = (b + 1) & mask;
        }
        self.uids -= 1;
    }

    /// Binds slot `idx` to `uid`, adding it in front of that uid's list.
    /// The slot must not be bound already (call [`Hub::unbind`] first).
    pub fn bind<M: Member>(&mut self, slots: &mut [M], idx: u32, uid: &str) {
        let next = match self.find(slots, uid) {
            Ok(b) => std::mem::replace(&mut self.table[b], idx),
            Err(_) => NIL,
        };
        if next != NIL {
            let (_, nn) = slots[next as usize].links();
            slots[next as usize].set_links(idx, nn);
        }
        let m = &mut slots[idx as usize];
        m.set_links(NIL, next);
        m.set_uid(Some(Uid::new(uid)));
        if next == NIL {
            self.insert(slots, idx);
        }
        self.connections += 1;
    }

    /// Unbinds slot `idx` from its uid, if bound. Only this connection's
    /// binding goes: other connections of the same uid stay bound.
    pub fn unbind<M: Member>(&mut self, slots: &mut [M], idx: u32) {
        if slots[idx as usize].uid().is_none() {
            return;
        }
        let (prev, next) = slots[idx as usize].links();
        if prev != NIL {
            let (pp, _) = slots[prev as usize].links();
            slots[prev as usize].set_links(pp, next);
        } else if let Ok(b) = self.find(slots, Self::key_of(slots, idx)) {
            // `idx` heads its list: its successor (same uid) takes over the
            // bucket, or the uid goes.
            if next != NIL {
                self.table[b] = next;
            } else {
                self.remove(slots, b);
            }
        }
        if next != NIL {
            let (_, nn) = slots[next as usize].links();
            slots[next as usize].set_links(prev, nn);
        }
        let m = &mut slots[idx as usize];
        m.set_links(NIL, NIL);
        m.set_uid(None);
        self.connections -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default, Clone)]
    struct S {
        uid: Option<Uid>,
        prev: u32,
        next: u32,
    }
    impl Member for S {
        fn uid(&self) -> Option<&Uid> {
            self.uid.as_ref()
        }
        fn set_uid(&mut self, uid: Option<Uid>) {
            self.uid = uid;
        }
        fn links(&self) -> (u32, u32) {
            (self.prev, self.next)
        }
        fn set_links(&mut self, prev: u32, next: u32) {
            self.prev = prev;
            self.next = next;
        }
    }

    fn members(hub: &Hub, slots: &[S], uid: &str) -> Vec<u32> {
        let mut v = Vec::new();
        let mut at = hub.head(slots, uid).unwrap_or(NIL);
        while at != NIL {
            v.push(at);
            at = slots[at as usize].next;
        }
        v.sort();
        v
    }

    #[test]
    fn uids_inline_and_heap() {
        assert!(matches!(Uid::new("uid1"), Uid::Inline { .. }));
        assert!(matches!(Uid::new(&"x".repeat(15)), Uid::Heap(_)));
        assert!(matches!(Uid::new(&"x".repeat(14)), Uid::Inline { .. }));
        assert_eq!(Uid::new(&"é".repeat(7)).as_str(), "é".repeat(7));
        assert_eq!(Uid::new(&"é".repeat(11)).as_str(), "é".repeat(11));
        assert_eq!(std::mem::size_of::<Option<Uid>>(), 16);
    }

    #[test]
    fn several_connections_per_uid_and_unbinding_one_keeps_the_others() {
        let mut slots = vec![S::default(); 5];
        let mut hub = Hub::default();
        for i in 0..4 {
            hub.bind(&mut slots, i, "u");
        }
        hub.bind(&mut slots, 4, "v");
        assert_eq!(hub.uids(), 2);
        assert_eq!(hub.connections(), 5);
        for gone in [2, 3, 0] {
            hub.unbind(&mut slots, gone);
        }
        assert_eq!(members(&hub, &slots, "u"), vec![1]);
        hub.unbind(&mut slots, 1);
        assert_eq!(hub.head(&slots, "u"), None);
        assert_eq!(hub.uids(), 1);
        hub.unbind(&mut slots, 1); // second unbind is a no-op
        assert_eq!(hub.connections(), 1);
        assert_eq!(members(&hub, &slots, "v"), vec![4]);
    }

    #[test]
    fn the_table_agrees_with_a_model_through_binds_unbinds_and_growth() {
        // Random binds and unbinds over 3,000 slots and 700 uids (many
        // collisions and shifted deletions), checked after every step
        // against a plain map of who is bound to what.
        let n = 3000;
        let mut slots = vec![S::default(); n];
        let mut hub = Hub::default();
        let mut model: Vec<Option<String>> = vec![None; n];
        let mut rng: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || crate::xorshift::next(&mut rng);
        for step in 0..60_000 {
            let idx = (next() % n as u64) as u32;
            if next() % 3 == 0 {
                hub.unbind(&mut slots, idx);
                model[idx as usize] = None;
            } else {
                let uid = format!("user-{}", next() % 700);
                hub.unbind(&mut slots, idx);
                hub.bind(&mut slots, idx, &uid);
                model[idx as usize] = Some(uid);
            }
            if step % 997 == 0 || step > 59_900 {
                let mut by_uid: std::collections::HashMap<&str, Vec<u32>> = Default::default();
                for (i, u) in model.iter().enumerate() {
                    if let Some(u) = u {
                        by_uid.entry(u).or_default().push(i as u32);
                    }
                }
                assert_eq!(hub.uids(), by_uid.len(), "step {step}");
                assert_eq!(hub.connections(), model.iter().flatten().count());
                for u in 0..700 {
                    let uid = format!("user-{u}");
                    let want = by_uid.get(uid.as_str()).cloned().unwrap_or_default();
                    assert_eq!(members(&hub, &slots, &uid), want, "step {step} {uid}");
                }
            }
        }
        assert!(hub.table.len() * 3 >= hub.uids() * 4);
        assert!(
            hub.heap_bytes() <= 4 * 1024,
            "700 uids fit in 1,024 buckets"
        );
    }
}
