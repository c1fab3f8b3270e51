//! Helpers shared by the fuzz targets: input chunking, owned WebSocket
//! events and a counting allocator.
#![deny(clippy::undocumented_unsafe_blocks)]

use herald::ws::Event;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting the bytes alive, so a target can check
/// what a parser's state really holds rather than what it says it holds.
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the counter is bookkeeping only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from `System` with `layout`; the caller upholds the rest.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Heap bytes currently allocated by the whole process.
pub fn live_bytes() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Cuts `data` into reads: chunk `i` is `sizes[i % sizes.len()]` bytes, a
/// size of 0 meaning "all the rest". Always yields at least one chunk (an
/// empty read when `data` is empty), so every parser sees one call.
pub fn chunks<'a>(data: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    loop {
        let size = match sizes.get(i % sizes.len().max(1)) {
            Some(&s) if s > 0 => (s as usize).min(rest.len()),
            _ => rest.len(),
        };
        let (head, tail) = rest.split_at(size);
        out.push(head);
        rest = tail;
        i += 1;
        if rest.is_empty() {
            return out;
        }
    }
}

/// A WebSocket event that outlives the decoder's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owned {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

impl Owned {
    pub fn from_event(e: &Event<'_>) -> Owned {
        match *e {
            Event::Text(t) => Owned::Text(t.to_owned()),
            Event::Binary(b) => Owned::Binary(b.to_vec()),
            Event::Ping(b) => Owned::Ping(b.to_vec()),
            Event::Pong(b) => Owned::Pong(b.to_vec()),
            Event::Close(c, r) => Owned::Close(c.map(|c| c.0), r.to_owned()),
        }
    }

    /// Payload bytes the event carries (for a close: code plus reason).
    pub fn payload_len(&self) -> usize {
        match self {
            Owned::Text(t) => t.len(),
            Owned::Binary(b) | Owned::Ping(b) | Owned::Pong(b) => b.len(),
            Owned::Close(c, r) => c.map_or(0, |_| 2) + r.len(),
        }
    }
}
