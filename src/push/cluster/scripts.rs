//! The Lua scripts of the presence protocol, run with EVALSHA (loaded on
//! each connect): each reads or updates what several keys say together in
//! one step, so that no other node sees them half-written.

use super::pending::Pending;
use crate::redis::{Client, SendError};

/// Sets this node's connection count of a uid (0 removes it) and its
/// total, keeping the uid set and the node's held set in step.
pub(super) const SET_COUNT: &str = r#"local n = tonumber(ARGV[2])
if n > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], n)
  redis.call('SADD', KEYS[2], ARGV[3])
  redis.call('SADD', KEYS[3], ARGV[3])
else
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[3], ARGV[3])
  if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[3]) end
end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[4])
return 0"#;

/// A uid's connections on the live nodes.
pub(super) const ONLINE: &str = r#"local t = redis.call('HGETALL', KEYS[1])
local sum = 0
for i = 1, #t, 2 do
  if redis.call('EXISTS', ARGV[1] .. t[i]) == 1 then sum = sum + tonumber(t[i + 1]) end
end
return sum"#;

/// Uids online and connections on the live nodes.
pub(super) const COUNT: &str = r#"local t = redis.call('HGETALL', KEYS[1])
local sum = 0
for i = 1, #t, 2 do
  if redis.call('EXISTS', ARGV[1] .. t[i]) == 1 then sum = sum + tonumber(t[i + 1]) end
end
return {redis.call('SCARD', KEYS[2]), sum}"#;

/// Removes what dead nodes (no heartbeat key) announced.
pub(super) const REAP: &str = r#"local p = ARGV[1]
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', p .. 'alive:' .. n) == 0 then
    for _, u in ipairs(redis.call('SMEMBERS', p .. 'held:' .. n)) do
      redis.call('HDEL', p .. 'o:' .. u, n)
      if redis.call('HLEN', p .. 'o:' .. u) == 0 then redis.call('SREM', p .. 'uids', u) end
    end
    redis.call('DEL', p .. 'held:' .. n)
    for _, t in ipairs(redis.call('SMEMBERS', p .. 'tn:' .. n)) do
      redis.call('HDEL', p .. 'tp:{' .. t .. '}', n)
      redis.call('DEL', p .. 'tu:{' .. t .. '}:' .. n)
    end
    redis.call('DEL', p .. 'tn:' .. n)
    redis.call('HDEL', p .. 'conns', n)
    redis.call('SREM', KEYS[1], n)
  end
end
return 0"#;

/// Every live node's last /stats document.
pub(super) const NODE_STATS: &str = r#"local out = {}
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local s = redis.call('GET', ARGV[1] .. 'stats:' .. n)
  if s then table.insert(out, s) end
end
return out"#;

/// Keeps a message in its stream's history and publishes it, in one step,
/// so that storing and fanning out cannot disagree: the next offset of the
/// stream's epoch (a new epoch, given by the node, when Redis has no record
/// of the stream: it lost its data or the record expired), the entry
/// `OFFSET-1` in the capped Redis Stream, and `NODE\nEPOCH OFFSET\nTEXT` on
/// the channel. KEYS: the stream, its record; ARGV: channel, node, text,
/// messages kept, ttl, record ttl, new epoch. Returns PUBLISH's count.
pub(super) const ADD: &str = r#"local e = redis.call('HGET', KEYS[2], 'e')
if not e then
  e = ARGV[7]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', e, 't', 0)
