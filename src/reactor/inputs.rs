//! The parser state of each connection between reads, kept beside the
//! slots (one thin pointer per idle connection) so that an event can borrow
//! it while the application holds the `Context`.

use crate::http::conn::HttpState;
use crate::line::LineState;
use crate::sansio::Held;
use crate::ws::Partial;
use std::collections::HashMap;

/// A connection's parser state between reads: which one depends on its kind
/// and phase. Held as `Option<Box<Input>>`: one thin pointer per idle
/// connection, `None` while no input is pending.
pub(super) enum Input {
    /// WebSocket handshake bytes not yet forming a whole request head.
    Head(Vec<u8>),
    Ws(Partial),
    Lines(LineState),
    Http(HttpState),
}

impl Input {
    pub(super) fn heap_bytes(this: &Option<Box<Input>>) -> usize {
        match this.as_deref() {
            None => 0,
            Some(Input::Head(v)) => v.capacity() + 32,
            Some(Input::Ws(p)) => p.heap_bytes() + 8,
            Some(Input::Lines(l)) => l.heap_bytes() + 8,
            Some(Input::Http(h)) => h.heap_bytes() + 8,
        }
    }
}

macro_rules! held_as {
    ($t:ty, $variant:ident) => {
        impl Held<$t> for Option<Box<Input>> {
            fn get(&mut self) -> Option<&mut $t> {
                match self.as_deref_mut() {
                    Some(Input::$variant(x)) => Some(x),
                    _ => None,
                }
            }
            fn get_or_insert(&mut self) -> &mut $t {
                if !matches!(self.as_deref(), Some(Input::$variant(_))) {
                    *self = Some(Box::new(Input::$variant(<$t>::default())));
                }
                match self.as_deref_mut() {
                    Some(Input::$variant(x)) => x,
                    _ => unreachable!("the variant was just stored"),
                }
            }
            fn clear(&mut self) {
                *self = None;
            }
        }
    };
}

held_as!(Vec<u8>, Head);
held_as!(Partial, Ws);
held_as!(LineState, Lines);
held_as!(HttpState, Http);

/// Parser states by slot index, and the input of paused connections not
/// yet handed on.
#[derive(Default)]
pub(super) struct Inputs {
    states: Vec<Option<Box<Input>>>,
    /// The rest of the read a connection was paused in (`pause.rs`): at
    /// most one read buffer per paused connection, since a paused
    /// connection is not read.
    stashed: HashMap<u32, Vec<u8>>,
}

impl Inputs {
    pub(super) fn at(&mut self, idx: u32) -> &mut Option<Box<Input>> {
        let i = idx as usize;
        if i >= self.states.len() {
            self.states.resize_with(i + 1, || None);
        }
        &mut self.states[i]
    }

    /// Keeps `rest`, input of paused `idx` not handed on yet.
    pub(super) fn stash(&mut self, idx: u32, rest: &[u8], accounted: &mut usize) {
        if rest.is_empty() {
            return;
        }
        let kept = self.stashed.entry(idx).or_default();
        *accounted -= kept.capacity();
        kept.extend_from_slice(rest);
        *accounted += kept.capacity();
    }

    /// Takes the stashed input of `idx` (empty when there is none).
    pub(super) fn unstash(&mut self, idx: u32, accounted: &mut usize) -> Vec<u8> {
        let kept = self.stashed.remove(&idx).unwrap_or_default();
        *accounted -= kept.capacity();
        kept
    }

    /// Drops the state of `idx` and its stashed input, keeping the byte
    /// count in step.
    pub(super) fn clear_at(&mut self, idx: u32, accounted: &mut usize) {
        if let Some(slot) = self.states.get_mut(idx as usize) {
            *accounted -= Input::heap_bytes(slot);
            *slot = None;
        }
        if !self.stashed.is_empty() {
            drop(self.unstash(idx, accounted));
        }
    }
}
