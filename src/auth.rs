//! Proofs: HS256 JSON Web Tokens that prove a WebSocket's uid, and the
//! shared tokens that lock the internal ports. Pure functions of their input
//! and the time given; the secrets come from files read by the caller.

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::Value;
use std::fmt;

/// Longest token accepted, in bytes. Tokens are checked before anything is
/// decoded, so a huge one costs one length comparison.
pub const MAX_TOKEN: usize = 4096;

/// Shortest HS256 key: RFC 7518 section 3.2 asks for at least the hash's
/// 256 bits.
pub const MIN_KEY: usize = 32;

/// Shortest API token accepted: long enough not to be guessed.
pub const MIN_API_TOKEN: usize = 16;

/// JWTs are base64url without padding (RFC 7515 section 2); padded input is
/// tolerated because some hand-written minting code leaves it.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a token was refused. The text is what the client is told (HTTP
/// reason or close reason); none of them says which key or secret was tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN`].
    TooLong,
    /// Not three base64url parts, or a part is not the JSON it must be.
    Malformed,
    /// `alg` is not exactly `HS256` (`none`, `HS512`, `RS256`, ...), or the
    /// header lists `crit` extensions herald does not implement.
    Algorithm,
    /// No configured key produced this signature.
    Signature,
    /// `exp` is missing or not a number.
    NoExpiry,
    /// `exp` has passed (beyond the leeway).
    Expired,
    /// `nbf` or `iat` is in the future (beyond the leeway).
    NotYetValid,
    /// `sub` is missing, empty or not a string.
    NoSubject,
    /// `aud` does not name the configured audience (or names one when
    /// none is configured, as RFC 7519 section 4.1.3 requires).
    Audience,
    /// `iss` is not the configured issuer.
    Issuer,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenError::TooLong => "token too long",
            TokenError::Malformed => "malformed token",
            TokenError::Algorithm => "token algorithm must be HS256",
            TokenError::Signature => "bad token signature",
            TokenError::NoExpiry => "token has no exp",
            TokenError::Expired => "token expired",
            TokenError::NotYetValid => "token not yet valid",
            TokenError::NoSubject => "token has no sub",
            TokenError::Audience => "token audience not accepted",
            TokenError::Issuer => "token issuer not accepted",
        })
    }
}

impl std::error::Error for TokenError {}

/// Claims checked beyond the signature.
#[derive(Clone, Debug, Default)]
pub struct TokenRules {
    /// Required `aud` (a string equal to it, or an array holding it).
    pub audience: Option<String>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Seconds of clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway_s: u64,
}

/// What a valid token proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The uid (`sub`).
    pub sub: String,
    /// When the token stops being accepted (Unix seconds).
    pub exp: u64,
    /// The topics a herald.v1 client may subscribe to itself (`topics`: a
    /// list of names, or of prefixes ending in `*`); empty without it.
    pub topics: Vec<String>,
}

impl Claims {
    /// Whether the `topics` claim allows topic `name`.
    pub fn allows(patterns: &[impl AsRef<str>], name: &str) -> bool {
        patterns.iter().any(|p| match p.as_ref().strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => p.as_ref() == name,
        })
    }
}

/// Checks HS256 tokens against one or more keys (two during a rotation).
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<Vec<u8>>,
    rules: TokenRules,
}

impl fmt::Debug for Verifier {
    // Never the keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &self.keys.len())
            .field("rules", &self.rules)
            .finish()
    }
}

impl Verifier {
    /// A verifier accepting tokens signed with any of `keys`.
    pub fn new(keys: Vec<Vec<u8>>, rules: TokenRules) -> Verifier {
        Verifier { keys, rules }
    }

