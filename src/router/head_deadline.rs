//! A proxied response's head within the request's deadline. pingora bounds each read of the
//! upstream (`read_timeout`, what is left of the deadline), not the head as a whole: a server
//! trickling header lines would hold the request, and its seat, past `--request-timeout`,
//! where kube's timeout filter answers 504 whatever the proxy is doing. So the connection of a
//! request still waiting for its head at the deadline is shut down: pingora's read fails and
//! the request is answered kube's 504 (`proxy::failure_status`).

use pingora::protocols::l4::socket::SocketAddr;
use rustc_hash::FxHashMap;
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the armed deadlines are looked at: a head is cut at most this late.
const TICK: Duration = Duration::from_millis(100);

/// A connection waiting for its head, and when it may wait no longer.
struct Armed {
    at: Instant,
    fd: RawFd,
    addrs: Addrs,
}

/// Every armed deadline, by slot, and the one task that enforces them (a map entry per
/// request costs less than a timer task per request on the proxy's path). Fx-hashed: the slots
/// are our own counter's.
static ARMED: Mutex<Option<FxHashMap<u64, Armed>>> = Mutex::new(None);
static NEXT: AtomicU64 = AtomicU64::new(0);

/// Shuts the upstream connection down at the deadline unless dropped first (the head came,
/// or the request ended).
pub struct HeadDeadline(u64);

impl Drop for HeadDeadline {
    fn drop(&mut self) {
        if let Some(m) = ARMED.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            m.remove(&self.0);
        }
    }
}

impl HeadDeadline {
    /// Arms the deadline `left` from now for the connection on `fd`, whose addresses are
    /// `addrs` (the connection's socket digest, cached per connection: no system call per
    /// request; read from the descriptor when there is none).
    pub fn arm(fd: RawFd, addrs: Option<Addrs>, left: Duration) -> Option<Self> {
        let addrs = addrs.or_else(|| addresses(fd))?;
        let slot = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
        let first = armed.is_none();
        armed.get_or_insert_with(FxHashMap::default).insert(slot, Armed { at: Instant::now() + left, fd, addrs });
        drop(armed);
        if first {
            tokio::spawn(enforce());
        }
        Some(HeadDeadline(slot))
    }
}

/// Shuts down each connection whose deadline passed before its head came.
async fn enforce() {
    loop {
        tokio::time::sleep(TICK).await;
        let now = Instant::now();
        let due: Vec<Armed> = {
            let mut armed = ARMED.lock().unwrap_or_else(|e| e.into_inner());
            let Some(m) = armed.as_mut() else { continue };
            m.extract_if(|_, a| a.at <= now).map(|(_, a)| a).collect()
        };
        for a in due {
            // still the same connection: a closed socket's number may have been taken again
            if addresses(a.fd).as_ref() == Some(&a.addrs) {
                // SAFETY: shutdown takes any descriptor; on this socket it only ends its traffic
                unsafe { libc::shutdown(a.fd, libc::SHUT_RDWR) };
            }
        }
    }
}

/// A connection's local and peer addresses: which connection a descriptor is.
pub type Addrs = (SocketAddr, SocketAddr);

fn addresses(fd: RawFd) -> Option<Addrs> {
    Some((SocketAddr::from_raw_fd(fd, false)?, SocketAddr::from_raw_fd(fd, true)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::io::AsRawFd;

    #[tokio::test]
    async fn a_connection_still_waiting_at_the_deadline_is_shut_down_and_a_finished_one_is_not() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let waiting = std::net::TcpStream::connect(addr).unwrap();
        let _peer = listener.accept().unwrap();
        let armed = HeadDeadline::arm(waiting.as_raw_fd(), None, Duration::from_millis(50)).unwrap();
        let done = std::net::TcpStream::connect(addr).unwrap();
        let _peer2 = listener.accept().unwrap();
        drop(HeadDeadline::arm(done.as_raw_fd(), None, Duration::from_millis(50)).unwrap());
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut buf = [0u8; 1];
        let mut w = &waiting;
        assert_eq!(w.read(&mut buf).unwrap(), 0, "shut down: the read ends");
        done.set_nonblocking(true).unwrap();
        let mut d = &done;
        assert_eq!(d.read(&mut buf).unwrap_err().kind(), std::io::ErrorKind::WouldBlock, "left alone");
        drop(armed);
    }
}
