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
//! Connections are named by their slot index (4 bytes): a connection
//! leaves every topic in its `on_close`, before its slot can be reused.
//!
//! Memory: a connection in no topic costs nothing here. A membership is
//! the slot index in the topic's member list (4 bytes), a 12-byte link in
//! the connection's chain (its topic, its place in that list, the next
//! link), and a share of the connection's entry in the map of chains (12
//! bytes and a control byte, once per connection in some topic).
//!
//! A uid's joins live in the links of its connections, marked joined: a
//! new connection of the uid copies them from a sibling. Only joins no
//! live connection here carries (the uid is away, or its one connection
//! unsubscribed itself) are kept per uid, in `away`. An online uid joined
//! to five topics thus costs about 20 bytes per membership, nothing more.

use std::collections::HashMap;

const NIL: u32 = u32::MAX;
/// A link's topic with this bit set: joined by a backend (kept for the
/// uid), not only subscribed by the client.
const JOINED: u32 = 1 << 31;

#[derive(Default)]
struct Topic {
    /// Empty while this id is free.
    name: Box<str>,
    /// Slot indices of the connections in it.
    members: Vec<u32>,
    /// Uids joined to it and away (their `away` entries name it).
    away: u32,
}

/// One connection in one topic: a link in the connection's chain.
#[derive(Clone, Copy)]
struct Link {
    /// The topic id, with [`JOINED`].
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
    first: HashMap<u32, u32>,
    links: Vec<Link>,
    free_links: Vec<u32>,
    /// Joins no live connection here carries, per uid.
    away: HashMap<Box<str>, Vec<u32>>,
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

    /// The slot indices of the connections in topic `name`.
    pub fn members(&self, name: &str) -> &[u32] {
        match self.ids.get(name) {
            Some(&t) => &self.topics[t as usize].members,
            None => &[],
        }
    }

    /// How many topics connection `conn` is in.
    pub fn count_of(&self, conn: u32) -> usize {
        let mut n = 0;
        let mut at = self.first.get(&conn).copied().unwrap_or(NIL);
        while at != NIL {
            n += 1;
            at = self.links[at as usize].next;
        }
        n
    }

    /// Whether connection `conn` is in topic `name`.
    pub fn contains(&self, conn: u32, name: &str) -> bool {
        self.ids
            .get(name)
            .is_some_and(|&t| self.find(conn, t).is_some())
    }

    /// `conn` subscribes to topic `name`; false if it already was in it.
    pub fn subscribe(&mut self, conn: u32, name: &str) -> bool {
        let t = self.id_of(name);
        let added = self.add(conn, t, false);
        self.collect(t);
        added
    }

    /// `conn` (of `uid`, whose other connections here are `siblings`)
    /// leaves topic `name`; false if it was not in it. A join it carried
    /// for its uid is kept for the uid if no sibling carries it.
    pub fn unsubscribe(
        &mut self,
        conn: u32,
        name: &str,
        uid: Option<&str>,
        siblings: &[u32],
    ) -> bool {
        let Some(&t) = self.ids.get(name) else {
            return false;
        };
        let joined = self
            .find(conn, t)
            .is_some_and(|(_, at)| self.links[at as usize].topic & JOINED != 0);
        if let (true, Some(uid)) = (joined, uid) {
            if !self.carried(siblings, t) {
                self.keep_away(uid, t);
            }
        }
        self.remove(conn, t)
    }

    /// `conn` (of `uid`, whose other connections here are `siblings`)
    /// closed: it leaves every topic, and the joins it carried that no
    /// sibling does are kept for the uid.
    pub fn remove_conn(&mut self, conn: u32, uid: Option<&str>, siblings: &[u32]) {
        let Some(mut at) = self.first.get(&conn).copied() else {
            return;
        };
        while at != NIL {
            let Link { topic, next, .. } = self.links[at as usize];
            let t = topic & !JOINED;
            if let (true, Some(uid)) = (topic & JOINED != 0, uid) {
                if !self.carried(siblings, t) {
                    self.keep_away(uid, t);
                }
            }
            self.remove(conn, t);
            at = next;
        }
    }

    /// A backend joins `uid` (whose connections here are `conns`) to topic
    /// `name`, for its connections now and later; how many of `conns` are
    /// in the topic now.
    pub fn join_uid(&mut self, uid: &str, name: &str, conns: &[u32]) -> usize {
        let t = self.id_of(name);
        if conns.is_empty() {
            self.keep_away(uid, t);
        }
        for &c in conns {
            self.add(c, t, true);
        }
        self.collect(t);
        conns.len()
    }

    /// A backend takes `uid` (connections here: `conns`) out of topic
    /// `name`; how many of `conns` left it.
    pub fn leave_uid(&mut self, uid: &str, name: &str, conns: &[u32]) -> usize {
        let Some(&t) = self.ids.get(name) else {
            return 0;
        };
        self.forget_away(uid, t);
        let left = conns.iter().filter(|&&c| self.remove(c, t)).count();
        self.collect(t);
        left
    }

