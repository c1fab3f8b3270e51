use super::*;

fn sorted(t: &Topics, name: &str) -> Vec<u32> {
    let mut v = t.members(name).to_vec();
    v.sort();
    v
}

#[test]
fn subscribe_unsubscribe_and_close() {
    let mut t = Topics::default();
    assert!(t.subscribe(1, "news"));
    assert!(!t.subscribe(1, "news"), "twice is once");
    assert!(t.subscribe(2, "news"));
    assert!(t.subscribe(2, "sport"));
    assert_eq!(sorted(&t, "news"), vec![1, 2]);
    assert_eq!(t.memberships(), 3);
    assert!(t.unsubscribe(1, "news", None, &[]));
    assert!(!t.unsubscribe(1, "news", None, &[]));
    assert_eq!(t.members("news"), &[2]);
    t.remove_conn(2, None, &[]);
    assert!(t.members("news").is_empty() && t.members("sport").is_empty());
    assert!(t.is_empty(), "empty topics are forgotten");
    assert_eq!(t.memberships(), 0);
}

#[test]
fn swap_remove_keeps_every_place_right() {
    let mut t = Topics::default();
    for i in 0..50 {
        t.subscribe(i, "a");
        t.subscribe(i, "b");
    }
    // Remove from the middle, the front and the back, in an order that
    // moves members around, then check that each remaining one can leave.
    for i in [25, 0, 49, 10, 11, 48, 1] {
        assert!(t.unsubscribe(i, "a", None, &[]));
        assert!(!t.contains(i, "a"));
        assert!(t.contains(i, "b"));
    }
    assert_eq!(t.members("a").len(), 43);
    for &m in t.members("a").to_vec().iter() {
        assert!(t.contains(m, "a"));
    }
    for i in 0..50 {
        t.remove_conn(i, None, &[]);
    }
    assert!(t.is_empty());
    assert_eq!(t.memberships(), 0);
}

#[test]
fn a_joined_uid_keeps_its_topics_across_reconnects() {
    let mut t = Topics::default();
    assert_eq!(t.join_uid("u1", "room", &[1, 2]), 2);
    assert_eq!(sorted(&t, "room"), vec![1, 2]);
    // One closes: its sibling still carries the join.
    t.remove_conn(1, Some("u1"), &[2]);
    // A new tab copies it from the sibling.
    t.on_bound("u1", 3, &[2]);
    assert_eq!(sorted(&t, "room"), vec![2, 3]);
    // Both close: the topic stays, for the uid.
    t.remove_conn(2, Some("u1"), &[3]);
    t.remove_conn(3, Some("u1"), &[]);
    assert!(t.members("room").is_empty());
    assert_eq!(t.len(), 1);
    // It comes back: its new connection is in the topic.
    t.on_bound("u1", 4, &[]);
    assert_eq!(t.members("room"), &[4]);
    // Another uid is not.
    t.on_bound("u2", 5, &[]);
    assert_eq!(t.members("room"), &[4]);
    assert_eq!(t.leave_uid("u1", "room", &[4]), 1);
    t.remove_conn(4, Some("u1"), &[]);
    t.on_bound("u1", 6, &[]);
    assert!(t.members("room").is_empty());
    assert!(t.is_empty());
}

#[test]
fn joined_while_away_and_unsubscribed_joins_stay_with_the_uid() {
    let mut t = Topics::default();
    assert_eq!(t.join_uid("u1", "room", &[]), 0);
    assert_eq!(t.len(), 1, "kept while away");
    t.on_bound("u1", 1, &[]);
    assert_eq!(t.members("room"), &[1]);
    // Its one connection unsubscribes itself: the join stays for the uid.
    assert!(t.unsubscribe(1, "room", Some("u1"), &[]));
    assert!(t.members("room").is_empty());
    t.on_bound("u1", 2, &[1]);
    assert_eq!(t.members("room"), &[2], "a later connection is in again");
    // A subscription of its own is not a join: not copied.
    t.subscribe(2, "mine");
    t.on_bound("u1", 3, &[2]);
    assert!(t.contains(3, "room") && !t.contains(3, "mine"));
    // A backend join of a topic it subscribed to marks it joined.
    t.join_uid("u1", "mine", &[2]);
    t.on_bound("u1", 4, &[2]);
    assert!(t.contains(4, "mine"));
}

#[test]
fn drop_empties_a_topic_and_forgets_its_uids() {
    let mut t = Topics::default();
    t.join_uid("u1", "room", &[1]);
    t.join_uid("u1", "other", &[1]);
    t.join_uid("away", "room", &[]);
    t.subscribe(2, "room");
    assert_eq!(t.drop_topic("room"), 2);
    assert!(t.members("room").is_empty());
    assert!(t.contains(1, "other"));
    t.on_bound("u1", 3, &[1]);
    assert!(!t.contains(3, "room"), "dropped, so not joined again");
    assert!(t.contains(3, "other"));
    t.on_bound("away", 4, &[]);
    assert!(!t.contains(4, "room"));
    assert_eq!(t.drop_topic("nothing"), 0);
}

