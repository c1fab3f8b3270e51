//! Where secrets come from: the file a flag names, else an environment
//! variable (for platforms that hand secrets over that way).

use herald::auth;
use std::path::Path;

/// The secrets in `file`, else in the environment variable `var`, each at
/// least `min_len` bytes; `None` when neither is set.
pub fn load(
    file: Option<&Path>,
    var: &str,
    min_len: usize,
) -> Result<Option<Vec<Vec<u8>>>, String> {
    match (file, std::env::var(var)) {
        (Some(path), _) => auth::load_secrets(path, min_len).map(Some),
        (None, Ok(v)) => auth::check_secrets(auth::parse_secrets(&v), min_len)
            .map(Some)
            .map_err(|e| format!("{var}: {e}")),
        (None, Err(_)) => Ok(None),
    }
}
