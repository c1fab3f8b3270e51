//! `push::command::parse`, the text-port decoder: whatever it accepts is JSON
//! to serde_json too, with exactly one routing field (`join` and `leave`:
//! with `uid` or `uids` besides) whose uid(s) match what serde_json reads
//! and are never empty, and whose topic is a valid topic name.
//!
//! Input: one line (without its newline).
#![no_main]

use herald::push::command::{self, Command};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const ROUTING: [&str; 12] = [
    "uid", "uids", "all", "online", "count", "topic", "join", "leave", "drop", "presence",
    "members", "kick",
];

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
    if let Command::Join(topic, uids) | Command::Leave(topic, uids) = &cmd {
        let verb = if matches!(cmd, Command::Join(..)) {
            "join"
        } else {
            "leave"
        };
        assert_eq!(obj[verb].as_str(), Some(&**topic));
        assert!(command::valid_topic(topic));
        let target = if obj.contains_key("uid") {
            "uid"
        } else {
            "uids"
        };
        assert_eq!(fields.len(), 2, "routing fields {fields:?} for {cmd:?}");
        let theirs = match &obj[target] {
            Value::Array(list) => list.clone(),
            one => vec![one.clone()],
        };
        assert_eq!(uids.len(), theirs.len());
        for (u, t) in uids.iter().zip(&theirs) {
            assert!(!u.is_empty() && same_uid(u, t), "{u:?} vs {t}");
        }
        return;
    }
    assert_eq!(fields.len(), 1, "routing fields {fields:?} for {cmd:?}");
    match (&cmd, fields[0]) {
        (Command::Kick(uid), "kick") => {
            assert!(!uid.is_empty() && same_uid(uid, &obj["kick"]));
        }
        (Command::Publish(t), "topic")
        | (Command::Drop(t), "drop")
        | (Command::Presence(t), "presence")
        | (Command::Members(t, _, _), "members") => {
            assert_eq!(obj[fields[0]].as_str(), Some(&**t));
            assert!(command::valid_topic(t));
        }
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
