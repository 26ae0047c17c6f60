//! A real `redis-server` on a free loopback port, and helpers to run backplanes against it.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrocast_backplane_redis::{RedisBackplane, RedisOptions};
use ferrocast_broker::{ChannelMessage, DeliverySink, Dropped, Link, Payload};

/// A real `redis-server`. With `FERROCAST_TEST_REDIS=one-node-cluster` it runs with
/// `--cluster-enabled yes` and owns every hash slot, and the backplanes use 16 buckets: a script
/// that reaches a key of another bucket than its `KEYS[]` is refused there (`#!lua` scripts on
/// Redis 7), so every test also proves the key layout is cluster-safe.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    cluster: bool,
    dir: Option<std::path::PathBuf>,
}

/// Buckets the backplanes use against a one-node cluster.
const CLUSTER_BUCKETS: u32 = 16;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Redis {
    /// Start redis-server, or fail loudly: these tests never skip.
    pub fn start() -> Self {
        let cluster = match std::env::var("FERROCAST_TEST_REDIS").as_deref() {
            Ok("one-node-cluster") => true,
            Ok("") | Err(_) => false,
            Ok(other) => panic!("FERROCAST_TEST_REDIS={other}: expected one-node-cluster or nothing"),
        };
        let mut redis = Redis {
            port: free_port(),
            child: None,
            cluster,
            dir: None,
        };
        redis.spawn();
        redis
    }

    fn spawn(&mut self) {
        let mut args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .map(String::from)
        .to_vec();
        if self.cluster {
            // A restart is a fresh server: a new cluster config, so it owns no slot until told.
            let dir = std::env::temp_dir().join(format!("fc-redis-cluster-{}-{}", self.port, std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temp dir for the cluster config");
            args.extend([
                "--cluster-enabled".into(),
                "yes".into(),
                "--dir".into(),
                dir.display().to_string(),
            ]);
            self.dir = Some(dir);
        }
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is required for these tests (Debian: apt-get install redis-server; `make test` installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.cluster {
            self.own_every_slot();
        }
    }

    /// Give the one-node cluster every slot and wait until it serves them.
    fn own_every_slot(&self) {
        let mut conn = self.client().get_connection().expect("connect to the cluster node");
        let _: () = redis::cmd("CLUSTER")
            .arg("ADDSLOTSRANGE")
            .arg(0)
            .arg(16383)
            .query(&mut conn)
            .expect("CLUSTER ADDSLOTSRANGE");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut conn)
                .expect("CLUSTER INFO");
            if info.contains("cluster_state:ok") {
                return;
            }
            assert!(Instant::now() < deadline, "the one-node cluster did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Buckets the backplanes use on this server.
    pub fn buckets(&self) -> u32 {
        if self.cluster {
            CLUSTER_BUCKETS
        } else {
            1
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill the server (state lost), to be started again with [`Redis::restart`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A fresh, empty server on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("client")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Collects every message a backplane delivers, and what it reports dropped.
#[derive(Default)]
pub struct Collect(pub Mutex<Vec<ChannelMessage>>, pub Mutex<Vec<Dropped>>);

impl DeliverySink for Collect {
    fn deliver(&self, message: &ChannelMessage) {
        self.0.lock().unwrap().push(message.clone());
    }

    fn dropped(&self, dropped: &Dropped) {
        self.1.lock().unwrap().push(dropped.clone());
    }
}

impl Collect {
    pub fn events(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|m| format!("{}:{}", m.channel, m.event_name()))
            .collect()
    }
}

pub fn backplane(redis: &Redis, node: &str, ttl: Duration) -> (Arc<RedisBackplane>, Arc<Collect>) {
    backplane_with(redis, node, ttl, |_| {})
}

/// A backplane with its options changed by `adjust`.
pub fn backplane_with(
    redis: &Redis,
    node: &str,
    ttl: Duration,
    adjust: impl FnOnce(&mut RedisOptions),
) -> (Arc<RedisBackplane>, Arc<Collect>) {
    let mut options = RedisOptions {
        url: redis.url(),
        sentinel: None,
        tls: Default::default(),
        prefix: "t".into(),
        node_id: node.into(),
        node_ttl: ttl,
        replay_log: Default::default(),
        buckets: redis.buckets(),
        cluster_urls: Vec::new(),
    };
    adjust(&mut options);
    let b = RedisBackplane::start(options).expect("backplane");
    let sink = Arc::new(Collect::default());
    ferrocast_broker::Backplane::set_sink(&*b, sink.clone());
    (b, sink)
}

/// Wait (bounded) until `cond` holds.
pub async fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn wait_up(b: &RedisBackplane) -> u64 {
    let mut link = ferrocast_broker::Backplane::link(b);
    let up = tokio::time::timeout(Duration::from_secs(10), link.wait_for(|l| matches!(l, Link::Up { .. })))
        .await
        .expect("link up in time")
        .expect("link watch open");
    match *up {
        Link::Up { generation } => generation,
        Link::Down => unreachable!(),
    }
}

pub fn message(channel: &str, event: &str) -> ChannelMessage {
    let payload = Payload::Event {
        event: event.into(),
        data: "{}".into(),
        user_id: None,
    };
    ChannelMessage::new("app", channel, payload)
}
