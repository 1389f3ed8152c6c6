//! A proxied response's head within the request's deadline. pingora bounds each read of the
//! upstream (`read_timeout`, what is left of the deadline), not the head as a whole: a server
//! trickling header lines would hold the request, and its seat, past `--request-timeout`,
//! where kube's timeout filter answers 504 whatever the proxy is doing. So the connection of a
//! request still waiting for its head at the deadline is shut down: pingora's read fails and
//! the request is answered kube's 504 (`proxy::failure_status`).

use pingora::protocols::l4::socket::SocketAddr;
use std::os::unix::io::RawFd;
use std::time::Duration;

/// Shuts the upstream connection down at the deadline unless dropped first (the head came,
/// or the request ended).
pub struct HeadDeadline(tokio::task::AbortHandle);

impl Drop for HeadDeadline {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl HeadDeadline {
    /// Arms the deadline `left` from now for the connection on `fd`, whose addresses are
    /// `addrs` (the connection's socket digest, cached per connection: no system call per
    /// request; read from the descriptor when there is none).
    pub fn arm(fd: RawFd, addrs: Option<Addrs>, left: Duration) -> Option<Self> {
        let id = addrs.or_else(|| addresses(fd))?;
        let task = tokio::spawn(async move {
            tokio::time::sleep(left).await;
            // still the same connection: a closed socket's number may have been taken again
            if addresses(fd).as_ref() == Some(&id) {
                // SAFETY: shutdown takes any descriptor; on this socket it only ends its traffic
                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            }
        });
        Some(HeadDeadline(task.abort_handle()))
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
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut buf = [0u8; 1];
        let mut w = &waiting;
        assert_eq!(w.read(&mut buf).unwrap(), 0, "shut down: the read ends");
        done.set_nonblocking(true).unwrap();
        let mut d = &done;
        assert_eq!(d.read(&mut buf).unwrap_err().kind(), std::io::ErrorKind::WouldBlock, "left alone");
        drop(armed);
    }
}
