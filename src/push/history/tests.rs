use super::*;

fn cfg(size: usize, ttl_ms: u64, memory: usize) -> HistoryConfig {
    HistoryConfig {
        size,
        ttl_ms,
        memory,
    }
}

fn pos(epoch: u64, offset: u64) -> Position {
    Position {
        epoch: History::epoch_name(epoch),
        offset,
    }
}

/// (status, position offset, missed) of a resume.
fn resume(
    h: &mut History,
    uid: &str,
    since: Option<Position>,
    now: u64,
) -> (Status, u64, Vec<String>) {
    let r = h.resume(Stream::Uid(uid), since.as_ref(), now);
    let missed = r.missed.iter().map(|s| s.to_string()).collect();
    (r.status, r.position.offset, missed)
}

#[test]
fn offsets_count_up_per_stream_and_a_resume_replays_what_follows() {
    let mut h = History::new(cfg(10, 60_000, 1 << 20), 7);
    let (e, o) = h.append(Stream::Uid("a"), "a1", 0);
    assert_eq!(o, 1);
    assert_eq!(h.append(Stream::Uid("a"), "a2", 1), (e, 2));
    assert_eq!(h.append(Stream::Uid("b"), "b1", 2).1, 1);
    assert_eq!(h.append(Stream::All, "x1", 3).1, 1);
    h.append(Stream::Uid("a"), "a3", 4);
    let (status, at, missed) = resume(&mut h, "a", Some(pos(e, 1)), 5);
    assert_eq!((status, at), (Status::Ok, 1));
    assert_eq!(missed, ["a2", "a3"]);
    // Up to date: nothing to replay, still ok.
    assert_eq!(
        resume(&mut h, "a", Some(pos(e, 3)), 5),
        (Status::Ok, 3, vec![])
    );
    // No position: new, at the latest offset.
    assert_eq!(resume(&mut h, "a", None, 5), (Status::New, 3, vec![]));
    assert_eq!(h.stats().messages, 5);
    assert_eq!(h.stats().streams, 3);
}

#[test]
fn trimmed_expired_or_foreign_positions_are_lost() {
    let mut h = History::new(cfg(2, 1_000, 1 << 20), 7);
    let (e, _) = h.append(Stream::Uid("a"), "a1", 0);
    h.append(Stream::Uid("a"), "a2", 0);
    h.append(Stream::Uid("a"), "a3", 0);
    // a1 was trimmed: from 0 the gap cannot be filled; from 1 it can.
    assert_eq!(resume(&mut h, "a", Some(pos(e, 0)), 1).0, Status::Lost);
    assert_eq!(resume(&mut h, "a", Some(pos(e, 1)), 1).2, ["a2", "a3"]);
    // Another epoch, or an offset never given.
    assert_eq!(
        resume(&mut h, "a", Some(pos(e + 1, 1)), 1),
        (Status::Lost, 3, vec![])
    );
    assert_eq!(resume(&mut h, "a", Some(pos(e, 9)), 1).0, Status::Lost);
    // Expired: lost, but the record stays, so an up-to-date client is ok.
    assert_eq!(
        resume(&mut h, "a", Some(pos(e, 1)), 1_000),
        (Status::Lost, 3, vec![])
    );
    assert_eq!(
        resume(&mut h, "a", Some(pos(e, 3)), 5_000),
        (Status::Ok, 3, vec![])
    );
    assert_eq!(h.stats().messages, 0);
    assert_eq!(h.stats().evicted, 3);
}

#[test]
fn the_memory_bound_evicts_the_oldest_message_of_all_then_empty_records() {
    let text = "x".repeat(100);
    let per = (text.len() + MESSAGE_COST) as u64;
    let streams = 3 * (STREAM_COST as u64 + 1) + STREAM_COST as u64;
    let mut h = History::new(cfg(100, 60_000, (streams + 4 * per) as usize), 7);
    let (ea, _) = h.append(Stream::Uid("a"), &text, 0);
    let (eb, _) = h.append(Stream::Uid("b"), &text, 1);
    h.append(Stream::Uid("c"), &text, 2);
    h.append(Stream::Uid("a"), &text, 3);
    h.append(Stream::Uid("b"), &text, 4);
    // Five messages in a bound of four: a's first went.
    assert_eq!(h.stats().messages, 4);
    assert!(h.stats().bytes <= streams + 4 * per, "{:?}", h.stats());
    assert_eq!(resume(&mut h, "a", Some(pos(ea, 0)), 5).0, Status::Lost);
    assert_eq!(resume(&mut h, "b", Some(pos(eb, 0)), 5).2.len(), 2);
    // A bound below the records: messages go, then empty records; a
    // stream made again has another epoch.
    let mut h = History::new(cfg(100, 60_000, 10), 7);
    let (e1, _) = h.append(Stream::Uid("a"), "1", 0);
    assert_eq!(h.stats().messages, 0);
    let (e2, _) = h.append(Stream::Uid("a"), "2", 1);
    assert_ne!(e1, e2);
}

#[test]
fn stale_entries_are_compacted_and_never_evict_a_live_message() {
    let mut h = History::new(cfg(1, 60_000, 1 << 30), 7);
    let (e, _) = h.append(Stream::Uid("keep"), "k", 0);
    for i in 0..5_000 {
        h.append(Stream::Uid("busy"), &i.to_string(), 1);
    }
    assert!(h.queue.len() < 3_000, "compacted: {}", h.queue.len());
    assert_eq!(h.stats().messages, 2);
    assert_eq!(resume(&mut h, "keep", Some(pos(e, 0)), 2).2, ["k"]);
    let r = h.resume(Stream::Uid("busy"), None, 2);
    assert_eq!(r.position.offset, 5_000);
}

#[test]
fn a_topic_and_a_uid_of_the_same_name_are_two_streams() {
    let mut h = History::new(cfg(10, 60_000, 1 << 20), 7);
    let (eu, _) = h.append(Stream::Uid("news"), "to the uid", 0);
    let (et, ot) = h.append(Stream::Topic("news"), "to the topic", 1);
    assert_eq!(ot, 1, "its own offsets");
    assert_ne!(eu, et, "its own epoch");
    let r = h.resume(Stream::Topic("news"), Some(&pos(et, 0)), 2);
    assert_eq!(r.missed, vec!["to the topic"]);
    let (_, _, missed) = resume(&mut h, "news", Some(pos(eu, 0)), 3);
    assert_eq!(missed, vec!["to the uid".to_string()]);
    // Evicted by age like any stream.
    let r = h.resume(Stream::Topic("news"), Some(&pos(et, 0)), 61_000);
    assert_eq!(r.status, Status::Lost);
}
