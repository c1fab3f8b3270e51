use super::*;

fn c(i: u32) -> ConnId {
    ConnId::new(i, 1)
}

fn sorted(t: &Topics, name: &str) -> Vec<ConnId> {
    let mut v = t.members(name).to_vec();
    v.sort_by_key(|c| c.as_u64());
    v
}

#[test]
fn subscribe_unsubscribe_and_close() {
    let mut t = Topics::default();
    assert!(t.subscribe(c(1), "news"));
    assert!(!t.subscribe(c(1), "news"), "twice is once");
    assert!(t.subscribe(c(2), "news"));
    assert!(t.subscribe(c(2), "sport"));
    assert_eq!(sorted(&t, "news"), vec![c(1), c(2)]);
    assert_eq!(t.memberships(), 3);
    assert!(t.unsubscribe(c(1), "news"));
    assert!(!t.unsubscribe(c(1), "news"));
    assert_eq!(t.members("news"), &[c(2)]);
    t.remove_conn(c(2));
    assert!(t.members("news").is_empty() && t.members("sport").is_empty());
    assert!(t.is_empty(), "empty topics are forgotten");
    assert_eq!(t.memberships(), 0);
}

#[test]
fn swap_remove_keeps_every_place_right() {
    let mut t = Topics::default();
    for i in 0..50 {
        t.subscribe(c(i), "a");
        t.subscribe(c(i), "b");
    }
    // Remove from the middle, the front and the back, in an order that
    // moves members around, then check that each remaining one can leave.
    for i in [25, 0, 49, 10, 11, 48, 1] {
        assert!(t.unsubscribe(c(i), "a"));
        assert!(!t.contains(c(i), "a"));
        assert!(t.contains(c(i), "b"));
    }
    assert_eq!(t.members("a").len(), 43);
    for &m in t.members("a").to_vec().iter() {
        assert!(t.contains(m, "a"));
    }
    for i in 0..50 {
        t.remove_conn(c(i));
    }
    assert!(t.is_empty());
    assert_eq!(t.memberships(), 0);
}

#[test]
fn a_joined_uid_keeps_its_topics_across_reconnects() {
    let mut t = Topics::default();
    assert_eq!(t.join_uid("u1", "room", &[c(1), c(2)]), 2);
    assert_eq!(sorted(&t, "room"), vec![c(1), c(2)]);
    // Both connections close: the topic stays, for the uid.
    t.remove_conn(c(1));
    t.remove_conn(c(2));
    assert!(t.members("room").is_empty());
    assert_eq!(t.len(), 1);
    // It comes back: its new connection is in the topic.
    t.on_bound("u1", c(3));
    assert_eq!(t.members("room"), &[c(3)]);
    // Another uid is not.
    t.on_bound("u2", c(4));
    assert_eq!(t.members("room"), &[c(3)]);
    assert_eq!(t.leave_uid("u1", "room", &[c(3)]), 1);
    t.on_bound("u1", c(5));
    assert!(t.members("room").is_empty());
    assert!(t.is_empty());
}

#[test]
fn drop_empties_a_topic_and_forgets_its_uids() {
    let mut t = Topics::default();
    t.join_uid("u1", "room", &[c(1)]);
    t.join_uid("u1", "other", &[c(1)]);
    t.subscribe(c(2), "room");
    assert_eq!(t.drop_topic("room"), 2);
    assert!(t.members("room").is_empty());
    assert!(t.contains(c(1), "other"));
    t.on_bound("u1", c(3));
    assert!(!t.contains(c(3), "room"), "dropped, so not joined again");
    assert!(t.contains(c(3), "other"));
    assert_eq!(t.drop_topic("nothing"), 0);
}

#[test]
fn ids_are_reused_without_mixing_topics() {
    let mut t = Topics::default();
    for round in 0..3 {
        let name = format!("t{round}");
        t.subscribe(c(1), &name);
        t.subscribe(c(2), "stay");
        t.unsubscribe(c(1), &name);
        assert!(t.members(&name).is_empty());
        assert_eq!(t.members("stay"), &[c(2)]);
    }
    assert_eq!(t.len(), 1);
}

#[test]
fn a_tracked_store_says_when_a_topic_gains_its_first_member_and_loses_its_last() {
    let mut t = Topics::tracked();
    t.subscribe(c(1), "a");
    t.subscribe(c(2), "a");
    t.join_uid("u", "b", &[]);
    assert_eq!(t.take_changes(), vec![("a".into(), true)]);
    t.on_bound("u", c(3));
    t.unsubscribe(c(1), "a");
    t.remove_conn(c(2));
    t.drop_topic("b");
    let changes = t.take_changes();
    assert_eq!(
        changes,
        vec![("b".into(), true), ("a".into(), false), ("b".into(), false)]
    );
    assert!(!t.changed());
    let mut quiet = Topics::default();
    quiet.subscribe(c(1), "a");
    assert!(!quiet.changed(), "untracked stores keep nothing");
}
