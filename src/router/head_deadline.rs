//! A proxied response's head within the request's deadline. pingora bounds each read of the
//! upstream (`read_timeout`, what is left of the deadline), not the head as a whole: a server
//! trickling header lines would hold the request, and its seat, past `--request-timeout`,
//! where kube's timeout filter answers 504 whatever the proxy is doing. So the connection of a
//! request still waiting for its head at the deadline is shut down: pingora's read fails and
//! the request is answered kube's 504 (`proxy::failure_status`).

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
    /// Arms the deadline `left` from now for the connection on `fd`.
    pub fn arm(fd: RawFd, left: Duration) -> Option<Self> {
        let id = identity(fd)?;
        let task = tokio::spawn(async move {
            tokio::time::sleep(left).await;
            // still the same connection: a closed socket's number may have been taken again
            if identity(fd).as_ref() == Some(&id) {
                // SAFETY: shutdown takes any descriptor; on this socket it only ends its traffic
                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            }
        });
        Some(HeadDeadline(task.abort_handle()))
    }
}

/// A socket's local and peer addresses, as bytes: which connection a descriptor is.
fn identity(fd: RawFd) -> Option<(Vec<u8>, Vec<u8>)> {
    type AddrFn = unsafe extern "C" fn(libc::c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> libc::c_int;
    let addr = |f: AddrFn| {
        // SAFETY: a zeroed sockaddr_storage is valid; the call writes at most `len` bytes of it
        let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let rc = unsafe { f(fd, (&mut storage as *mut libc::sockaddr_storage).cast(), &mut len) };
        let size = (len as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
        // SAFETY: `size` bytes of `storage` were written (or zeroed) and are in bounds
        let bytes =
            unsafe { std::slice::from_raw_parts((&storage as *const libc::sockaddr_storage).cast::<u8>(), size) };
        (rc == 0).then(|| bytes.to_vec())
    };
    Some((addr(libc::getsockname)?, addr(libc::getpeername)?))
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
        let armed = HeadDeadline::arm(waiting.as_raw_fd(), Duration::from_millis(50)).unwrap();
        let done = std::net::TcpStream::connect(addr).unwrap();
        let _peer2 = listener.accept().unwrap();
        drop(HeadDeadline::arm(done.as_raw_fd(), Duration::from_millis(50)).unwrap());
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
