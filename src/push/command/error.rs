//! Why a text-port line was refused, and the nesting bound of the scanner.

/// Deepest nesting accepted; deeper input is refused, not recursed into.
pub const MAX_DEPTH: usize = 64;

/// Why a line was refused; `Display` gives the text after `error `.
#[derive(Debug, PartialEq, Eq)]
pub enum CommandError {
    NotUtf8,
    Malformed(&'static str, usize),
    NotObject,
    NoTarget,
    BadUid(&'static str),
    EmptyUid,
    Ambiguous,
    /// `"uids"` is not a list.
    UidsNotList,
    /// `"uids"` is an empty list.
    NoUids,
    /// `"all"` or `"count"` is valid JSON but not `true`.
    NotTrue(&'static str),
    /// `{"auth":...}` and nothing to do: this herald asks for no API token.
    AuthNotNeeded,
    /// A topic field that is not a topic name.
    BadTopic(&'static str),
    /// `"join"` or `"leave"` without `"uid"` or `"uids"`.
    NoUidToJoin,
    /// `"limit"` is not a positive whole number.
    BadLimit,
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandError::NotUtf8 => f.write_str("line is not valid UTF-8"),
            CommandError::Malformed(what, at) => write!(f, "malformed JSON: {what} at byte {at}"),
            CommandError::NotObject => f.write_str("expected a JSON object"),
            CommandError::NoTarget => f.write_str(
                "missing \"uid\" (or \"uids\", \"all\", \"topic\", \"online\", \"count\", \"join\", \"leave\", \"drop\", \"presence\", \"members\", \"kick\")",
            ),
            CommandError::BadUid(field) => write!(f, "\"{field}\" must be a string or a number"),
            CommandError::EmptyUid => f.write_str("empty uid"),
            CommandError::Ambiguous => f.write_str(
                "use exactly one of \"uid\", \"uids\", \"all\", \"topic\", \"online\", \"count\", \"join\", \"leave\", \"drop\", \"presence\", \"members\", \"kick\" (join and leave take \"uid\" or \"uids\" besides)",
            ),
            CommandError::UidsNotList => {
                f.write_str("\"uids\" must be a list of strings or numbers")
            }
            CommandError::NoUids => f.write_str("\"uids\" is an empty list"),
            CommandError::NotTrue(field) => write!(f, "\"{field}\" must be true"),
            CommandError::BadTopic(field) => write!(
                f,
                "\"{field}\" must be a topic name: 1 to 64 printable ASCII characters, no space or %"
            ),
            CommandError::NoUidToJoin => f.write_str("\"join\" and \"leave\" need \"uid\" or \"uids\""),
            CommandError::BadLimit => f.write_str("\"limit\" must be a positive whole number"),
            CommandError::AuthNotNeeded => f.write_str(
                "this herald has no API token (--api-token-file): send commands without \"auth\"",
            ),
        }
    }
}
