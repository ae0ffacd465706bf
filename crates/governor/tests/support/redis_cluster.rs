//! A real Redis Cluster for one test: three masters and three replicas, each a redis-server
//! with `--cluster-enabled yes` on a free port, joined with `redis-cli --cluster create`, and
//! stopped when dropped.

use super::redis_server::RedisServer;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct RedisCluster {
    /// Every node, the masters first as `redis-cli` made them (it pairs each replica with a
    /// master); `None` once killed.
    pub nodes: Vec<Option<RedisServer>>,
}

/// A node's answer to a command, `None` when it does not answer.
fn ask<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> Option<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(1))
        .ok()?;
    cmd.query(&mut conn).ok()
}

fn info_field(info: &str, name: &str) -> Option<String> {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .map(|v| v.trim().to_owned())
}

impl RedisCluster {
    /// Starts six nodes and makes them a cluster of 3 masters with one replica each; returns
    /// once every node sees the cluster as `ok` and every replica is in sync with its master.
    pub fn start() -> Self {
        let nodes: Vec<RedisServer> = (0..6).map(|_| Self::node_server()).collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli is not installed: run scripts/install-test-deps");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster {
            nodes: nodes.into_iter().map(Some).collect(),
        };
        cluster.await_healthy(Duration::from_secs(30));
        cluster
    }

    /// A redis-server ready to join a cluster.
    fn node_server() -> RedisServer {
        RedisServer::start_with(&[
            "--appendonly",
            "no",
            "--cluster-enabled",
            "yes",
            // A failed master is replaced within about two seconds.
            "--cluster-node-timeout",
            "1000",
        ])
    }

    /// Starts a new node and joins it as a replica of the master with the fewest replicas
    /// (`redis-cli --cluster add-node … --cluster-slave`); returns once it is in sync.
    pub fn add_replica(&mut self) -> u16 {
        let node = Self::node_server();
        let port = node.port;
        let out = Command::new("redis-cli")
            .args(["--cluster", "add-node"])
            .arg(format!("127.0.0.1:{port}"))
            .arg(format!("127.0.0.1:{}", self.live_ports()[0]))
            .arg("--cluster-slave")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster add-node: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        self.nodes.push(Some(node));
        self.await_healthy(Duration::from_secs(30));
        port
    }

    /// The URL of the first node: any node is enough to find the cluster.
    pub fn url(&self) -> String {
        let port = self.live_ports()[0];
        format!("redis://127.0.0.1:{port}/")
    }

    /// Every live node's URL, separated by commas (the list form of `--redis`).
    pub fn every_node_url(&self) -> String {
        self.live_ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Key prefixes of `n` accounts (`quantum:{acctI}:`) whose hash slots are served by `n`
    /// different masters, each with its master's port.
    pub fn accounts_on_distinct_masters(&self, n: usize) -> Vec<(String, u16)> {
        let mut masters = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for i in 0.. {
            if out.len() == n {
                break;
            }
            let prefix = format!("quantum:{{acct{i}}}:");
            let master = self.master_of(&prefix);
            if masters.insert(master) {
                out.push((prefix, master));
            }
        }
        out
    }

    /// The ports of the nodes still running.
    pub fn live_ports(&self) -> Vec<u16> {
        self.nodes.iter().flatten().map(|n| n.port).collect()
    }

    /// A connection to the cluster as a client sees it.
    pub fn conn(&self) -> redis::cluster::ClusterConnection {
        let urls: Vec<String> = self
            .live_ports()
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect();
        redis::cluster::ClusterClient::new(urls)
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// The port of the master serving `key`'s slot, as the live nodes see it.
    pub fn master_of(&self, key: &str) -> u16 {
        let port = self.live_ports()[0];
        let slot: u16 = ask(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key)).unwrap();
        let slots: redis::Value = ask(port, redis::cmd("CLUSTER").arg("SLOTS")).unwrap();
        let redis::Value::Array(ranges) = slots else {
            panic!("CLUSTER SLOTS: {slots:?}")
        };
        for range in ranges {
            let redis::Value::Array(r) = range else {
                continue;
            };
            let from: u16 = redis::from_redis_value(&r[0]).unwrap();
            let to: u16 = redis::from_redis_value(&r[1]).unwrap();
            if (from..=to).contains(&slot) {
                let redis::Value::Array(master) = &r[2] else {
                    panic!("{r:?}")
                };
                return redis::from_redis_value(&master[1]).unwrap();
            }
        }
        panic!("no master serves slot {slot} of {key}")
    }

    /// The port of the replica of the master on `port` (the first one it lists).
    pub fn replica_of(&self, port: u16) -> u16 {
        let info: String = ask(port, redis::cmd("INFO").arg("replication")).unwrap();
        let slave = info_field(&info, "slave0").unwrap_or_else(|| panic!("no replica: {info}"));
        slave
            .split(',')
            .find_map(|kv| kv.strip_prefix("port="))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("slave0:{slave}"))
    }

    /// The node on `port`.
    pub fn node(&self, port: u16) -> &RedisServer {
        self.nodes
            .iter()
            .flatten()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no live node on {port}"))
    }

    /// Kills the node on `port` with SIGKILL.
    pub fn kill(&mut self, port: u16) {
        for slot in &mut self.nodes {
            if slot.as_ref().is_some_and(|n| n.port == port) {
                drop(slot.take()); // RedisServer's drop kills the process
            }
        }
    }

    /// Waits until every live node says `cluster_state:ok`, knows every live node, and every
    /// live replica has its link to its master up.
    pub fn await_healthy(&self, limit: Duration) {
        let started = Instant::now();
        loop {
            let live = self.live_ports();
            let healthy = live.iter().all(|&port| {
                let Some(info) = ask::<String>(port, redis::cmd("CLUSTER").arg("INFO")) else {
                    return false;
                };
                let Some(repl) = ask::<String>(port, redis::cmd("INFO").arg("replication")) else {
                    return false;
                };
                info_field(&info, "cluster_state").as_deref() == Some("ok")
                    && info_field(&info, "cluster_known_nodes")
                        .and_then(|n| n.parse::<usize>().ok())
                        .is_some_and(|n| n >= live.len())
                    && (info_field(&repl, "role").as_deref() == Some("master")
                        || info_field(&repl, "master_link_status").as_deref() == Some("up"))
            });
            if healthy {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "the cluster on {live:?} was not healthy within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
