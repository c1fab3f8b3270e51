//! Commands out: RESP arrays of bulk strings, written straight into the
//! caller's output buffer.

/// Appends one command as a RESP array of bulk strings:
/// `*N\r\n$len\r\narg\r\n...`. Arguments are binary-safe.
pub fn encode(out: &mut Vec<u8>, args: &[&[u8]]) {
    put(out, args.len(), args.iter().copied());
}

/// Appends the command `name` with `args` (`SUBSCRIBE` and its channels)
/// without gathering them into one slice first.
pub fn encode_command(out: &mut Vec<u8>, name: &[u8], args: &[&[u8]]) {
    put(
        out,
        args.len() + 1,
        std::iter::once(name).chain(args.iter().copied()),
    );
}

/// The bytes [`encode`] appends for `args`.
pub fn encoded_len(args: &[&[u8]]) -> usize {
    size(args.len(), args.iter().copied())
}

fn size<'b>(n: usize, args: impl Iterator<Item = &'b [u8]>) -> usize {
    args.fold(header_len(n), |total, a| {
        total.saturating_add(header_len(a.len()) + a.len() + 2)
    })
}

/// `*N\r\n` or `$N\r\n`.
fn header_len(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1) + 3
}

fn put<'b>(out: &mut Vec<u8>, n: usize, args: impl Iterator<Item = &'b [u8]> + Clone) {
    out.reserve(size(n, args.clone()));
    header(out, b'*', n);
    for arg in args {
        header(out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn header(out: &mut Vec<u8>, kind: u8, mut n: usize) {
    // A u64 has at most 20 decimal digits.
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push(kind);
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}
