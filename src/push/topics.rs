//! Topics on this node: which connections are in which topic (sans-IO).
//!
//! A connection joins a topic in one of two ways:
//! - it subscribes itself (a herald.v1 client's hello or `{"sub":..}`),
//!   for as long as it lives or until it unsubscribes;
//! - a backend joins its uid (`{"join":T,"uid":U}`). That is kept per uid,
//!   not per connection: every connection of U here joins now, and so does
//!   every connection U opens later (a reconnect, another tab), until the
//!   backend says `leave` or `drop`. Membership thus survives the uid's
//!   reconnects without the backend hearing of them.
//!
//! Memory: a connection in no topic costs nothing here. A membership is
//! its connection id in the topic's member list (8 bytes), one 12-byte
//! link in the connection's chain of memberships, and the connection's
//! entry in the map of chains (16 bytes, once per connection), so about
//! 24 bytes when a connection is in five topics. Leaving is O(topics of
//! the connection): the link knows its place in the member list, which
//! is swap-removed.

use crate::app::ConnId;
use std::collections::HashMap;

const NIL: u32 = u32::MAX;

#[derive(Default)]
struct Topic {
    /// Empty while this id is free.
    name: Box<str>,
    members: Vec<ConnId>,
    /// Uids a backend joined to this topic.
    joined: u32,
}

/// One connection in one topic: a link in the connection's chain.
#[derive(Clone, Copy)]
struct Link {
    topic: u32,
    /// The connection's place in the topic's member list.
    pos: u32,
    next: u32,
}

#[derive(Default)]
pub struct Topics {
    ids: HashMap<Box<str>, u32>,
    topics: Vec<Topic>,
    free_ids: Vec<u32>,
    /// Each connection in some topic: the first link of its chain.
    first: HashMap<ConnId, u32>,
    links: Vec<Link>,
    free_links: Vec<u32>,
    /// Uids a backend joined, and to which topics.
    joined: HashMap<Box<str>, Vec<u32>>,
    /// Record which topics gained their first member here or lost their
    /// last (a cluster listens to a topic's channel in between).
    track: bool,
    changes: Vec<(Box<str>, bool)>,
    /// Tracked: the topics whose members changed since the last report.
    dirty: std::collections::HashSet<Box<str>>,
}

impl Topics {
    /// Topics that record their changes (see [`Topics::take_changes`]).
    pub fn tracked() -> Topics {
        Topics {
            track: true,
            ..Topics::default()
        }
    }

    /// The topics that gained their first member here (`true`) or lost
    /// their last (`false`) since the last call, in order.
    pub fn take_changes(&mut self) -> Vec<(Box<str>, bool)> {
        std::mem::take(&mut self.changes)
    }

    /// The topics whose members here changed since the last call (a
    /// cluster reports them for presence).
    pub fn take_dirty(&mut self) -> Vec<Box<str>> {
        self.dirty.drain().collect()
    }

    /// Marks every topic with a member here as changed (to be reported
    /// again).
    pub fn mark_all_dirty(&mut self) {
        let names = self.topics.iter().filter(|t| !t.members.is_empty());
        self.dirty.extend(names.map(|t| t.name.clone()));
    }

    /// Whether some change waits to be taken.
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Topics with a member or a joined uid.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Connection memberships, all topics.
    pub fn memberships(&self) -> usize {
        self.links.len() - self.free_links.len()
    }

    /// The connections in topic `name` (empty for an unknown topic).
    pub fn members(&self, name: &str) -> &[ConnId] {
        match self.ids.get(name) {
            Some(&t) => &self.topics[t as usize].members,
            None => &[],
        }
    }

    /// Whether `conn` is in topic `name`.
    pub fn contains(&self, conn: ConnId, name: &str) -> bool {
        self.ids
            .get(name)
            .is_some_and(|&t| self.find(conn, t).is_some())
    }

    /// `conn` subscribes to topic `name`; false if it already was in it.
    pub fn subscribe(&mut self, conn: ConnId, name: &str) -> bool {
        let t = self.id_of(name);
        let added = self.add(conn, t);
        self.collect(t);
        added
    }

    /// `conn` leaves topic `name`; false if it was not in it.
    pub fn unsubscribe(&mut self, conn: ConnId, name: &str) -> bool {
        let Some(&t) = self.ids.get(name) else {
            return false;
        };
        self.remove(conn, t)
    }

    /// `conn` closed: it leaves every topic.
    pub fn remove_conn(&mut self, conn: ConnId) {
        let Some(mut at) = self.first.get(&conn).copied() else {
            return;
        };
        while at != NIL {
            let Link { topic, next, .. } = self.links[at as usize];
            self.remove(conn, topic);
            at = next;
        }
    }

    /// A backend joins `uid` (whose connections here are `conns`) to topic
    /// `name`, for its connections now and later; how many of `conns` are
    /// in the topic now.
    pub fn join_uid(&mut self, uid: &str, name: &str, conns: &[ConnId]) -> usize {
        let t = self.id_of(name);
        let list = self.joined.entry(uid.into()).or_default();
        if !list.contains(&t) {
            list.push(t);
            self.topics[t as usize].joined += 1;
        }
        for &c in conns {
            self.add(c, t);
        }
        conns.len()
    }

