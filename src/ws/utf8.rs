//! Incremental UTF-8 validation that fails at the first impossible byte,
//! even when a text message arrives in many fragments and partial reads.

/// Validator state: the bytes of a character cut at a chunk boundary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

/// The input can never become valid UTF-8, whatever follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// Checks the next chunk of a message. Returns an error as soon as the
    /// bytes seen so far cannot start any valid UTF-8 text.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            // Complete the cut character one byte at a time (at most 3 more).
            while self.pending_len > 0 {
                let Some((&b, rest)) = chunk.split_first() else {
                    return Ok(());
                };
                chunk = rest;
                self.pending[self.pending_len as usize] = b;
                self.pending_len += 1;
                match std::str::from_utf8(&self.pending[..self.pending_len as usize]) {
                    Ok(_) => self.pending_len = 0,
                    Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                    Err(_) => {}
                }
            }
        }
        match std::str::from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                // An incomplete but so-far valid character at the very end.
                let tail = &chunk[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// True when the text so far ends on a character boundary.
    pub fn is_complete(&self) -> bool {
        self.pending_len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_split_everywhere(bytes: &[u8]) -> (bool, bool) {
        // returns (valid as a whole, every split agrees)
        let whole = std::str::from_utf8(bytes).is_ok();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let mut v = Utf8Validator::default();
                let ok = v.feed(&bytes[..i]).is_ok()
                    && v.feed(&bytes[i..j]).is_ok()
                    && v.feed(&bytes[j..]).is_ok()
                    && v.is_complete();
                if ok != whole {
                    return (whole, false);
                }
            }
        }
        (whole, true)
    }

    #[test]
    fn agrees_with_std_on_every_split() {
        let cases: &[&[u8]] = &[
            "κόσμε".as_bytes(),
            "Hello-µ@ßöäüàá-UTF-8!!".as_bytes(),
            &[0xF0, 0x90, 0x80, 0x80],
            &[0xF4, 0x90, 0x80, 0x80],
            &[0xED, 0xA0, 0x80],
            &[0xC0, 0xAF],
            &[0xE0, 0x80, 0xAF],
            &[
                0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80,
                0x65,
            ],
            &[0xFF],
        ];
        for c in cases {
            let (_, agree) = check_split_everywhere(c);
            assert!(agree, "{c:x?}");
        }
    }

    #[test]
    fn fails_fast_before_the_message_ends() {
        let mut v = Utf8Validator::default();
        assert!(v.feed("κόσμε".as_bytes()).is_ok());
        // 0xF4 0x90 can never be valid (above U+10FFFF): fail on the second byte.
        assert!(v.feed(&[0xF4]).is_ok());
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
    }

    #[test]
    fn incomplete_end_is_not_complete() {
        let mut v = Utf8Validator::default();
        v.feed(&[0xE2, 0x82]).unwrap();
        assert!(!v.is_complete());
        v.feed(&[0xAC]).unwrap();
        assert!(v.is_complete());
    }
}