    /// Replaces the keys (a rotation); the rules stay.
    pub fn set_keys(&mut self, keys: Vec<Vec<u8>>) {
        self.keys = keys;
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Verifies `token` at Unix time `now`. The signature is checked before
    /// the claims are parsed, so forged payloads are never interpreted.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN {
            return Err(TokenError::TooLong);
        }
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(s64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header = decode_json(h64)?;
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return Err(TokenError::Algorithm);
        }
        if header.get("crit").is_some() {
            return Err(TokenError::Algorithm);
        }
        let sig = B64URL.decode(s64).map_err(|_| TokenError::Malformed)?;
        let sig: [u8; 32] = sig.try_into().map_err(|_| TokenError::Signature)?;
        let signed = &token.as_bytes()[..h64.len() + 1 + p64.len()];
        // Every key is tried, so the time taken does not say which matched.
        let mut good = false;
        for key in &self.keys {
            good |= hmac_sha256::HMAC::verify(signed, key, &sig);
        }
        if !good {
            return Err(TokenError::Signature);
        }
        let claims = decode_json(p64)?;
        self.check_claims(&claims, now)
    }

    fn check_claims(&self, c: &Value, now: u64) -> Result<Claims, TokenError> {
        let leeway = self.rules.leeway_s as f64;
        let now = now as f64;
        let time = |name: &str| -> Result<Option<f64>, TokenError> {
            match c.get(name) {
                None => Ok(None),
                Some(v) => v.as_f64().map(Some).ok_or(TokenError::Malformed),
            }
        };
        let exp = time("exp")?.ok_or(TokenError::NoExpiry)?;
        // RFC 7519 4.1.4: not accepted "on or after" exp.
        if now >= exp + leeway {
            return Err(TokenError::Expired);
        }
        if time("nbf")?.is_some_and(|nbf| now + leeway < nbf) {
            return Err(TokenError::NotYetValid);
        }
        if time("iat")?.is_some_and(|iat| now + leeway < iat) {
            return Err(TokenError::NotYetValid);
        }
        let aud_ok = match (&self.rules.audience, c.get("aud")) {
            (None, None) => true,
            (None, Some(_)) | (Some(_), None) => false,
            (Some(want), Some(Value::String(a))) => a == want,
            (Some(want), Some(Value::Array(list))) => {
                list.iter().any(|a| a.as_str() == Some(want.as_str()))
            }
            (Some(_), Some(_)) => false,
        };
        if !aud_ok {
            return Err(TokenError::Audience);
        }
        if let Some(want) = &self.rules.issuer {
            if c.get("iss").and_then(Value::as_str) != Some(want.as_str()) {
                return Err(TokenError::Issuer);
            }
        }
        let sub = match c.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(TokenError::NoSubject),
        };
        let topics = match c.get("topics") {
            None => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|t| t.as_str().map(String::from))
                .collect::<Option<_>>()
                .ok_or(TokenError::Malformed)?,
            Some(_) => return Err(TokenError::Malformed),
        };
        Ok(Claims {
            sub,
            exp: exp as u64,
            topics,
        })
    }
}

fn decode_json(part: &str) -> Result<Value, TokenError> {
    let bytes = B64URL.decode(part).map_err(|_| TokenError::Malformed)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(TokenError::Malformed),
    }
}

/// Signs `claims` (a JSON object) with `key` as an HS256 JWT: for tests,
/// examples and the README's "what a backend does", not used by the server.
pub fn mint(claims: &str, key: &[u8]) -> String {
    let head = B64URL.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = B64URL.encode(claims.as_bytes());
    let signed = format!("{head}.{body}");
    let sig = hmac_sha256::HMAC::mac(signed.as_bytes(), key);
    format!("{signed}.{}", B64URL.encode(sig))
}

/// Shared secrets for the internal ports (text port and HTTP API): one or
/// two (during a rotation) tokens, compared in constant time.
#[derive(Clone, Default)]
pub struct ApiTokens {
    digests: Vec<[u8; 32]>,
}

impl fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiTokens({})", self.digests.len())
    }
}

