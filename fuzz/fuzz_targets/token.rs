//! The uid-token verifier over arbitrary input: never panics, and what it
//! accepts is what it promises. Half of the inputs are signed with the
//! verifier's key first, so that the claim checks behind the signature are
//! reached with arbitrary (and arbitrarily broken) headers and payloads.
//!
//! Input: one mode byte (bit 0: sign the rest as `header.payload`; bit 1:
//! require an audience and issuer; bits 2-7: leeway), then the token bytes.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use herald::auth::{TokenError, TokenRules, Verifier, MAX_TOKEN};
use libfuzzer_sys::fuzz_target;

const KEY: &[u8] = b"fuzzing key, thirty-two bytes ok";
const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let strict = mode & 2 != 0;
    let rules = TokenRules {
        audience: strict.then(|| "herald".to_string()),
        issuer: strict.then(|| "app".to_string()),
        leeway_s: (mode >> 2) as u64,
    };
    let v = Verifier::new(vec![KEY.to_vec()], rules.clone());
    let text = String::from_utf8_lossy(rest);
    let token = if mode & 1 != 0 {
        let sig = hmac_sha256::HMAC::mac(text.as_bytes(), KEY);
        format!("{text}.{}", B64.encode(sig))
    } else {
        text.into_owned()
    };
    match v.verify(&token, NOW) {
        Ok(c) => {
            assert!(token.len() <= MAX_TOKEN);
            assert!(!c.sub.is_empty());
            let until = c.exp.saturating_add(rules.leeway_s).saturating_add(1);
            assert!(until > NOW, "expired token accepted: {c:?}");
            // Accepted means signed by the key: no other key accepts it.
            let other = Verifier::new(vec![b"another key, thirty-two bytes ok".to_vec()], rules);
            assert_eq!(other.verify(&token, NOW), Err(TokenError::Signature));
        }
        Err(TokenError::TooLong) => assert!(token.len() > MAX_TOKEN),
        Err(_) => {}
    }
});
