//! A whole server-side connection: arbitrary bytes into one real herald push
//! server (WebSocket, text port and HTTP listeners, one reactor thread).
//! The server must survive (a panic in its thread aborts the process) and
//! keep delivering pushes to a bound witness client; WebSocket and HTTP
//! listeners answer with an HTTP response before anything else.
//!
//! Input: listener selector (0 WebSocket, 1 text port, 2 HTTP), an "upgrade
//! first" flag (bit 0: a valid WebSocket handshake precedes the rest), then
//! the bytes the client sends before half-closing.
#![no_main]

use herald_fuzz::live::live;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let server = live();
    if let [which, flags, bytes @ ..] = data {
        let reply = server.exchange(*which, flags & 1 != 0, bytes);
        // WebSocket and HTTP listeners answer with an HTTP response first.
        if which % 3 != 1 && reply.len() >= 9 {
            assert!(
                reply.starts_with(b"HTTP/1.1 "),
                "reply {:?}",
                String::from_utf8_lossy(&reply[..reply.len().min(200)])
            );
        }
    }
    server.check();
});
