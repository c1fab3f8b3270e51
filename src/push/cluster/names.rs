//! What this node calls things in Redis (its keys, the channels, its own
//! name on what it publishes), spelled once when the cluster is made so
//! that commands and received messages borrow them instead of formatting.

use crate::push::stream::Stream;

/// The prefix-qualified names of one node's keys and channels.
pub(super) struct Names {
    /// This node's name, as it appears in the keys and in `held:`/`alive:`.
    pub node: String,
    /// `PREFIX:`, which the scripts prepend to what they build.
    pub prefix: String,
    /// `PREFIX:u:`, the start of every uid channel.
    pub uid_channels: Vec<u8>,
    /// `PREFIX:all`, the broadcast channel.
    pub all_channel: Vec<u8>,
    /// `PREFIX:t:`, the start of every topic channel.
    pub topic_channels: Vec<u8>,
    /// `PREFIX:ctl`, where topic commands and kicks reach every node.
    pub ctl_channel: Vec<u8>,
    /// `PREFIX:conns`: each node's bound connections.
    pub conns: String,
    /// `PREFIX:uids`: the uids online anywhere.
    pub uids: String,
    /// `PREFIX:nodes`: the nodes that sent a heartbeat.
    pub nodes: String,
    /// `PREFIX:alive:`, the start of every node's heartbeat key.
    pub alive: String,
    /// `PREFIX:alive:NODE`, this node's heartbeat key.
    pub own_alive: String,
    /// `PREFIX:stats:NODE`, this node's last /stats.
    pub own_stats: String,
    /// `PREFIX:held:NODE`, the uids this node holds.
    pub own_held: String,
}

impl Names {
    pub(super) fn new(prefix: &str, node: &str) -> Names {
        let key = |rest: &str| format!("{prefix}:{rest}");
        Names {
            node: node.to_string(),
            prefix: key(""),
            uid_channels: key("u:").into_bytes(),
            all_channel: key("all").into_bytes(),
            topic_channels: key("t:").into_bytes(),
            ctl_channel: key("ctl").into_bytes(),
            conns: key("conns"),
            uids: key("uids"),
            nodes: key("nodes"),
            alive: key("alive:"),
            own_alive: key(&format!("alive:{node}")),
            own_stats: key(&format!("stats:{node}")),
            own_held: key(&format!("held:{node}")),
        }
    }

    /// `PREFIX:o:UID`: the uid's connections per node.
    pub(super) fn online_key(&self, uid: &str) -> String {
        format!("{}o:{uid}", self.prefix)
    }

    /// The channel of `uid` (`None`: the broadcast channel), written into
    /// `buf` (a buffer kept between pushes).
    pub(super) fn channel_into(&self, buf: &mut Vec<u8>, uid: Option<&str>) {
        buf.clear();
        match uid {
            Some(uid) => {
                buf.extend_from_slice(&self.uid_channels);
                buf.extend_from_slice(uid.as_bytes());
            }
            None => buf.extend_from_slice(&self.all_channel),
        }
    }

    /// A stream's history keys: `PREFIX:h:{STREAM}` (its messages, a Redis
    /// Stream) and `PREFIX:hm:{STREAM}` (its epoch and latest offset). The
    /// stream's name is the hash tag, so that both keys of a stream land
    /// on one node of a Redis Cluster, or of streams spread over several
    /// Redis by that name, with no change of format.
    pub(super) fn history_keys(&self, stream: Stream<'_>) -> (Vec<u8>, Vec<u8>) {
        let mut name = Vec::new();
        stream.write_name(&mut name);
        let key = |kind: &str| {
            let mut k = format!("{}{kind}:{{", self.prefix).into_bytes();
            k.extend_from_slice(&name);
            k.push(b'}');
            k
        };
        (key("h"), key("hm"))
    }

    /// The channel of topic `name`: `PREFIX:t:NAME`.
    pub(super) fn topic_channel(&self, name: &str) -> Vec<u8> {
        let mut ch = self.topic_channels.clone();
        ch.extend_from_slice(name.as_bytes());
        ch
    }

    /// The channel of `uid`, for a SUBSCRIBE or an UNSUBSCRIBE.
    pub(super) fn uid_channel(&self, uid: &str) -> Vec<u8> {
        let mut ch = Vec::with_capacity(self.uid_channels.len() + uid.len());
        self.channel_into(&mut ch, Some(uid));
        ch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_channels_are_the_protocols() {
        let n = Names::new("app", "n1");
        assert_eq!(n.uid_channel("alice"), b"app:u:alice");
        let mut buf = b"stale".to_vec();
        n.channel_into(&mut buf, None);
        assert_eq!(buf, b"app:all");
        assert_eq!(n.online_key("alice"), "app:o:alice");
        let (h, hm) = n.history_keys(Stream::Uid("alice"));
        assert_eq!(
            (&h[..], &hm[..]),
            (&b"app:h:{u:alice}"[..], &b"app:hm:{u:alice}"[..])
        );
        assert_eq!(
            [&n.prefix, &n.alive, &n.own_alive, &n.own_stats, &n.own_held],
            [
                "app:",
                "app:alive:",
                "app:alive:n1",
                "app:stats:n1",
                "app:held:n1"
            ]
        );
        assert_eq!(
            [&n.conns, &n.uids, &n.nodes],
            ["app:conns", "app:uids", "app:nodes"]
        );
    }
}
