//! Where the Redis is: one server, or a Redis Cluster. `--redis` takes the URL of one server or
//! of any node of a cluster (the first connection asks the server whether it is in cluster mode
//! and, if so, learns the other nodes from it), or a comma-separated list of cluster nodes.
//!
//! On a cluster every script and pipeline of one account touches keys of that account's prefix
//! only, and the prefix must carry a hash tag (`quantum:{acct1}:`) so that all of them live in
//! one hash slot: a prefix without one is refused ([`check_prefix`]). Commands without a key
//! (`SCAN`, `WAIT`) go to the master of that slot, the "home" node.
//!
//! The cluster connection is redis-rs's own (slot map, MOVED/ASK), with its retries turned off:
//! a command resent by the library after a dropped connection could commit a batch twice.
//! Every failure comes back to the caller, who drops the link and connects again (the slot map
//! is then read afresh) — the same path as a single server's restart.

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConnection};
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{ConnectionLike, ErrorKind, RedisError, RedisResult};
use std::sync::OnceLock;
use std::time::Duration;

/// What `--redis` names: one or more seed URLs, and, once a server has answered, whether they
/// are one server or a cluster.
pub struct RedisTarget {
    seeds: Vec<redis::ConnectionInfo>,
    server: OnceLock<Server>,
}

enum Server {
    Single(redis::Client),
    Cluster(ClusterClient),
}

/// A connection to the target: to the one server, or to the cluster with the home slot of the
/// key prefix it was opened for.
pub enum Link {
    /// One server.
    Single(redis::Connection),
    /// A cluster; `home` is the hash slot of the prefix's keys.
    Cluster {
        /// redis-rs's cluster connection (one connection per node it has talked to).
        conn: Box<ClusterConnection>,
        /// The hash slot of every key under the prefix.
        home: u16,
    },
}

/// The hash tag of a key prefix (`acct1` in `quantum:{acct1}:`), as Redis Cluster reads it: the
/// text between the first `{` and the first `}` after it, if not empty.
pub fn hash_tag(prefix: &str) -> Option<&str> {
    let open = prefix.find('{')?;
    let rest = &prefix[open + 1..];
    let close = rest.find('}')?;
    Some(&rest[..close]).filter(|t| !t.is_empty())
}

/// Refuses, on a cluster, a key prefix without a hash tag: its keys would spread over the
/// cluster's slots and every script would fail with CROSSSLOT.
pub fn check_prefix(cluster: bool, prefix: &str) -> Result<(), String> {
    if cluster && hash_tag(prefix).is_none() {
        return Err(format!(
            "key_prefix {prefix:?} has no hash tag, and the Redis at --redis is a cluster: every \
             key of an account must live in one hash slot, so the prefix needs one, such as \
             \"quantum:{{acct1}}:\" (GOV_KEY_PREFIX or key_prefix in the config)"
        ));
    }
    Ok(())
}

fn client_error(what: String) -> RedisError {
    RedisError::from((ErrorKind::ClientError, "redis target", what))
}

/// Whether a failed call leaves the link unusable: dropped, refused, timed out, or a cluster
/// whose slots moved or that is failing over (a fresh link reads the slot map again).
pub fn needs_reconnect(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_connection_refusal()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound | ErrorKind::MasterDown | ErrorKind::ReadOnly
        )
}

impl RedisTarget {
    /// Reads `urls`: one URL, or several separated by commas (the nodes of one cluster).
    pub fn parse(urls: &str) -> RedisResult<Self> {
        let seeds = urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| {
                redis::IntoConnectionInfo::into_connection_info(u)
                    .map_err(|e| client_error(format!("--redis {u:?}: {e}")))
            })
            .collect::<RedisResult<Vec<_>>>()?;
        if seeds.is_empty() {
            return Err(client_error("--redis is empty".to_owned()));
        }
        Ok(RedisTarget {
            seeds,
            server: OnceLock::new(),
        })
    }

    /// Whether the target is a cluster, once a server has said so (`None` before).
    pub fn is_cluster(&self) -> Option<bool> {
        self.server.get().map(|s| matches!(s, Server::Cluster(_)))
    }

    /// Connects, learning first (once) whether the target is one server or a cluster. On a
    /// cluster the prefix must carry a hash tag.
    pub fn connect(&self, prefix: &str, timeout: Duration) -> RedisResult<Link> {
        let server = match self.server.get() {
            Some(s) => s,
            None => {
                let found = self.discover(timeout)?;
                self.server.get_or_init(|| found)
            }
        };
        match server {
            Server::Single(client) => {
                Ok(Link::Single(client.get_connection_with_timeout(timeout)?))
            }
            Server::Cluster(client) => {
                check_prefix(true, prefix).map_err(client_error)?;
                let mut conn = client.get_connection()?;
                let home: u16 = redis::cmd("CLUSTER")
                    .arg("KEYSLOT")
                    .arg(prefix)
                    .query(&mut conn)?;
                Ok(Link::Cluster {
                    conn: Box::new(conn),
                    home,
                })
            }
        }
    }

    /// Asks the first seed that answers whether it is in cluster mode; a cluster's client gets
    /// every node the seed knows as its starting points, so that losing the seed later does not
    /// lose the cluster.
    fn discover(&self, timeout: Duration) -> RedisResult<Server> {
        if self.seeds.len() > 1 {
            return cluster_client(self.seeds.clone(), timeout).map(Server::Cluster);
        }
        let seed = self.seeds[0].clone();
        let client = redis::Client::open(seed.clone())?;
        let mut conn = client.get_connection_with_timeout(timeout)?;
        let info: String = redis::cmd("INFO").arg("cluster").query(&mut conn)?;
        if !info.lines().any(|l| l.trim() == "cluster_enabled:1") {
            return Ok(Server::Single(client));
        }
        let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(&mut conn)?;
        let mut all = vec![seed.clone()];
        for addr in node_addresses(&nodes) {
            let mut node = seed.clone();
            node.addr = addr;
            all.push(node);
        }
        cluster_client(all, timeout).map(Server::Cluster)
    }
}