end
local t = redis.call('HINCRBY', KEYS[2], 't', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[4], t .. '-1', 'd', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return redis.call('PUBLISH', ARGV[1], ARGV[2] .. '\n' .. e .. ' ' .. t .. '\n' .. ARGV[3])"#;

/// Where a client that was at EPOCH:OFFSET (ARGV 1 and 2; an empty epoch
/// for none) is in a stream, and the messages it missed: `{epoch, latest
/// offset, "new"|"ok"|"lost", texts...}`. KEYS: the stream, its record;
/// ARGV 3 and 4: the epoch and ttl of a record made here.
pub(super) const RANGE: &str = r#"local e = redis.call('HGET', KEYS[2], 'e')
if not e then
  e = ARGV[3]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', e, 't', 0)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
local t = tonumber(redis.call('HGET', KEYS[2], 't'))
if ARGV[1] == '' then return {e, t, 'new'} end
local s = tonumber(ARGV[2])
if ARGV[1] ~= e or s > t then return {e, t, 'lost'} end
if s == t then return {e, t, 'ok'} end
local r = redis.call('XRANGE', KEYS[1], (s + 1) .. '-0', '+')
if #r == 0 or r[1][1] ~= (s + 1) .. '-1' then return {e, t, 'lost'} end
local out = {e, t, 'ok'}
for i = 1, #r do out[#out + 1] = r[i][2][2] end
return out"#;

/// A topic's presence on the live nodes: `{connections, uids}`, or with
/// ARGV 3 (a limit) a page of its uids after ARGV 4 (sorted): `{uids...}`
/// with one more than the limit when there are more. KEYS: the topic's
/// `tp:{NAME}` (node -> connections); ARGV 1 and 2: the prefix and the
/// topic's uid-set prefix `PREFIX:tu:{NAME}:`.
pub(super) const PRESENCE: &str = r#"local sum, sets = 0, {}
local t = redis.call('HGETALL', KEYS[1])
for i = 1, #t, 2 do
  if redis.call('EXISTS', ARGV[1] .. 'alive:' .. t[i]) == 1 then
    sum = sum + tonumber(t[i + 1])
    sets[#sets + 1] = ARGV[2] .. t[i]
  end
end
local uids = {}
if #sets > 0 then uids = redis.call('SUNION', unpack(sets)) end
if not ARGV[3] then return {sum, #uids} end
table.sort(uids)
local out, limit = {}, tonumber(ARGV[3])
for _, u in ipairs(uids) do
  if u > ARGV[4] then
    out[#out + 1] = u
    if #out > limit then break end
  end
end
return out"#;

/// Forgets the joins of a dropped topic: the topic leaves each joined
/// uid's `j:{UID}` set, then its `jt:{TOPIC}` set goes. KEYS: `jt:{TOPIC}`;
/// ARGV: the prefix, the topic.
pub(super) const DROP_JOINS: &str = r#"for _, u in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  redis.call('SREM', ARGV[1] .. 'j:{' .. u .. '}', ARGV[2])
end
redis.call('DEL', KEYS[1])
return 0"#;

/// A script, by what it does.
#[derive(Clone, Copy, Debug)]
pub(super) enum Script {
    SetCount,
    Online,
    Count,
    Reap,
    NodeStats,
    Add,
    Range,
    Presence,
    DropJoins,
}

/// Every script's source, in [`Script`]'s order.
pub(super) const ALL: [&str; 9] = [
    SET_COUNT, ONLINE, COUNT, REAP, NODE_STATS, ADD, RANGE, PRESENCE, DROP_JOINS,
];

/// The scripts' SHA1 digests, as EVALSHA takes them.
pub(super) struct Shas([String; 9]);

impl Shas {
    pub(super) fn new() -> Shas {
        Shas(ALL.map(|script| sha1_smol::Sha1::from(script).digest().to_string()))
    }

    /// Runs a loaded script with EVALSHA on the command link (unbounded:
    /// scripts keep Redis's picture of the cluster, or answer queries);
    /// refused only while the link is not up. Borrows only the client, so
    /// keys and arguments may borrow the rest of the cluster.
    pub(super) fn eval(
        &self,
        cmd: &mut Client<Pending>,
        script: Script,
        keys: &[&[u8]],
        args: &[&[u8]],
        tag: Pending,
    ) -> Result<(), SendError<Pending>> {
        const KEY_COUNTS: [&[u8]; 5] = [b"0", b"1", b"2", b"3", b"4"];
        // EVALSHA, the SHA, the key count, then at most 4 keys and 9
        // arguments together: on the stack.
        let mut all: [&[u8]; 16] = [b""; 16];
        let n = 3 + keys.len() + args.len();
        all[..3].copy_from_slice(&[
            b"EVALSHA",
            self.0[script as usize].as_bytes(),
            KEY_COUNTS[keys.len()],
        ]);
        all[3..3 + keys.len()].copy_from_slice(keys);
        all[3 + keys.len()..n].copy_from_slice(args);
        cmd.send_unbounded(&all[..n], tag)
    }
}
