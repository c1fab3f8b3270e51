//! Where secrets come from: the file a flag names, else an environment
//! variable (for platforms that hand secrets over that way).

use herald::auth;
use std::path::Path;

/// The secrets in the file `flag` names, else in the environment variable
/// `var`, each at least `min_len` bytes; `None` when neither is set. An
/// error names the flag or the variable it came through.
pub fn load(
    (flag, file): (&str, Option<&Path>),
    var: &str,
    min_len: usize,
) -> Result<Option<Vec<Vec<u8>>>, String> {
    match (file, std::env::var(var)) {
        (Some(path), _) => auth::load_secrets(path, min_len)
            .map(Some)
            .map_err(|e| format!("{flag}: {e}")),
        (None, Ok(v)) => auth::check_secrets(auth::parse_secrets(&v), min_len)
            .map(Some)
            .map_err(|e| format!("{var}: {e}")),
        (None, Err(_)) => Ok(None),
    }
}
