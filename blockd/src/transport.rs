//! What a connection in transmission reads requests from and writes replies to: the TCP socket itself, or a TLS
//! session over it. The request loop (`transmission.rs`) is generic over [`Transport`], so plain and TLS
//! connections share it; only plain sockets offer [`Transport::plain`], which the zero-copy paths (mapped and
//! spliced large reads, spliced large writes) need, since with TLS every byte goes through the cipher here.

use rustls::ServerConnection;
use rustls_pki_types::CertificateDer;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;

/// Bytes of ciphertext a TLS connection reads from its socket at once: a 1 MiB WRITE's records arrive in a few
/// reads (rustls' own reads take at most 4 KiB each).
const TLS_READ_BUF: usize = 128 * 1024;
/// Most ciphertext a TLS connection encrypts ahead of sending it: 16 records, sent with one `writev`.
const TLS_SEND_LIMIT: usize = 256 * 1024;

/// A TLS session in transmission: rustls over the blocking socket, with its own read buffer. rustls' stream
/// adapter reads the socket 4 KiB at a time and returns one record's plaintext per call; this one reads what the
/// socket has (up to [`TLS_READ_BUF`]) with one `recv`, then decrypts every complete record in it into the
/// caller's buffer, and sends replies in `writev`s of up to [`TLS_SEND_LIMIT`]. Per connection that is the read
/// buffer (made at the first read) and at most the send limit of records not yet sent, besides rustls' own
/// buffers of about one record.
pub(crate) struct TlsStream {
    conn: ServerConnection,
    sock: TcpStream,
    /// Ciphertext read from the socket, `rx[rx_start..rx_end]` not yet given to rustls.
    rx: Vec<u8>,
    rx_start: usize,
    rx_end: usize,
}

impl TlsStream {
    /// Continue the session `conn` (whatever it decrypted or read ahead during the handshake stays in it).
    pub(crate) fn new(mut conn: ServerConnection, sock: TcpStream) -> TlsStream {
        conn.set_buffer_limit(Some(TLS_SEND_LIMIT));
        // Records the handshake's reader left complete but unprocessed become plaintext now (reads below only
        // process what they feed); an error stays in the session and comes back from the first read.
        let _ = conn.process_new_packets();
        TlsStream { conn, sock, rx: Vec::new(), rx_start: 0, rx_end: 0 }
    }

    /// Move plaintext into `buf` from what is already here: decrypted records, then complete records among the
    /// ciphertext read. Some(n) when there was plaintext (n > 0) or the client ended the session (Some(0));
    /// None when more ciphertext must be read first.
    fn read_buffered(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut got = 0;
        loop {
            match self.conn.reader().read(&mut buf[got..]) {
                Ok(0) if got < buf.len() => return Ok(Some(got)),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return if got > 0 { Ok(Some(got)) } else { Err(e) },
            }
            if got == buf.len() || self.rx_start == self.rx_end {
                return Ok((got > 0).then_some(got));
            }
            let mut ciphertext = &self.rx[self.rx_start..self.rx_end];
            let taken = self.conn.read_tls(&mut ciphertext)?;
            self.rx_start += taken;
            if let Err(e) = self.conn.process_new_packets() {
                // Send the alert rustls queued for it, if the socket takes it.
                let _ = self.send_pending();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }

    /// Read more ciphertext from the socket (blocking, or not with MSG_DONTWAIT); 0 at the end of the stream.
    fn fill(&mut self, flags: nix::sys::socket::MsgFlags) -> io::Result<usize> {
        if self.rx.is_empty() {
            self.rx = vec![0; TLS_READ_BUF];
        }
        let n = loop {
            match nix::sys::socket::recv(self.sock.as_raw_fd(), &mut self.rx, flags) {
                Ok(n) => break n,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        };
        (self.rx_start, self.rx_end) = (0, n);
        Ok(n)
    }

    /// Write every encrypted record rustls holds to the socket.
    fn send_pending(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut self.sock)? == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero));
            }
        }
        Ok(())
    }
}

impl Read for TlsStream {
    /// Plaintext already here, else what the next read of the socket completes (waiting up to the read timeout,
    /// which shows as `WouldBlock`); 0 at the end of the stream.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(n) = self.read_buffered(buf)? {
                return Ok(n);
            }
            if self.fill(nix::sys::socket::MsgFlags::empty())? == 0 {
                return Ok(0);
            }
        }
    }
}

impl Write for TlsStream {
    /// Encrypt what fits in the send limit and send it.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.conn.writer().write(buf)?;
        self.send_pending()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_pending()
    }
}

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

    /// Plaintext already here; else, if the socket has bytes, what they complete (if they end inside a record,
    /// a blocking read waits for its rest, up to the read timeout); `WouldBlock` when the socket has nothing.
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(n) = self.read_buffered(buf)? {
            return Ok(n);
        }
        if self.fill(nix::sys::socket::MsgFlags::MSG_DONTWAIT)? == 0 {
            return Ok(0);
        }
        self.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{TlsFiles, TlsServer};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{PrivateKeyDer, ServerName};
    use std::net::TcpListener;
    use std::sync::Arc;

    /// A rustls client with `dir`'s certificate (libnbd's file names), trusting its CA.
    fn client_config(dir: &std::path::Path) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(dir.join("ca-cert.pem")).unwrap() {
            roots.add(ca.unwrap()).unwrap();
        }
        let certs =
            CertificateDer::pem_file_iter(dir.join("client-cert.pem")).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_file(dir.join("client-key.pem")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .unwrap();
        Arc::new(config)
    }

    /// Requests of 1 MiB and more cross many records and socket reads: the server side gets every byte in order,
    /// by blocking reads and by polling ones, and its replies (larger than the send limit) arrive whole.
    #[test]
    fn large_writes_both_ways_arrive_whole_through_blocking_and_polling_reads() {
        let dir = tempfile::tempdir().unwrap();
        let pki = dvsan_tests::pki::Pki::new(dir.path());
        let server_dir = pki.server_dir();
        let files = TlsFiles {
            cert: server_dir.join("server-cert.pem"),
            key: server_dir.join("server-key.pem"),
            ca: server_dir.join("ca-cert.pem"),
            crls: Vec::new(),
            pushed_crl: None,
        };
        let server = TlsServer::load(&files).unwrap();
        let client = client_config(&pki.client("host-a"));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let data: Vec<u8> = (0..3 * 1024 * 1024 + 777).map(|i: u32| (i % 253) as u8).collect();
        let sent = data.clone();

        let client = std::thread::spawn(move || {
            let conn = rustls::ClientConnection::new(client, ServerName::try_from("127.0.0.1").unwrap()).unwrap();
            let mut stream = rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap());
            for piece in sent.chunks(1 << 20) {
                stream.write_all(piece).unwrap();
            }
            stream.flush().unwrap();
            let mut echoed = vec![0u8; sent.len()];
            stream.read_exact(&mut echoed).unwrap();
            assert!(echoed == sent, "the echo differs");
        });

        let (mut sock, _) = listener.accept().unwrap();
        let mut conn = ServerConnection::new(server.config()).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut sock).unwrap();
        }
        let mut stream = TlsStream::new(conn, sock);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 300 * 1024];
        while got.len() < data.len() {
            // Alternate: a polling read (which may find nothing yet), then a blocking one.
            let n = match stream.try_read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.read(&mut buf).unwrap(),
                other => other.unwrap(),
            };
            assert!(n > 0, "end of stream after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got == data, "the server read something else");
        stream.write_all(&got).unwrap();
        stream.flush().unwrap();
        client.join().unwrap();
    }
}
