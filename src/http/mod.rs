//! HTTP/1.1 request heads (push parser, no allocation) and response writing.
//!
//! Used by the WebSocket opening handshake and by the HTTP API listener.

pub mod conn;
mod head;
mod response;
mod target;

pub use head::{parse_head, Head, HttpError, MAX_HEADERS};
pub use response::{status_text, write_error, write_json_error, write_response};
pub(crate) use target::percent_decode;
pub use target::{forwarded_client, query_param, split_target};