impl ApiTokens {
    pub fn new(tokens: &[Vec<u8>]) -> ApiTokens {
        ApiTokens {
            digests: tokens.iter().map(|t| hmac_sha256::Hash::hash(t)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// True when `given` is one of the tokens. Digests are compared, so
    /// neither the content nor the length of a token leaks through timing.
    pub fn accepts(&self, given: &[u8]) -> bool {
        let d = hmac_sha256::Hash::hash(given);
        let mut good = false;
        for want in &self.digests {
            good |= same_digest(&d, want);
        }
        good
    }
}

/// Constant-time equality of two digests.
fn same_digest(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Reads the secrets in `path` (see [`parse_secrets`]), each at least
/// `min_len` bytes. The error says which file and why, never a secret.
pub fn load_secrets(path: &std::path::Path, min_len: usize) -> Result<Vec<Vec<u8>>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    check_secrets(parse_secrets(&text), min_len).map_err(|e| format!("{}: {e}", path.display()))
}

/// Refuses an empty list and secrets shorter than `min_len` bytes.
pub fn check_secrets(secrets: Vec<Vec<u8>>, min_len: usize) -> Result<Vec<Vec<u8>>, String> {
    if secrets.is_empty() {
        return Err("no secret in it (one per line)".into());
    }
    if let Some(short) = secrets.iter().find(|s| s.len() < min_len) {
        return Err(format!(
            "a secret of {} bytes is too short (at least {min_len})",
            short.len()
        ));
    }
    Ok(secrets)
}

/// Reads a secrets file: one secret per line (two lines while rotating),
/// surrounding whitespace and blank lines ignored.
pub fn parse_secrets(text: &str) -> Vec<Vec<u8>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.as_bytes().to_vec())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: u64 = 1_800_000_000;

    fn verifier() -> Verifier {
        Verifier::new(vec![KEY.to_vec()], TokenRules::default())
    }

    fn claims(extra: &str) -> String {
        format!(r#"{{"sub":"uid1","exp":{}{extra}}}"#, NOW + 60)
    }

    #[test]
    fn a_valid_token_proves_its_sub() {
        let t = mint(&claims(""), KEY);
        let c = verifier().verify(&t, NOW).unwrap();
        assert_eq!(c.sub, "uid1");
        assert_eq!(c.exp, NOW + 60);
    }

    #[test]
    fn a_known_pyjwt_token_verifies() {
        // jwt.encode({"sub": "uid1", "exp": 4102444800}, KEY, algorithm="HS256"),
        // PyJWT 2.15.1; tests/auth.rs runs PyJWT itself as well.
        let t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1aWQxIiwiZXhwIjo0MTAyNDQ0ODAwfQ.A_aKa_3aGLVnV10vT4VceLExBzY9aBp7kCiFWw6jnOc";
        assert_eq!(verifier().verify(t, NOW).unwrap().sub, "uid1");
        assert_eq!(mint(r#"{"sub":"uid1","exp":4102444800}"#, KEY), t);
    }

    #[test]
    fn forged_or_foreign_tokens_are_refused() {
        let v = verifier();
        let good = mint(&claims(""), KEY);
        let other = mint(&claims(""), b"another key, also 32 bytes long!");
        assert_eq!(v.verify(&other, NOW), Err(TokenError::Signature));
        // Payload swapped under a valid signature.
        let (h, rest) = good.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let evil = B64URL.encode(br#"{"sub":"admin","exp":4102444800}"#);
        assert_eq!(
            v.verify(&format!("{h}.{evil}.{sig}"), NOW),
            Err(TokenError::Signature)
        );
        for alg in ["none", "HS512", "RS256", "hs256", "HS256 "] {
            let h = B64URL.encode(format!(r#"{{"alg":"{alg}"}}"#));
            let b = B64URL.encode(claims(""));
            let signed = format!("{h}.{b}");
            let s = B64URL.encode(hmac_sha256::HMAC::mac(signed.as_bytes(), KEY));
            assert_eq!(
                v.verify(&format!("{signed}.{s}"), NOW),
                Err(TokenError::Algorithm),
                "{alg}"
            );
            assert_eq!(
                v.verify(&format!("{signed}."), NOW),
                Err(TokenError::Algorithm)
            );
        }
        assert_eq!(v.verify("a.b", NOW), Err(TokenError::Malformed));
        assert_eq!(v.verify("a.b.c.d", NOW), Err(TokenError::Malformed));
        assert_eq!(v.verify("!!.e30.AA", NOW), Err(TokenError::Malformed));
        let not_json = format!("{}.e30.AA", B64URL.encode("{nope"));
        assert_eq!(v.verify(&not_json, NOW), Err(TokenError::Malformed));
        let huge = "a".repeat(MAX_TOKEN + 1);
        assert_eq!(v.verify(&huge, NOW), Err(TokenError::TooLong));
    }

    #[test]
    fn time_claims_with_leeway() {
        let v = verifier();
        let exp = |e: u64| mint(&format!(r#"{{"sub":"u","exp":{e}}}"#), KEY);
        assert_eq!(v.verify(&exp(NOW), NOW), Err(TokenError::Expired));
        assert_eq!(v.verify(&exp(NOW - 100), NOW), Err(TokenError::Expired));
        let no_exp = mint(r#"{"sub":"u"}"#, KEY);
        assert_eq!(v.verify(&no_exp, NOW), Err(TokenError::NoExpiry));
        let nbf = mint(&claims(&format!(r#","nbf":{}"#, NOW + 30)), KEY);
        assert_eq!(v.verify(&nbf, NOW), Err(TokenError::NotYetValid));
        let iat = mint(&claims(&format!(r#","iat":{}"#, NOW + 30)), KEY);
        assert_eq!(v.verify(&iat, NOW), Err(TokenError::NotYetValid));
        let lenient = Verifier::new(
            vec![KEY.to_vec()],
            TokenRules {
                leeway_s: 60,
                ..TokenRules::default()
            },
        );
        assert!(lenient.verify(&nbf, NOW).is_ok());
        assert!(lenient.verify(&exp(NOW - 30), NOW).is_ok());
        assert!(lenient.verify(&exp(NOW - 61), NOW).is_err());
        let bad_type = mint(r#"{"sub":"u","exp":"soon"}"#, KEY);
        assert_eq!(v.verify(&bad_type, NOW), Err(TokenError::Malformed));
    }

    #[test]
    fn audience_issuer_and_subject() {
        let strict = Verifier::new(
            vec![KEY.to_vec()],
            TokenRules {
                audience: Some("herald".into()),
                issuer: Some("https://app.example".into()),
                leeway_s: 0,
            },
        );
        let ok = claims(r#","aud":["x","herald"],"iss":"https://app.example""#);
        assert!(strict.verify(&mint(&ok, KEY), NOW).is_ok());
        let wrong_aud = claims(r#","aud":"other","iss":"https://app.example""#);
        assert_eq!(
            strict.verify(&mint(&wrong_aud, KEY), NOW),
            Err(TokenError::Audience)
        );
        let wrong_iss = claims(r#","aud":"herald","iss":"evil""#);
        assert_eq!(
            strict.verify(&mint(&wrong_iss, KEY), NOW),
            Err(TokenError::Issuer)
        );
        // An audience herald was not told to accept is refused (RFC 7519).
        let v = verifier();
        let aud = mint(&claims(r#","aud":"herald""#), KEY);
        assert_eq!(v.verify(&aud, NOW), Err(TokenError::Audience));
        let no_sub = mint(&format!(r#"{{"exp":{}}}"#, NOW + 9), KEY);
        assert_eq!(v.verify(&no_sub, NOW), Err(TokenError::NoSubject));
        let empty = mint(&format!(r#"{{"sub":"","exp":{}}}"#, NOW + 9), KEY);
        assert_eq!(v.verify(&empty, NOW), Err(TokenError::NoSubject));
    }

    #[test]
    fn either_key_during_a_rotation() {
        let new = b"the new key, thirty-two bytes ok".to_vec();
        let mut v = Verifier::new(vec![KEY.to_vec(), new.clone()], TokenRules::default());
        assert!(v.verify(&mint(&claims(""), KEY), NOW).is_ok());
        assert!(v.verify(&mint(&claims(""), &new), NOW).is_ok());
        v.set_keys(vec![new]);
        assert_eq!(
            v.verify(&mint(&claims(""), KEY), NOW),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn api_tokens_and_secret_files() {
        let keys = parse_secrets("  old-token \n\nnew-token\r\n");
        assert_eq!(keys, vec![b"old-token".to_vec(), b"new-token".to_vec()]);
        let t = ApiTokens::new(&keys);
        assert!(t.accepts(b"old-token"));
        assert!(t.accepts(b"new-token"));
        assert!(!t.accepts(b"new-toke"));
        assert!(!t.accepts(b""));
        assert!(!ApiTokens::new(&[]).accepts(b""));
        assert_eq!(format!("{t:?}"), "ApiTokens(2)");
        assert!(!format!("{:?}", verifier()).contains("0123"));
    }

    #[test]
    fn a_topics_claim_lists_names_and_prefixes() {
        let v = Verifier::new(vec![KEY.to_vec()], TokenRules::default());
        let t = mint(
            &format!(
                r#"{{"sub":"u","exp":{},"topics":["news","room.*"]}}"#,
                NOW + 60
            ),
            KEY,
        );
        let c = v.verify(&t, NOW).unwrap();
        assert_eq!(c.topics, ["news", "room.*"]);
        for (name, ok) in [
            ("news", true),
            ("room.7", true),
            ("room", false),
            ("new", false),
        ] {
            assert_eq!(Claims::allows(&c.topics, name), ok, "{name}");
        }
        let none = mint(&format!(r#"{{"sub":"u","exp":{}}}"#, NOW + 60), KEY);
        assert!(v.verify(&none, NOW).unwrap().topics.is_empty());
        for bad in [r#""news""#, "[1]", r#"{"a":1}"#] {
            let t = mint(
                &format!(r#"{{"sub":"u","exp":{},"topics":{bad}}}"#, NOW + 60),
                KEY,
            );
            assert_eq!(v.verify(&t, NOW), Err(TokenError::Malformed), "{bad}");
        }
    }
}