    /// `conn` was bound to `uid` (its other connections here: `siblings`):
    /// it joins the topics a backend joined the uid to.
    pub fn on_bound(&mut self, uid: &str, conn: u32, siblings: &[u32]) {
        let mut joined = Vec::new();
        for s in siblings {
            let mut at = self.first.get(s).copied().unwrap_or(NIL);
            while at != NIL {
                let l = self.links[at as usize];
                if l.topic & JOINED != 0 {
                    joined.push(l.topic & !JOINED);
                }
                at = l.next;
            }
        }
        if let Some(list) = self.away.get(uid) {
            joined.extend_from_slice(list);
        }
        for t in joined {
            self.add(conn, t, true);
        }
        // What `away` held is carried by this connection now.
        if let Some(list) = self.away.remove(uid) {
            for t in list {
                self.topics[t as usize].away -= 1;
            }
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
        if self.topics[t as usize].away > 0 {
            self.away.retain(|_, list| {
                list.retain(|&x| x != t);
                !list.is_empty()
            });
            self.topics[t as usize].away = 0;
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
        let away: usize = self
            .away
            .iter()
            .map(|(u, l)| u.len() + l.capacity() * 4)
            .sum();
        map(self.ids.capacity(), size_of::<(Box<str>, u32)>())
            + names
            + self.topics.capacity() * size_of::<Topic>()
            + members * 4
            + self.free_ids.capacity() * 4
            + map(self.first.capacity(), size_of::<(u32, u32)>())
            + self.links.capacity() * size_of::<Link>()
            + self.free_links.capacity() * 4
            + map(self.away.capacity(), size_of::<(Box<str>, Vec<u32>)>())
            + away
    }

    // ----- the joins kept per uid -----

    /// Whether one of `conns` carries topic `t` joined.
    fn carried(&self, conns: &[u32], t: u32) -> bool {
        conns.iter().any(|&c| {
            self.find(c, t)
                .is_some_and(|(_, at)| self.links[at as usize].topic & JOINED != 0)
        })
    }

    fn keep_away(&mut self, uid: &str, t: u32) {
        let list = self.away.entry(uid.into()).or_default();
        if !list.contains(&t) {
            list.push(t);
            self.topics[t as usize].away += 1;
        }
    }

    fn forget_away(&mut self, uid: &str, t: u32) {
        if let Some(list) = self.away.get_mut(uid) {
            if let Some(i) = list.iter().position(|&x| x == t) {
                list.swap_remove(i);
                self.topics[t as usize].away -= 1;
                if list.is_empty() {
                    self.away.remove(uid);
                }
            }
        }
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
        if topic.members.is_empty() && topic.away == 0 && !topic.name.is_empty() {
            let name = std::mem::take(&mut topic.name);
            topic.members = Vec::new();
            self.ids.remove(&name);
            self.free_ids.push(t);
        }
    }

    /// The link of `conn` in topic `t`, and the one before it in the chain.
    fn find(&self, conn: u32, t: u32) -> Option<(u32, u32)> {
        let mut prev = NIL;
        let mut at = *self.first.get(&conn)?;
        while at != NIL {
            let l = self.links[at as usize];
            if l.topic & !JOINED == t {
                return Some((prev, at));
            }
            prev = at;
            at = l.next;
        }
        None
    }

    /// Puts `conn` in topic `t` (`joined`: for its uid); false if it was
    /// in it already (then a join marks the link joined).
    fn add(&mut self, conn: u32, t: u32, joined: bool) -> bool {
        if let Some((_, at)) = self.find(conn, t) {
            if joined {
                self.links[at as usize].topic |= JOINED;
            }
            return false;
        }
        self.touch(t, true);
        let members = &mut self.topics[t as usize].members;
        let link = Link {
            topic: if joined { t | JOINED } else { t },
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

    fn remove(&mut self, conn: u32, t: u32) -> bool {
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
        let members = &mut self.topics[t as usize].members;
        members.swap_remove(pos as usize);
        if let Some(&moved) = members.get(pos as usize) {
            if let Some((_, m)) = self.find(moved, t) {
                self.links[m as usize].pos = pos;
            }
        }
        self.touch(t, false);
        self.collect(t);
        true
    }

    /// Records, when tracked, that topic `t` is about to gain a member
    /// (`adding`) or has just lost one.
    fn touch(&mut self, t: u32, adding: bool) {
        if !self.track {
            return;
        }
        let topic = &self.topics[t as usize];
        if topic.members.is_empty() {
            self.changes.push((topic.name.clone(), adding));
        }
        if !self.dirty.contains(&topic.name) {
            self.dirty.insert(topic.name.clone());
        }
    }
}

#[cfg(test)]
mod tests;
