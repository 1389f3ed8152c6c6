//! The secure port's socket with a write buffer in front, held only while it has bytes.
//!
//! pingora's own listener buffers an L4 stream's writes (`DEFAULT_L4_WRITE_BUFFER_SIZE`, one
//! MSS), so that a response's header and body records leave in one write; its buffered
//! constructor is crate-private (`Stream::set_buffer`) and `From<TcpStream>` gives an
//! unbuffered stream, on which every small response took two writes instead of one. tokio's
//! `BufWriter` would keep its buffer for the connection's whole life, 1460 bytes of every idle
//! connection and HTTP/1.1 watch; here the buffer is taken at the first buffered write and
//! given back once flushed. Reads stay unbuffered below rustls (see `tls::SecureListener`).

use crate::socket::Socket;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// pingora's L4 write buffer (`DEFAULT_L4_WRITE_BUFFER_SIZE`, one MSS).
pub const WRITE_BUFFER: usize = 1460;

/// `io` with a write buffer of [`WRITE_BUFFER`] bytes that exists only while it holds some.
#[derive(Debug)]
pub struct Buffered<T: AsyncWrite + Unpin = Socket> {
    io: T,
    /// What is not yet written out (a flush cut short by a full socket drops what went out:
    /// at most one buffer's bytes are moved, where a count of them would be kept by every
    /// connection).
    buf: Vec<u8>,
}

impl<T: AsyncWrite + Unpin> Buffered<T> {
    pub fn new(io: T) -> Self {
        Buffered { io, buf: Vec::new() }
    }

    /// The stream under the buffer (what pingora reads of a connection is the socket's).
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// Writes out the buffer, then gives its memory back.
    fn poll_flush_buf(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let mut written = 0;
        let done = loop {
            if written == self.buf.len() {
                break Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.io).poll_write(cx, &self.buf[written..]) {
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
                Poll::Pending => break Poll::Pending,
            }
        };
        self.buf.drain(..written);
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
        done
    }

    /// Room for `n` more bytes: flushes first if they do not fit.
    fn poll_room(&mut self, cx: &mut Context<'_>, n: usize) -> Poll<std::io::Result<()>> {
        if self.buf.len() + n > WRITE_BUFFER {
            ready!(self.poll_flush_buf(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn take(&mut self) {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(WRITE_BUFFER);
        }
    }
}

impl<T: AsyncWrite + Unpin> Drop for Buffered<T> {
    fn drop(&mut self) {
        // what pingora's stream does on drop: a last flush if the socket takes it at once
        let _ = self.poll_flush_buf(&mut Context::from_waker(futures::task::noop_waker_ref()));
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Buffered<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Buffered<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_room(cx, data.len()))?;
        if data.len() >= WRITE_BUFFER {
            return Pin::new(&mut this.io).poll_write(cx, data);
        }
        this.take();
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let total = bufs.iter().map(|b| b.len()).sum::<usize>();
        ready!(this.poll_room(cx, total))?;
        if total >= WRITE_BUFFER {
            return Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        }
        this.take();
        for b in bufs {
            this.buf.extend_from_slice(b);
        }
        Poll::Ready(Ok(total))
    }

    fn is_write_vectored(&self) -> bool {
        // as tokio's BufWriter: the slices of a small write are gathered in the buffer
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_flush_buf(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_flush_buf(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Small and large writes, plain and vectored, through a pipe that takes 100 bytes at a
    /// time: every byte arrives in order, and a flushed buffer holds no memory.
    #[tokio::test]
    async fn writes_arrive_in_order_and_a_flushed_buffer_is_given_back() {
        let (near, mut far) = tokio::io::duplex(100);
        let mut w = Buffered::new(near);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            far.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut sent = Vec::new();
        assert_eq!(w.buf.capacity(), 0, "nothing taken before a write");
        for (i, len) in [10usize, 500, 1000, 3000, 1, 1459, 1460, 20_000].into_iter().enumerate() {
            let chunk: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
            if i % 2 == 0 {
                w.write_all(&chunk).await.unwrap();
            } else {
                let (a, b) = chunk.split_at(len / 2);
                let mut bufs = [IoSlice::new(a), IoSlice::new(b)];
                let mut slices = &mut bufs[..];
                while !slices.is_empty() {
                    let n = w.write_vectored(slices).await.unwrap();
                    IoSlice::advance_slices(&mut slices, n);
                }
            }
            sent.extend_from_slice(&chunk);
            w.flush().await.unwrap();
            assert_eq!(w.buf.capacity(), 0, "the buffer is given back once flushed");
        }
        // small writes gather in the buffer until a flush
        w.write_all(b"abc").await.unwrap();
        assert_eq!(w.buf, b"abc");
        sent.extend_from_slice(b"abc");
        w.shutdown().await.unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap(), sent);
    }
}