#[test]
fn ids_are_reused_without_mixing_topics() {
    let mut t = Topics::default();
    for round in 0..3 {
        let name = format!("t{round}");
        t.subscribe(1, &name);
        t.subscribe(2, "stay");
        t.unsubscribe(1, &name, None, &[]);
        assert!(t.members(&name).is_empty());
        assert_eq!(t.members("stay"), &[2]);
    }
    assert_eq!(t.len(), 1);
}

#[test]
fn a_tracked_store_says_when_a_topic_gains_its_first_member_and_loses_its_last() {
    let mut t = Topics::tracked();
    t.subscribe(1, "a");
    t.subscribe(2, "a");
    t.join_uid("u", "b", &[]);
    assert_eq!(t.take_changes(), vec![("a".into(), true)]);
    t.on_bound("u", 3, &[]);
    t.unsubscribe(1, "a", None, &[]);
    t.remove_conn(2, None, &[]);
    t.drop_topic("b");
    let changes = t.take_changes();
    assert_eq!(
        changes,
        vec![("b".into(), true), ("a".into(), false), ("b".into(), false)]
    );
    assert!(!t.changed());
    let mut dirty = t.take_dirty();
    dirty.sort();
    assert_eq!(dirty, vec!["a".into(), "b".into()]);
    let mut quiet = Topics::default();
    quiet.subscribe(1, "a");
    assert!(!quiet.changed(), "untracked stores keep nothing");
}

/// Random operations against a plain model: which topics each connection
/// is in, and which topics each uid is joined to (kept for its later
/// connections). After every step, each topic's members are the model's.
#[test]
fn random_operations_agree_with_a_plain_model() {
    use std::collections::{BTreeMap, BTreeSet};
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let uids = ["a", "b", "c"];
    let names = ["t0", "t1", "t2", "t3"];
    let mut t = Topics::tracked();
    // The model: open connections (slot -> uid), their topics, the joins.
    let mut open: BTreeMap<u32, &str> = BTreeMap::new();
    let mut member: BTreeMap<u32, BTreeSet<&str>> = BTreeMap::new();
    let mut joined: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for step in 0..20_000 {
        let c = next(10) as u32;
        let uid = uids[next(3) as usize];
        let name = names[next(4) as usize];
        match next(7) {
            0 if !open.contains_key(&c) => {
                let sib = siblings(&open, uid, None);
                open.insert(c, uid);
                t.on_bound(uid, c, &sib);
                member.insert(c, joined.get(uid).cloned().unwrap_or_default());
            }
            1 if open.contains_key(&c) => {
                let u = open[&c];
                t.remove_conn(c, Some(u), &siblings(&open, u, Some(c)));
                open.remove(&c);
                member.remove(&c);
            }
            2 if open.contains_key(&c) => {
                assert_eq!(
                    t.subscribe(c, name),
                    member.get_mut(&c).unwrap().insert(name)
                );
            }
            3 if open.contains_key(&c) => {
                let u = open[&c];
                let was = member.get_mut(&c).unwrap().remove(name);
                let sib = siblings(&open, u, Some(c));
                assert_eq!(t.unsubscribe(c, name, Some(u), &sib), was, "step {step}");
            }
            4 => {
                let conns = siblings(&open, uid, None);
                assert_eq!(t.join_uid(uid, name, &conns), conns.len());
                joined.entry(uid).or_default().insert(name);
                for c in conns {
                    member.get_mut(&c).unwrap().insert(name);
                }
            }
            5 => {
                let conns = siblings(&open, uid, None);
                let left = conns.iter().filter(|c| member[c].contains(name)).count();
                assert_eq!(t.leave_uid(uid, name, &conns), left, "step {step}");
                joined.entry(uid).or_default().remove(name);
                for c in conns {
                    member.get_mut(&c).unwrap().remove(name);
                }
            }
            6 if next(8) == 0 => {
                let had = member.values().filter(|m| m.contains(name)).count();
                assert_eq!(t.drop_topic(name), had, "step {step}");
                for m in member.values_mut() {
                    m.remove(name);
                }
                for j in joined.values_mut() {
                    j.remove(name);
                }
            }
            _ => continue,
        }
        agrees(&t, &member, &names, step);
    }
}

/// The model's open connections of `uid`, but `not`.
fn siblings(open: &std::collections::BTreeMap<u32, &str>, uid: &str, not: Option<u32>) -> Vec<u32> {
    open.iter()
        .filter(|&(&c, &u)| u == uid && Some(c) != not)
        .map(|(&c, _)| c)
        .collect()
}

/// Each topic's members, and the count of memberships, are the model's.
fn agrees(
    t: &Topics,
    member: &std::collections::BTreeMap<u32, std::collections::BTreeSet<&str>>,
    names: &[&str],
    step: usize,
) {
    for &name in names {
        let mut got = t.members(name).to_vec();
        got.sort();
        let want: Vec<u32> = member
            .iter()
            .filter(|(_, m)| m.contains(name))
            .map(|(&c, _)| c)
            .collect();
        assert_eq!(got, want, "{name} after step {step}");
    }
    let total: usize = member.values().map(|m| m.len()).sum();
    assert_eq!(t.memberships(), total, "after step {step}");
}
