//! Who is bound to which uid: the uid map and the small-string `Uid`.
//!
//! Connections sharing a uid (tabs, devices) form an intrusive doubly linked
//! list through their slots (`prev`/`next` indices), so the map holds one
//! `u32` per uid and binding allocates nothing for uids up to 14 bytes.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

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

/// uid -> first connection of its list.
#[derive(Default)]
pub struct Hub {
    heads: HashMap<Uid, u32>,
    connections: usize,
}

impl Hub {
    /// Number of distinct uids online.
    pub fn uids(&self) -> usize {
        self.heads.len()
    }

    /// Number of bound connections.
    pub fn connections(&self) -> usize {
        self.connections
    }

    /// The first connection bound to `uid`.
    pub fn head(&self, uid: &str) -> Option<u32> {
        self.heads.get(uid).copied()
    }

    /// Bytes the map itself holds (buckets and heap uids), for the footprint report.
    pub fn heap_bytes(&self) -> usize {
        self.heads.capacity() * (std::mem::size_of::<(Uid, u32)>() + 1)
            + self.heads.keys().map(Uid::heap_bytes).sum::<usize>()
    }

    /// Binds slot `idx` to `uid`, adding it in front of that uid's list.
    /// The slot must not be bound already (call [`Hub::unbind`] first).
    pub fn bind<M: Member>(&mut self, slots: &mut [M], idx: u32, uid: &str) {
        let next = match self.heads.get_mut(uid) {
            Some(head) => std::mem::replace(head, idx),
            None => {
                self.heads.insert(Uid::new(uid), idx);
                NIL
            }
        };
        if next != NIL {
            let (_, nn) = slots[next as usize].links();
            slots[next as usize].set_links(idx, nn);
        }
        let m = &mut slots[idx as usize];
        m.set_links(NIL, next);
        // The slot keeps its own copy to find the list again on unbind.
        m.set_uid(Some(Uid::new(uid)));
        self.connections += 1;
    }

    /// Unbinds slot `idx` from its uid, if bound. Only this connection's
    /// binding goes: other connections of the same uid stay bound.
    pub fn unbind<M: Member>(&mut self, slots: &mut [M], idx: u32) {
        let Some(uid) = slots[idx as usize].uid().cloned() else {
            return;
        };
        let (prev, next) = slots[idx as usize].links();
        if prev != NIL {
            let (pp, _) = slots[prev as usize].links();
            slots[prev as usize].set_links(pp, next);
        } else if next != NIL {
            if let Some(h) = self.heads.get_mut(uid.as_str()) {
                *h = next;
            }
        } else {
            self.heads.remove(uid.as_str());
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
        let mut at = hub.head(uid).unwrap_or(NIL);
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
        assert_eq!(hub.head("u"), None);
        assert_eq!(hub.uids(), 1);
        hub.unbind(&mut slots, 1); // second unbind is a no-op
        assert_eq!(hub.connections(), 1);
        assert_eq!(members(&hub, &slots, "v"), vec![4]);
    }
}
