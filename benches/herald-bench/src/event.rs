//! What the server sent, as the modes see it: the events a fleet reports,
//! how a client's connection ended, and the first reason a phase must stop.

use std::borrow::Cow;

/// How a connection ended.
#[derive(Debug)]
pub struct End {
    /// True when we asked for the close (a completed close handshake).
    pub requested: bool,
    pub why: Cow<'static, str>,
}

/// What the server sent, as seen by the modes.
pub enum Event<'a> {
    /// Client `idx` finished its opening handshake.
    Open(usize),
    /// A complete text or binary message for client `idx`.
    Message(usize, &'a [u8]),
    /// Client `idx` is gone (its socket is closed; the slot is Idle again).
    Closed(usize, End),
    /// One reply line from the text port (without its newline).
    Line(&'a [u8]),
    /// The text port connection ended.
    TextClosed(Cow<'static, str>),
}

impl Event<'_> {
    /// Keeps in `first` why a client or the text port ended, unless it
    /// already holds a reason: a phase stops on the first one and says it.
    pub fn note_end(&self, first: &mut Option<String>) {
        if first.is_some() {
            return;
        }
        *first = match self {
            Event::Closed(i, end) => Some(format!("connection {i}: {}", end.why)),
            Event::TextClosed(why) => Some(why.to_string()),
            _ => None,
        };
    }
}
