//! A local etcd server for tests and benches: Debian's etcd-server (`.ci/setup` installs it)
//! on free loopback ports.

use anyhow::{bail, Context};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An etcd server on loopback with its data under a directory the caller owns, killed on drop.
pub struct EtcdProcess {
    child: Child,
    pub url: String,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EtcdProcess {
    /// Starts etcd with its data in `dir/etcd` and waits until it takes connections.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::spawn(dir, None)
    }

    /// Like `start`, serving TLS with `cert`/`key` and requiring client certs from `ca`.
    pub fn start_tls(dir: &Path, cert: &Path, key: &Path, ca: &Path) -> anyhow::Result<Self> {
        Self::spawn(dir, Some([cert, key, ca]))
    }

    /// Ports come from the kernel's ephemeral range, so another process (a parallel test's
    /// server, an outgoing connection) may take one between our probe and etcd's bind; etcd
    /// then exits at once, and a fresh pair of ports is tried.
    fn spawn(dir: &Path, tls: Option<[&Path; 3]>) -> anyhow::Result<Self> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::spawn_once(dir, tls)? {
                Some(etcd) => return Ok(etcd),
                None if attempt < 5 => continue,
                None => bail!("etcd exited before serving, {attempt} times (ports taken?)"),
            }
        }
    }

    /// None: etcd exited before it took connections.
    fn spawn_once(dir: &Path, tls: Option<[&Path; 3]>) -> anyhow::Result<Option<Self>> {
        let (client, peer) = (free_port()?, free_port()?);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = Command::new("etcd");
        if let Some([cert, key, ca]) = tls {
            cmd.arg("--client-cert-auth")
                .args(["--cert-file", &cert.display().to_string(), "--key-file", &key.display().to_string()])
                .args(["--trusted-ca-file", &ca.display().to_string()]);
        }
        let child = cmd
            .args(["--data-dir", &dir.join("etcd").display().to_string()])
            .args(["--listen-client-urls", &url, "--advertise-client-urls", &url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start etcd (.ci/setup installs Debian's etcd-server)")?;
        let mut etcd = EtcdProcess { child, url };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if etcd.child.try_wait()?.is_some() {
                return Ok(None);
            }
            if std::net::TcpStream::connect(("127.0.0.1", client)).is_ok() {
                return Ok(Some(etcd));
            }
            if Instant::now() > deadline {
                bail!("etcd did not start on {}", etcd.url);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
