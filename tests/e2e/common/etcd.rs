//! A multi-member etcd cluster on loopback (Debian's etcd-server, `.ci/setup` installs it),
//! statically bootstrapped (`--initial-cluster`), whose members can be killed (`kill -9`) and
//! restarted on their data and ports; and an etcd client for what a test asks etcd directly
//! (who leads, the revision, a compaction, a serializable read).

use super::free_port;
use etcd_client::{Client, CompactionOptions, ConnectOptions, GetOptions};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

impl Member {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }
}

pub struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    rt: tokio::runtime::Runtime,
}

impl EtcdCluster {
    /// Starts `n` members and waits until they have a leader.
    pub fn start(n: usize) -> EtcdCluster {
        let members = (0..n)
            .map(|i| Member { name: format!("m{i}"), client: free_port(), peer: free_port(), child: None })
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut c = EtcdCluster { dir: tempfile::tempdir().unwrap(), members, rt };
        for i in 0..n {
            c.start_member(i);
        }
        c.leader();
        c
    }

    /// The client URLs, for `--etcd-servers` (comma-joined).
    pub fn servers(&self) -> String {
        self.members.iter().map(Member::url).collect::<Vec<_>>().join(",")
    }

    pub fn url(&self, i: usize) -> String {
        self.members[i].url()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// (Re)starts member `i` on its data dir and ports, and waits until it takes connections.
    pub fn start_member(&mut self, i: usize) {
        let cluster = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let m = &self.members[i];
        let (url, peer) = (m.url(), format!("http://127.0.0.1:{}", m.peer));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{}.log", m.name)))
            .unwrap();
        let child = Command::new("etcd")
            .args(["--name", &m.name])
            .args(["--data-dir", &self.dir.path().join(&m.name).display().to_string()])
            .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &cluster, "--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "frontdoor-e2e"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd (.ci/setup installs Debian's etcd-server)");
        let port = m.client;
        self.members[i].child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "etcd member {i} did not start:\n{}", self.log(i));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9` member `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn kill_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }

    pub fn start_all(&mut self) {
        for i in 0..self.members.len() {
            self.start_member(i);
        }
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.log", self.members[i].name))).unwrap_or_default()
    }

    fn connect(&self, urls: &[String]) -> Option<Client> {
        let options =
            ConnectOptions::new().with_connect_timeout(Duration::from_secs(1)).with_timeout(Duration::from_secs(3));
        self.rt.block_on(Client::connect(urls, Some(options))).ok()
    }

    /// Which member leads, once the live ones agree on one (waits for an election).
    pub fn leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for (i, m) in self.members.iter().enumerate().filter(|(_, m)| m.child.is_some()) {
                let Some(mut c) = self.connect(&[m.url()]) else { continue };
                if let Ok(s) = self.rt.block_on(c.status()) {
                    if s.leader() != 0 && s.header().is_some_and(|h| h.member_id() == s.leader()) {
                        return i;
                    }
                }
            }
            assert!(Instant::now() < deadline, "the etcd cluster elected no leader");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A member other than `not` that is running.
    pub fn other_than(&self, not: usize) -> usize {
        (0..self.members.len()).find(|&i| i != not && self.members[i].child.is_some()).expect("another member")
    }

    /// etcd's current revision (a quorum read through every member).
    pub fn revision(&self) -> i64 {
        let urls: Vec<String> = self.members.iter().map(Member::url).collect();
        let mut c = self.connect(&urls).expect("connect to etcd");
        let r = self.rt.block_on(c.get("compact_rev_key", None)).expect("etcd revision");
        r.header().unwrap().revision()
    }

    /// Compacts etcd's history up to `rev` (physically, so it is gone when this returns).
    pub fn compact(&self, rev: i64) {
        let urls: Vec<String> = self.members.iter().map(Member::url).collect();
        let mut c = self.connect(&urls).expect("connect to etcd");
        self.rt.block_on(c.compact(rev, Some(CompactionOptions::new().with_physical()))).expect("compact etcd");
    }

    /// The keys under `prefix` member `i` holds, by a serializable (local, possibly stale)
    /// read, which a member answers without a quorum.
    pub fn serializable_keys(&self, i: usize, prefix: &str) -> Result<Vec<String>, String> {
        let mut c = self.connect(&[self.url(i)]).ok_or("cannot connect")?;
        let options = GetOptions::new().with_prefix().with_keys_only().with_serializable();
        let r = self.rt.block_on(c.get(prefix, Some(options))).map_err(|e| e.to_string())?;
        Ok(r.kvs().iter().map(|kv| String::from_utf8_lossy(kv.key()).into_owned()).collect())
    }

    /// Whether member `i` answers a linearizable (quorum) read within `timeout`.
    pub fn linearizable_ok(&self, i: usize) -> bool {
        let Some(mut c) = self.connect(&[self.url(i)]) else { return false };
        self.rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(3), c.get("health", None)).await })
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}
