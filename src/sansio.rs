//! The two seams of every sans-IO connection: where its parser state is
//! held between reads ([`Held`]) and where its output goes ([`Output`]).
//!
//! An idle connection carries no parser state at all: each sans-IO parser
//! asks its [`Held`] for state only when a read ends inside a frame, a line
//! or a request head, and gives it back (`clear`) once it is between units.
//! The reactor implements `Held` over the one thin pointer a connection
//! slot keeps for whichever protocol it speaks; tests and fuzzers use a
//! plain `Option<Box<T>>`.

/// Storage for a parser's state between reads.
pub trait Held<T> {
    /// The state, if a unit is under way.
    fn get(&mut self) -> Option<&mut T>;
    /// The state, created empty when there is none.
    fn get_or_insert(&mut self) -> &mut T;
    /// Drops the state: the parser is between units.
    fn clear(&mut self);
}

impl<T: Default> Held<T> for Option<Box<T>> {
    fn get(&mut self) -> Option<&mut T> {
        self.as_deref_mut()
    }
    fn get_or_insert(&mut self) -> &mut T {
        self.get_or_insert_with(Box::default)
    }
    fn clear(&mut self) {
        *self = None;
    }
}

/// Where a connection's output bytes go: the reactor's send queue for the
/// connection (created on first use), or a plain `Vec` in tests.
pub trait Output {
    /// The buffer to append to.
    fn buf(&mut self) -> &mut Vec<u8>;
}

impl Output for Vec<u8> {
    fn buf(&mut self) -> &mut Vec<u8> {
        self
    }
}