    /// A backend takes `uid` (connections here: `conns`) out of topic
    /// `name`; how many of `conns` left it.
    pub fn leave_uid(&mut self, uid: &str, name: &str, conns: &[ConnId]) -> usize {
        let Some(&t) = self.ids.get(name) else {
            return 0;
        };
        if let Some(list) = self.joined.get_mut(uid) {
            if let Some(i) = list.iter().position(|&x| x == t) {
                list.swap_remove(i);
                self.topics[t as usize].joined -= 1;
                if list.is_empty() {
                    self.joined.remove(uid);
                }
            }
        }
        let left = conns.iter().filter(|&&c| self.remove(c, t)).count();
        self.collect(t);
        left
    }

    /// `conn` was bound to `uid`: it joins the topics a backend joined the
    /// uid to.
    pub fn on_bound(&mut self, uid: &str, conn: ConnId) {
        let Some(list) = self.joined.get(uid) else {
            return;
        };
        for t in list.clone() {
            self.add(conn, t);
        }
    }

    /// Empties topic `name` and forgets it, joined uids too; how many
    /// connections it had.
    pub fn drop_topic(&mut self, name: &str) -> usize {
        let Some(&t) = self.ids.get(name) else {
            return 0;
        };
        let members = self.topics[t as usize].members.clone();
        for &c in &members {
            self.remove(c, t);
        }
        if self.topics[t as usize].joined > 0 {
            self.joined.retain(|_, list| {
                list.retain(|&x| x != t);
                !list.is_empty()
            });
            self.topics[t as usize].joined = 0;
        }
        self.collect(t);
        members.len()
    }

    /// Heap bytes held, for /stats (capacities, not lengths).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let map = |cap: usize, entry: usize| cap * (entry + 1);
        let names: usize = self.topics.iter().map(|t| t.name.len()).sum();
        let members: usize = self.topics.iter().map(|t| t.members.capacity()).sum();
        let joined: usize = self
            .joined
            .iter()
            .map(|(u, l)| u.len() + l.capacity() * 4)
            .sum();
        map(self.ids.capacity(), size_of::<(Box<str>, u32)>())
            + names
            + self.topics.capacity() * size_of::<Topic>()
            + members * size_of::<ConnId>()
            + self.free_ids.capacity() * 4
            + map(self.first.capacity(), size_of::<(ConnId, u32)>())
            + self.links.capacity() * size_of::<Link>()
            + self.free_links.capacity() * 4
            + map(self.joined.capacity(), size_of::<(Box<str>, Vec<u32>)>())
            + joined
    }

    // ----- the links -----

    fn id_of(&mut self, name: &str) -> u32 {
        if let Some(&t) = self.ids.get(name) {
            return t;
        }
        let topic = Topic {
            name: name.into(),
            ..Topic::default()
        };
        let t = match self.free_ids.pop() {
            Some(t) => {
                self.topics[t as usize] = topic;
                t
            }
            None => {
                self.topics.push(topic);
                (self.topics.len() - 1) as u32
            }
        };
        self.ids.insert(name.into(), t);
        t
    }

    /// Forgets topic `t` once nothing is in it.
    fn collect(&mut self, t: u32) {
        let topic = &mut self.topics[t as usize];
        if topic.members.is_empty() && topic.joined == 0 && !topic.name.is_empty() {
            let name = std::mem::take(&mut topic.name);
            topic.members = Vec::new();
            self.ids.remove(&name);
            self.free_ids.push(t);
        }
    }

    /// The link of `conn` in topic `t`, and the one before it in the chain.
    fn find(&self, conn: ConnId, t: u32) -> Option<(u32, u32)> {
        let mut prev = NIL;
        let mut at = *self.first.get(&conn)?;
        while at != NIL {
            let l = self.links[at as usize];
            if l.topic == t {
                return Some((prev, at));
            }
            prev = at;
            at = l.next;
        }
        None
    }

    fn add(&mut self, conn: ConnId, t: u32) -> bool {
        if self.find(conn, t).is_some() {
            return false;
        }
        let topic = &mut self.topics[t as usize];
        if self.track {
            if topic.members.is_empty() {
                self.changes.push((topic.name.clone(), true));
            }
            if !self.dirty.contains(&topic.name) {
                self.dirty.insert(topic.name.clone());
            }
        }
        let members = &mut topic.members;
        let link = Link {
            topic: t,
            pos: members.len() as u32,
            next: self.first.get(&conn).copied().unwrap_or(NIL),
        };
        members.push(conn);
        let at = match self.free_links.pop() {
            Some(at) => {
                self.links[at as usize] = link;
                at
            }
            None => {
                self.links.push(link);
                (self.links.len() - 1) as u32
            }
        };
        self.first.insert(conn, at);
        true
    }

    fn remove(&mut self, conn: ConnId, t: u32) -> bool {
        let Some((prev, at)) = self.find(conn, t) else {
            return false;
        };
        let Link { pos, next, .. } = self.links[at as usize];
        if prev == NIL {
            if next == NIL {
                self.first.remove(&conn);
            } else {
                self.first.insert(conn, next);
            }
        } else {
            self.links[prev as usize].next = next;
        }
        self.free_links.push(at);
        let topic = &mut self.topics[t as usize];
        topic.members.swap_remove(pos as usize);
        if self.track {
            if topic.members.is_empty() {
                self.changes.push((topic.name.clone(), false));
            }
            if !self.dirty.contains(&topic.name) {
                self.dirty.insert(topic.name.clone());
            }
        }
        let members = &topic.members;
        if let Some(&moved) = members.get(pos as usize) {
            if let Some((_, m)) = self.find(moved, t) {
                self.links[m as usize].pos = pos;
            }
        }
        self.collect(t);
        true
    }
}

#[cfg(test)]
mod tests;
