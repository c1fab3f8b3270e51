//! `push::command::parse`, the text-port decoder: whatever it accepts is JSON
//! to serde_json too, with exactly one routing field whose uid(s) match what
//! serde_json reads and are never empty.
//!
//! Input: one line (without its newline).
#![no_main]

use herald::push::command::{self, Command};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const ROUTING: [&str; 5] = ["uid", "uids", "all", "online", "count"];

/// A uid as serde_json sees it: strings decoded, numbers as written.
fn same_uid(ours: &str, theirs: &Value) -> bool {
    match theirs {
        Value::String(s) => s == ours,
        Value::Number(_) => ours.parse::<f64>().is_ok(),
        _ => false,
    }
}

fuzz_target!(|line: &[u8]| {
    let cmd = match command::parse(line) {
        Ok(cmd) => cmd,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let value: Value = serde_json::from_slice(line)
        .unwrap_or_else(|e| panic!("accepted {cmd:?} but serde_json says: {e}"));
    let obj = value
        .as_object()
        .expect("accepted a line that is not an object");
    let fields: Vec<&str> = ROUTING
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    assert_eq!(fields.len(), 1, "routing fields {fields:?} for {cmd:?}");
    match (&cmd, fields[0]) {
        (Command::Push(uid), "uid") | (Command::Online(uid), "online") => {
            assert!(!uid.is_empty());
            assert!(
                same_uid(uid, &obj[fields[0]]),
                "{uid:?} vs {}",
                obj[fields[0]]
            );
        }
        (Command::PushMany(uids), "uids") => {
            let theirs = obj["uids"].as_array().expect("uids is an array");
            assert_eq!(uids.len(), theirs.len());
            for (u, t) in uids.iter().zip(theirs) {
                assert!(!u.is_empty());
                assert!(same_uid(u, t), "{u:?} vs {t}");
            }
        }
        (Command::Broadcast, "all") | (Command::Count, "count") => {
            assert_eq!(obj[fields[0]], Value::Bool(true));
        }
        (cmd, field) => panic!("{cmd:?} from a line whose routing field is {field:?}"),
    }
});
