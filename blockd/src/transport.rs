//! What a connection in transmission reads requests from and writes replies to: the TCP socket itself, or a TLS
//! session over it. The request loop (`transmission.rs`) is generic over [`Transport`], so plain and TLS
//! connections share it; only plain sockets offer [`Transport::plain`], which the zero-copy paths (mapped and
//! spliced large reads, spliced large writes) need, since with TLS every byte goes through the cipher here.

use rustls::{ServerConnection, StreamOwned};
use rustls_pki_types::CertificateDer;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;

/// A TLS session in transmission: rustls over the blocking socket.
pub(crate) type TlsStream = StreamOwned<ServerConnection, TcpStream>;

/// A byte stream to one client, blocking, over a TCP socket.
pub(crate) trait Transport: Read + Write + Send + 'static {
    /// The TCP socket underneath (timeouts, shutdown, registration).
    fn socket(&self) -> &TcpStream;
    /// The socket, when the stream's bytes are the socket's bytes (no TLS): the zero-copy paths use it.
    fn plain(&self) -> Option<&TcpStream>;
    /// Read what is there without blocking; `WouldBlock` when nothing is.
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// The client's certificate chain (its own first) over TLS; None on a plain connection.
    fn peer_certificates(&self) -> Option<Vec<CertificateDer<'static>>>;
}

impl Transport for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }

    fn plain(&self) -> Option<&TcpStream> {
        Some(self)
    }

    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(nix::sys::socket::recv(self.as_raw_fd(), buf, nix::sys::socket::MsgFlags::MSG_DONTWAIT)?)
    }

    fn peer_certificates(&self) -> Option<Vec<CertificateDer<'static>>> {
        None
    }
}

impl Transport for TlsStream {
    fn socket(&self) -> &TcpStream {
        &self.sock
    }

    fn plain(&self) -> Option<&TcpStream> {
        None
    }

    fn peer_certificates(&self) -> Option<Vec<CertificateDer<'static>>> {
        self.conn.peer_certificates().map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect())
    }

    /// Plaintext already decrypted first; else, if the socket has bytes (or the end of the stream), a read
    /// through TLS (which may wait for the rest of a record, up to the read timeout).
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.conn.reader().read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => return other,
        }
        let mut probe = [0u8; 1];
        let flags = nix::sys::socket::MsgFlags::MSG_DONTWAIT | nix::sys::socket::MsgFlags::MSG_PEEK;
        nix::sys::socket::recv(self.sock.as_raw_fd(), &mut probe, flags)?;
        self.read(buf)
    }
}
