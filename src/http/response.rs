//! Responses: status lines, headers and bodies appended to a connection's output.

use std::fmt::Write as _;

/// Appends a complete response with a body. `extra` is raw header lines, each
/// ending in CRLF.
pub fn write_response(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    extra: &str,
    body: &[u8],
    keep_alive: bool,
) {
    let mut head = String::with_capacity(160);
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}{}\r\n",
        status,
        status_text(status),
        content_type,
        body.len(),
        extra,
        if keep_alive {
            ""
        } else {
            "Connection: close\r\n"
        }
    );
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
}

/// Appends a plain-text error response that closes the connection.
pub fn write_error(out: &mut Vec<u8>, status: u16, reason: &str, extra: &str) {
    let body = format!("{reason}\n");
    write_response(
        out,
        status,
        "text/plain; charset=utf-8",
        extra,
        body.as_bytes(),
        false,
    );
}

/// An error of the HTTP API: the same status, with a JSON body
/// `{"error":"reason"}` like every other API answer.
pub fn write_json_error(out: &mut Vec<u8>, status: u16, reason: &str) {
    let body = format!("{{\"error\":{}}}", serde_json::Value::from(reason));
    write_response(out, status, "application/json", "", body.as_bytes(), false);
}

pub fn status_text(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}
