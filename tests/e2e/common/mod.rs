//! Shared harness for integration tests: starts the real `frontdoor` binary on an
//! ephemeral loopback port with freshly generated dev certs, and talks to it with real
//! TLS (reqwest/rustls) and real kubectl.
#![allow(dead_code)]

pub mod otlp;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod etcd;

pub const KUBECTL: &str = "/usr/bin/kubectl";

/// A free loopback port for a server the test starts, which binds it right after.
///
/// Not from the kernel's ephemeral range: a port handed out there and released can be handed
/// to the next caller, or taken as an outgoing connection's source port, before the server
/// binds it; and pingora listens with SO_REUSEPORT, so two frontdoors on one port would share
/// its connections. Ports below the ephemeral range (32768 on Linux), handed out in turn per
/// test process and spread by pid across processes, avoid all three.
///
/// Each port is handed out once per process: a test restarts a server on its port (a kill -9,
/// a replica brought back), and a port handed out again while it was free would have two tests
/// bind it, one then talking to the other's server (seen once: the suite hands out more ports
/// than the 200 each process had, and they came round again).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    const PER_PROCESS: u16 = 2_000;
    let base = 20_000 + (std::process::id() % 6) as u16 * PER_PROCESS;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(n < PER_PROCESS, "no free port left for this test process");
        let port = base + n;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A running frontdoor. Killed on drop.
pub struct Frontdoor {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub logs: Arc<Mutex<String>>,
}

impl Frontdoor {
    /// Starts `frontdoor serve` on embedded defaults (dev certs in a temp dir) plus `args`.
    pub fn start(args: &[&str]) -> Frontdoor {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, args)
    }

    /// Like `start`, but in a directory the test prepared (e.g. with policy files).
    pub fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Frontdoor {
        Self::start_logging(dir, args, Some("info"))
    }

    /// Like `start_in`, with `FRONTDOOR_LOG` set to `log` (None: the flags decide the log).
    pub fn start_logging(dir: tempfile::TempDir, args: &[&str], log: Option<&str>) -> Frontdoor {
        Self::start_on(dir, free_port(), args, log)
    }

    /// Like `start_logging`, on a given port (a restart where a server was).
    pub fn start_on(dir: tempfile::TempDir, port: u16, args: &[&str], log: Option<&str>) -> Frontdoor {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_frontdoor"));
        cmd.arg("serve")
            .arg("--secure-port")
            .arg(port.to_string())
            .arg("--cert-dir")
            .arg(dir.path().join("certs"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--policy-dir")
            .arg(dir.path().join("policies"))
            .args(args)
            .env_remove("FRONTDOOR_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(log) = log {
            cmd.env("FRONTDOOR_LOG", log);
        }
        let mut child = cmd.spawn().expect("start frontdoor");
        let logs = Arc::new(Mutex::new(String::new()));
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    // a line and its newline under one lock: stdout's reader must not land between
                    let mut logs = logs.lock().unwrap();
                    logs.push_str(&line);
                    logs.push('\n');
                }
            });
        }
        let fd = Frontdoor { child, port, dir, logs };
        fd.wait_ready();
        fd
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() && self.kubeconfig().exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("frontdoor did not start:\n{}", self.logs());
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Waits for `needle` in the log: stderr is read as it comes, so a line can trail the
    /// response or metric that followed it.
    pub fn wait_for_log(&self, needle: &str) {
        let end = Instant::now() + Duration::from_secs(10);
        while !self.logs().contains(needle) {
            assert!(Instant::now() < end, "no {needle:?} in the log:\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{}", self.port, path)
    }

    pub fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.certs().join("admin.kubeconfig")
    }

    /// An HTTPS client trusting the dev CA, without a client certificate (anonymous).
    pub fn anonymous_client(&self) -> reqwest::blocking::Client {
        client_builder(&self.certs()).build().unwrap()
    }

    /// An HTTPS client presenting the admin cert (system:masters).
    pub fn admin_client(&self) -> reqwest::blocking::Client {
        self.client_with_cert("admin")
    }

    /// An HTTPS client presenting `<certs>/<name>.crt` / `.key`.
    pub fn client_with_cert(&self, name: &str) -> reqwest::blocking::Client {
        self.client_builder_with_cert(name).build().unwrap()
    }

    /// `client_with_cert`'s builder, for a client with more settings (HTTP/1.1 or HTTP/2 only).
    pub fn client_builder_with_cert(&self, name: &str) -> reqwest::blocking::ClientBuilder {
        let mut pem = std::fs::read(self.certs().join(format!("{name}.crt"))).unwrap();
        pem.extend(std::fs::read(self.certs().join(format!("{name}.key"))).unwrap());
        client_builder(&self.certs()).identity(reqwest::Identity::from_pem(&pem).unwrap())
    }

    /// Runs kubectl against this frontdoor with the admin kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        kubectl(&self.kubeconfig(), args)
    }

    /// kubectl as admin, expected to succeed: its stdout (on failure, its stderr and our log).
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let o = self.kubectl(args);
        assert!(o.status.success(), "kubectl {args:?} failed: {}\n{}", stderr(&o), self.logs());
        stdout(&o)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
    }
}

impl Drop for Frontdoor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client_builder(certs: &Path) -> reqwest::blocking::ClientBuilder {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(certs.join("ca.crt")).unwrap()).unwrap();
    reqwest::blocking::Client::builder().use_rustls_tls().add_root_certificate(ca).timeout(Duration::from_secs(30))
}

/// Polls `f` until it is true; panics naming `what` once `deadline` has passed.
pub fn wait_until(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(KUBECTL).arg("--kubeconfig").arg(kubeconfig).args(args).output().expect("run kubectl")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Copies `from`'s client CA and front-proxy pair into `certs` (created), so a second frontdoor
/// started there trusts the same clients and presents a proxy client cert `from` believes.
pub fn share_pki(from: &Frontdoor, certs: &Path) {
    std::fs::create_dir_all(certs).unwrap();
    for f in [
        "ca.crt",
        "ca.key",
        "front-proxy-ca.crt",
        "front-proxy-ca.key",
        "front-proxy-client.crt",
        "front-proxy-client.key",
    ] {
        std::fs::copy(from.certs().join(f), certs.join(f)).unwrap();
    }
}

/// The ResponseComplete audit event of the request with this Audit-ID, from a JSON-lines log.
pub fn audited(log: &Path, audit_id: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let ev = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["auditID"] == audit_id && e["stage"] == "ResponseComplete");
        if let Some(ev) = ev {
            return ev;
        }
        assert!(std::time::Instant::now() < deadline, "no ResponseComplete event for {audit_id}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a whole (finite) JSON watch stream as its events.
pub fn watch_events(resp: reqwest::blocking::Response) -> Vec<serde_json::Value> {
    use std::io::BufRead;
    assert_eq!(resp.status(), 200);
    std::io::BufReader::new(resp)
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect()
}

/// Reads a streamed response up to the end of its first line (the first watch event), without
/// waiting for more.
pub fn first_line(r: &mut reqwest::blocking::Response) -> String {
    use std::io::Read;
    let mut first = Vec::new();
    let mut buf = [0u8; 1024];
    while !first.contains(&b'\n') {
        let n = r.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended before the first event");
        first.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&first).to_string()
}