fn cluster_client(
    nodes: Vec<redis::ConnectionInfo>,
    timeout: Duration,
) -> RedisResult<ClusterClient> {
    ClusterClientBuilder::new(nodes)
        .connection_timeout(timeout)
        .retries(0)
        .build()
}

/// The addresses in a `CLUSTER NODES` answer (`id host:port@cport flags …` per line), those
/// without an address left out.
fn node_addresses(nodes: &str) -> Vec<redis::ConnectionAddr> {
    nodes
        .lines()
        .filter_map(|line| {
            let addr = line.split_whitespace().nth(1)?;
            let host_port = addr.split(['@', ',']).next()?;
            let (host, port) = host_port.rsplit_once(':')?;
            let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
            (!host.is_empty()).then(|| redis::ConnectionAddr::Tcp(host.to_owned(), port))
        })
        .collect()
}

impl Link {
    /// Waits up to `timeout` for `replicas` replicas of the home master to hold every write
    /// this link made (`WAIT`, on the node the writes went to); whether they did.
    pub fn confirm_replicated(&mut self, replicas: u32, timeout: Duration) -> RedisResult<bool> {
        let acked: u32 = self.query_home(
            redis::cmd("WAIT")
                .arg(replicas)
                .arg(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
        )?;
        Ok(acked >= replicas)
    }

    /// Whether this link is to a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Link::Cluster { .. })
    }

    /// Runs a command that names no key (`SCAN`, `KEYS`, `WAIT`) where the prefix's keys live:
    /// the one server, or the master of the home slot.
    pub fn query_home<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> RedisResult<T> {
        match self {
            Link::Single(c) => cmd.query(c),
            Link::Cluster { conn, home } => {
                let route = Route::new(*home, SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                redis::from_owned_redis_value(conn.route_command(cmd, routing)?)
            }
        }
    }
}

impl ConnectionLike for Link {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<redis::Value> {
        match self {
            Link::Single(c) => c.req_packed_command(cmd),
            Link::Cluster { conn, .. } => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<redis::Value>> {
        match self {
            Link::Single(c) => c.req_packed_commands(cmd, offset, count),
            // redis-rs sends a pipeline to the node of its first command's key; every key of a
            // pipeline here is under one hash-tagged prefix, so that node holds them all.
            Link::Cluster { conn, .. } => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &redis::Cmd) -> RedisResult<redis::Value> {
        match self {
            Link::Single(c) => c.req_command(cmd),
            Link::Cluster { conn, .. } => conn.req_command(cmd),
        }
    }

    fn supports_pipelining(&self) -> bool {
        true
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Single(c) => c.get_db(),
            Link::Cluster { conn, .. } => conn.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match self {
            Link::Single(c) => c.check_connection(),
            Link::Cluster { conn, .. } => conn.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            Link::Single(c) => c.is_open(),
            Link::Cluster { conn, .. } => conn.is_open(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_tag_is_read_as_redis_cluster_reads_it() {
        assert_eq!(hash_tag("quantum:{acct1}:"), Some("acct1"));
        assert_eq!(hash_tag("quantum:"), None);
        // An empty tag hashes the whole key: no tag.
        assert_eq!(hash_tag("quantum:{}:{acct}"), None);
        // The first `{` and the first `}` after it.
        assert_eq!(hash_tag("q:{a{b}:c}"), Some("a{b"));
        assert_eq!(hash_tag("q:}x{a}"), Some("a"));
        assert_eq!(hash_tag("q:{open"), None);
    }

    #[test]
    fn a_prefix_without_tag_is_refused_on_a_cluster_only() {
        assert!(check_prefix(false, "quantum:").is_ok());
        assert!(check_prefix(true, "quantum:{a}:").is_ok());
        let e = check_prefix(true, "quantum:").unwrap_err();
        assert!(e.contains("\"quantum:\"") && e.contains("hash tag"), "{e}");
    }

    #[test]
    fn node_addresses_are_read_from_cluster_nodes() {
        let nodes = "07c3 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460\n\
                     e7d1 127.0.0.1:30004@40004,host.example slave 07c3 0 1 4 connected\n\
                     aa11 :0@0 master,noaddr - 0 0 0 disconnected\n";
        let got: Vec<String> = node_addresses(nodes)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(got, ["127.0.0.1:30001", "127.0.0.1:30004"]);
    }

    #[test]
    fn a_list_of_urls_is_a_cluster_and_bad_urls_are_named() {
        let t = RedisTarget::parse("redis://127.0.0.1:1, redis://127.0.0.1:2").unwrap();
        assert_eq!(t.seeds.len(), 2);
        assert_eq!(t.is_cluster(), None);
        let e = RedisTarget::parse("redis://127.0.0.1:1,nonsense://x")
            .err()
            .unwrap();
        assert!(e.to_string().contains("nonsense://x"), "{e}");
        assert!(RedisTarget::parse(" , ").is_err());
    }
}
