//! A small async NBD client: fixed-newstyle handshake with option haggling (NBD_OPT_STARTTLS with a TLS upgrade
//! the caller brings), then one request at a time.
//!
//! Used by blockd's tests (binding a chosen loopback source address to act as different hosts) and by the host
//! CLI to check an export before attaching it. It is deliberately sequential: one request in flight, replies
//! read in full before the next request, so every call is a plain `async fn` returning the outcome.

use crate::constants::*;
use crate::error::DecodeError;
use crate::handshake::{
    decode_greeting, BlockSize, ClientFlags, ClientOption, ExportListing, Info, InfoRequest, OptionReplyHeader,
};
use crate::transmission::{
    peek_reply_kind, ChunkHeader, Errno, ErrorChunk, ReplyKind, RequestHeader, SimpleReplyHeader, TransmissionFlags,
};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed message from the server: {0}")]
    Decode(#[from] DecodeError),
    #[error("protocol violation by the server: {0}")]
    Protocol(String),
    #[error("the server refused option {option} with reply {reply:#x} ({}): {message}", reply_name(*.reply))]
    OptionRefused { option: u32, reply: u32, message: String },
    #[error("the server failed the request with {error}: {message}")]
    Request { error: Errno, message: String },
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
}

impl ClientError {
    /// The option reply error code, if the server refused an option.
    pub fn option_reply(&self) -> Option<u32> {
        match self {
            ClientError::OptionRefused { reply, .. } => Some(*reply),
            _ => None,
        }
    }

    /// The NBD error value, if the server failed a request.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            ClientError::Request { error, .. } => Some(*error),
            _ => None,
        }
    }
}

/// Name of an option reply error code, for messages.
pub fn reply_name(reply: u32) -> &'static str {
    match reply {
        REP_ERR_UNSUP => "NBD_REP_ERR_UNSUP",
        REP_ERR_POLICY => "NBD_REP_ERR_POLICY",
        REP_ERR_INVALID => "NBD_REP_ERR_INVALID",
        REP_ERR_PLATFORM => "NBD_REP_ERR_PLATFORM",
        REP_ERR_TLS_REQD => "NBD_REP_ERR_TLS_REQD",
        REP_ERR_UNKNOWN => "NBD_REP_ERR_UNKNOWN",
        REP_ERR_SHUTDOWN => "NBD_REP_ERR_SHUTDOWN",
        REP_ERR_BLOCK_SIZE_REQD => "NBD_REP_ERR_BLOCK_SIZE_REQD",
        REP_ERR_TOO_BIG => "NBD_REP_ERR_TOO_BIG",
        _ => "other",
    }
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Source address to bind (e.g. 127.0.0.7 to act as that host on loopback); None lets the OS choose.
    pub local_addr: Option<IpAddr>,
    /// Limit for connecting, each option exchange and each request.
    pub timeout: Duration,
    /// Ask for structured replies before entering transmission.
    pub structured_replies: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions { local_addr: None, timeout: Duration::from_secs(30), structured_replies: true }
    }
}

/// What the server told about an export (NBD_OPT_INFO / NBD_OPT_GO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportInfo {
    pub name: String,
    pub size: u64,
    pub flags: TransmissionFlags,
    pub block_size: Option<BlockSize>,
    pub description: Option<String>,
}

/// A connection in option haggling, over TCP or (after [`ClientHandshake::starttls`]) over whatever stream the
/// upgrade made, e.g. TLS.
pub struct ClientHandshake<S = TcpStream> {
    stream: S,
    timeout: Duration,
    structured: bool,
    no_zeroes: bool,
}

impl ClientHandshake<TcpStream> {
    /// Connect and do the greeting and client flags; the server must offer fixed newstyle.
    pub async fn connect(addr: SocketAddr, opts: &ConnectOptions) -> Result<ClientHandshake, ClientError> {
        let timeout = opts.timeout;
        with_timeout(timeout, async {
            let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
            if let Some(ip) = opts.local_addr {
                socket.bind(SocketAddr::new(ip, 0))?;
            }
            let mut stream = socket.connect(addr).await?;
            stream.set_nodelay(true)?;
            let mut greeting = [0u8; GREETING_LEN];
            stream.read_exact(&mut greeting).await?;
            let server_flags = decode_greeting(&greeting)?;
            if server_flags & FLAG_FIXED_NEWSTYLE == 0 {
                return Err(ClientError::Protocol("the server does not offer fixed newstyle negotiation".into()));
            }
            let flags = ClientFlags { fixed_newstyle: true, no_zeroes: server_flags & FLAG_NO_ZEROES != 0 };
            stream.write_all(&flags.encode().to_be_bytes()).await?;
            Ok(ClientHandshake { stream, timeout, structured: false, no_zeroes: flags.no_zeroes })
        })
        .await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ClientHandshake<S> {
    /// The stream, e.g. to set socket options.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Carry on over another view of the same stream (e.g. boxed), without telling the server anything.
    pub fn map_stream<T>(self, f: impl FnOnce(S) -> T) -> ClientHandshake<T> {
        ClientHandshake {
            stream: f(self.stream),
            timeout: self.timeout,
            structured: self.structured,
            no_zeroes: self.no_zeroes,
        }
    }

    /// NBD_OPT_SET_META_CONTEXT for `export`: the contexts the server chose, (id, name).
    pub async fn set_meta_context(
        &mut self,
        export: &str,
        queries: &[&str],
    ) -> Result<Vec<(u32, String)>, ClientError> {
        let timeout = self.timeout;
        with_timeout(timeout, async {
            let req = crate::handshake::MetaContextRequest {
                export: export.to_string(),
                queries: queries.iter().map(|q| q.to_string()).collect(),
            };
            self.send_option(&ClientOption::SetMetaContext(req)).await?;
            let mut out = Vec::new();
            for _ in 0..64 {
                let (header, payload) = self.read_option_reply(OPT_SET_META_CONTEXT).await?;
                match header.reply {
                    REP_META_CONTEXT => {
                        let id = payload
                            .get(..4)
                            .and_then(|b| <[u8; 4]>::try_from(b).ok())
                            .map(u32::from_be_bytes)
                            .ok_or_else(|| ClientError::Protocol("meta context reply shorter than 4 bytes".into()))?;
                        out.push((id, String::from_utf8_lossy(&payload[4..]).into_owned()));
                    }
                    REP_ACK => return Ok(out),
                    other => return Err(unexpected_reply(OPT_SET_META_CONTEXT, other)),
                }
            }
            Err(ClientError::Protocol("more than 64 replies to one option".into()))
        })
        .await
    }

    /// NBD_OPT_STARTTLS, then `upgrade` the stream (the TLS handshake, e.g. tokio-rustls' connector); option
    /// haggling goes on over what it returns. This crate has no TLS of its own.
    pub async fn starttls<T, F, Fut>(mut self, upgrade: F) -> Result<ClientHandshake<T>, ClientError>
    where
        F: FnOnce(S) -> Fut,
        Fut: Future<Output = std::io::Result<T>>,
    {
        let timeout = self.timeout;
        with_timeout(timeout, async move {
            self.send_option(&ClientOption::StartTls).await?;
            let (header, _) = self.read_option_reply(OPT_STARTTLS).await?;
            if header.reply != REP_ACK {
                return Err(unexpected_reply(OPT_STARTTLS, header.reply));
            }
            let stream = upgrade(self.stream).await?;
            Ok(ClientHandshake { stream, timeout, structured: false, no_zeroes: self.no_zeroes })
        })
        .await
    }

    /// NBD_OPT_LIST: the exports this host may see.
    pub async fn list(&mut self) -> Result<Vec<ExportListing>, ClientError> {
        let timeout = self.timeout;
        with_timeout(timeout, async {
            self.send_option(&ClientOption::List).await?;
            let mut out = Vec::new();
            loop {
                let (header, payload) = self.read_option_reply(OPT_LIST).await?;
                match header.reply {
                    REP_SERVER => out.push(ExportListing::parse(&payload)?),
                    REP_ACK => return Ok(out),
                    other => return Err(unexpected_reply(OPT_LIST, other)),
                }
                if out.len() > 100_000 {
                    return Err(ClientError::Protocol("more than 100000 exports listed".into()));
                }
            }
        })
        .await
    }

    /// NBD_OPT_STRUCTURED_REPLY: true if the server agreed, false if it does not support them.
    pub async fn structured_replies(&mut self) -> Result<bool, ClientError> {
        let timeout = self.timeout;
        with_timeout(timeout, async {
            self.send_option(&ClientOption::StructuredReply).await?;
            match self.read_option_reply(OPT_STRUCTURED_REPLY).await {
                Ok((h, _)) if h.reply == REP_ACK => {
                    self.structured = true;
                    Ok(true)
                }
                Ok((h, _)) => Err(unexpected_reply(OPT_STRUCTURED_REPLY, h.reply)),
                Err(ClientError::OptionRefused { reply: REP_ERR_UNSUP, .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// NBD_OPT_INFO: size, flags, block sizes and description of an export, staying in option haggling.
    pub async fn info(&mut self, name: &str) -> Result<ExportInfo, ClientError> {
        let timeout = self.timeout;
        with_timeout(timeout, self.info_or_go(OPT_INFO, name)).await
    }

    /// NBD_OPT_GO: choose the export and enter transmission.
    pub async fn go(mut self, name: &str) -> Result<NbdClient<S>, ClientError> {
        let timeout = self.timeout;
        let info = with_timeout(timeout, self.info_or_go(OPT_GO, name)).await?;
        Ok(NbdClient::new(self.stream, info, self.structured, timeout))
    }

    /// NBD_OPT_EXPORT_NAME: the old way to enter transmission; a refusal closes the connection.
    pub async fn export_name(mut self, name: &str) -> Result<NbdClient<S>, ClientError> {
        let timeout = self.timeout;
        with_timeout(timeout, async move {
            self.send_option(&ClientOption::ExportName(name.to_string())).await?;
            let mut reply = [0u8; 10];
            self.stream.read_exact(&mut reply).await?;
            let size =
                u64::from_be_bytes([reply[0], reply[1], reply[2], reply[3], reply[4], reply[5], reply[6], reply[7]]);
            let flags = TransmissionFlags(u16::from_be_bytes([reply[8], reply[9]]));
            if !self.no_zeroes {
                let mut zeroes = [0u8; EXPORT_NAME_REPLY_ZEROES];
                self.stream.read_exact(&mut zeroes).await?;
            }
            let info = ExportInfo { name: name.to_string(), size, flags, block_size: None, description: None };
            Ok(NbdClient::new(self.stream, info, self.structured, timeout))
        })
        .await
    }

    /// NBD_OPT_ABORT: end the session politely.
    pub async fn abort(mut self) -> Result<(), ClientError> {
        let timeout = self.timeout;
        with_timeout(timeout, async {
            self.send_option(&ClientOption::Abort).await?;
            // The server should ACK, but may just close; both are fine.
            let _ = self.read_option_reply(OPT_ABORT).await;
            Ok(())
        })
        .await
    }

    /// Send any option (also unknown codes, for tests) and return the first reply header and payload.
    pub async fn raw_option(
        &mut self,
        option: u32,
        payload: &[u8],
    ) -> Result<(OptionReplyHeader, Vec<u8>), ClientError> {
        let timeout = self.timeout;
        with_timeout(timeout, async {
            let mut out = Vec::with_capacity(16 + payload.len());
            crate::handshake::OptionHeader { option, length: u32::try_from(payload.len()).unwrap_or(u32::MAX) }
                .encode(&mut out);
            out.extend_from_slice(payload);
            self.stream.write_all(&out).await?;
            let mut hbuf = [0u8; OPTION_REPLY_HEADER_LEN];
            self.stream.read_exact(&mut hbuf).await?;
            let header = OptionReplyHeader::decode(&hbuf)?;
            let mut data = vec![0u8; header.length as usize];
            self.stream.read_exact(&mut data).await?;
            Ok((header, data))
        })
        .await
    }

    async fn info_or_go(&mut self, option: u32, name: &str) -> Result<ExportInfo, ClientError> {
        let req = InfoRequest { name: name.to_string(), requests: vec![INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE] };
        let opt = if option == OPT_GO { ClientOption::Go(req) } else { ClientOption::Info(req) };
        self.send_option(&opt).await?;
        let mut export: Option<(u64, TransmissionFlags)> = None;
        let mut info = ExportInfo {
            name: name.to_string(),
            size: 0,
            flags: TransmissionFlags(0),
            block_size: None,
            description: None,
        };
        for _ in 0..64 {
            let (header, payload) = self.read_option_reply(option).await?;
            match header.reply {
                REP_INFO => match Info::parse(&payload)? {
                    Info::Export { size, flags } => export = Some((size, flags)),
                    Info::Name(n) => info.name = n,
                    Info::Description(d) => info.description = Some(d),
                    Info::BlockSize(b) => info.block_size = Some(b),
                    Info::Unknown(_) => {}
                },
                REP_ACK => {
                    let (size, flags) = export
                        .ok_or_else(|| ClientError::Protocol("the server sent no NBD_INFO_EXPORT before ACK".into()))?;
                    info.size = size;
                    info.flags = flags;
                    return Ok(info);
                }
                other => return Err(unexpected_reply(option, other)),
            }
        }
        Err(ClientError::Protocol("more than 64 replies to one option".into()))
    }

    async fn send_option(&mut self, option: &ClientOption) -> Result<(), ClientError> {
        let mut out = Vec::new();
        option.encode(&mut out);
        self.stream.write_all(&out).await?;
        Ok(())
    }

    /// Read one reply to `option`; error replies become [`ClientError::OptionRefused`].
    async fn read_option_reply(&mut self, option: u32) -> Result<(OptionReplyHeader, Vec<u8>), ClientError> {
        let mut hbuf = [0u8; OPTION_REPLY_HEADER_LEN];
        self.stream.read_exact(&mut hbuf).await?;
        let header = OptionReplyHeader::decode(&hbuf)?;
        let mut payload = vec![0u8; header.length as usize];
        self.stream.read_exact(&mut payload).await?;
        if header.option != option {
            return Err(ClientError::Protocol(format!("reply for option {} to option {option}", header.option)));
        }
        if header.is_error() {
            return Err(ClientError::OptionRefused {
                option,
                reply: header.reply,
                message: String::from_utf8_lossy(&payload).into_owned(),
            });
        }
        Ok((header, payload))
    }
}

fn unexpected_reply(option: u32, reply: u32) -> ClientError {
    ClientError::Protocol(format!("unexpected reply type {reply:#x} to option {option}"))
}

/// Flags of an NBD_CMD_WRITE_ZEROES.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZeroFlags {
    pub fua: bool,
    /// Write zeroes rather than punching a hole.
    pub no_hole: bool,
}

/// A connection in transmission: one request at a time.
pub struct NbdClient<S = TcpStream> {
    stream: S,
    info: ExportInfo,
    structured: bool,
    timeout: Duration,
    next_handle: u64,
    send_buf: Vec<u8>,
}

impl NbdClient<TcpStream> {
    /// Connect, ask for structured replies (if `opts` says so) and NBD_OPT_GO to `export`.
    pub async fn connect(addr: SocketAddr, export: &str, opts: &ConnectOptions) -> Result<NbdClient, ClientError> {
        let mut hs = ClientHandshake::connect(addr, opts).await?;
        if opts.structured_replies {
            hs.structured_replies().await?;
        }
        hs.go(export).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> NbdClient<S> {
    fn new(stream: S, info: ExportInfo, structured: bool, timeout: Duration) -> NbdClient<S> {
        NbdClient { stream, info, structured, timeout, next_handle: 1, send_buf: Vec::new() }
    }

    pub fn export(&self) -> &ExportInfo {
        &self.info
    }

    /// Take the connection apart (the stream in transmission, the export, whether structured replies were
    /// agreed) to drive it another way, e.g. with many requests in flight (the host front's replica
    /// connections).
    pub fn into_parts(self) -> (S, ExportInfo, bool) {
        (self.stream, self.info, self.structured)
    }

    pub fn structured(&self) -> bool {
        self.structured
    }

    /// Read `buf.len()` bytes at `offset`.
    pub async fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ClientError> {
        let length = len_u32(buf.len())?;
        self.request(RequestHeader { flags: 0, command: CMD_READ, handle: 0, offset, length }, &[], Some(buf)).await
    }

    /// Write `data` at `offset`; with `fua` the reply comes only once the data is durable.
    pub async fn write(&mut self, offset: u64, data: &[u8], fua: bool) -> Result<(), ClientError> {
        let length = len_u32(data.len())?;
        let flags = if fua { CMD_FLAG_FUA } else { 0 };
        self.request(RequestHeader { flags, command: CMD_WRITE, handle: 0, offset, length }, data, None).await
    }

    pub async fn flush(&mut self) -> Result<(), ClientError> {
        self.request(RequestHeader { flags: 0, command: CMD_FLUSH, handle: 0, offset: 0, length: 0 }, &[], None).await
    }

    pub async fn trim(&mut self, offset: u64, length: u32, fua: bool) -> Result<(), ClientError> {
        let flags = if fua { CMD_FLAG_FUA } else { 0 };
        self.request(RequestHeader { flags, command: CMD_TRIM, handle: 0, offset, length }, &[], None).await
    }

    pub async fn write_zeroes(&mut self, offset: u64, length: u32, zf: ZeroFlags) -> Result<(), ClientError> {
        let mut flags = 0;
        if zf.fua {
            flags |= CMD_FLAG_FUA;
        }
        if zf.no_hole {
            flags |= CMD_FLAG_NO_HOLE;
        }
        self.request(RequestHeader { flags, command: CMD_WRITE_ZEROES, handle: 0, offset, length }, &[], None).await
    }

    /// NBD_CMD_BLOCK_STATUS over `length` bytes at `offset` for the one metadata context negotiated: the
    /// extents (length, flags) in order, from every block status chunk of the reply.
    pub async fn block_status(
        &mut self,
        offset: u64,
        length: u32,
        req_one: bool,
    ) -> Result<Vec<(u32, u32)>, ClientError> {
        let flags = if req_one { CMD_FLAG_REQ_ONE } else { 0 };
        let mut header = RequestHeader { flags, command: CMD_BLOCK_STATUS, handle: 0, offset, length };
        header.handle = self.take_handle();
        let timeout = self.timeout;
        let mut extents = Vec::new();
        with_timeout(timeout, async {
            self.stream.write_all(&header.encode()).await?;
            self.read_reply_with(&header, None, Some(&mut extents)).await
        })
        .await?;
        Ok(extents)
    }

    /// NBD_CMD_DISC, then close.
    pub async fn disconnect(mut self) -> Result<(), ClientError> {
        let header = RequestHeader { flags: 0, command: CMD_DISC, handle: self.take_handle(), offset: 0, length: 0 };
        let timeout = self.timeout;
        with_timeout(timeout, async {
            self.stream.write_all(&header.encode()).await?;
            self.stream.shutdown().await?;
            Ok(())
        })
        .await
    }

    /// Send any request (the handle is replaced by the client's own) with `payload` after the header, and read
    /// its reply; a successful READ's data lands in `read_buf`, which must be `header.length` bytes long. Meant
    /// for tests that need requests the typed methods will not build.
    pub async fn request(
        &mut self,
        mut header: RequestHeader,
        payload: &[u8],
        read_buf: Option<&mut [u8]>,
    ) -> Result<(), ClientError> {
        header.handle = self.take_handle();
        let timeout = self.timeout;
        with_timeout(timeout, async {
            self.send_buf.clear();
            self.send_buf.extend_from_slice(&header.encode());
            self.send_buf.extend_from_slice(payload);
            self.stream.write_all(&self.send_buf).await?;
            let expect_data = header.command == CMD_READ;
            self.read_reply(&header, if expect_data { read_buf } else { None }).await
        })
        .await
    }

    fn take_handle(&mut self) -> u64 {
        let h = self.next_handle;
        self.next_handle = self.next_handle.wrapping_add(1);
        h
    }

    async fn read_reply(&mut self, req: &RequestHeader, data: Option<&mut [u8]>) -> Result<(), ClientError> {
        self.read_reply_with(req, data, None).await
    }

    async fn read_reply_with(
        &mut self,
        req: &RequestHeader,
        mut data: Option<&mut [u8]>,
        mut extents: Option<&mut Vec<(u32, u32)>>,
    ) -> Result<(), ClientError> {
        let mut magic = [0u8; 4];
        self.stream.read_exact(&mut magic).await?;
        match peek_reply_kind(&magic)? {
            ReplyKind::Simple => {
                let mut h = [0u8; SIMPLE_REPLY_HEADER_LEN];
                h[..4].copy_from_slice(&magic);
                self.stream.read_exact(&mut h[4..]).await?;
                let reply = SimpleReplyHeader::decode(&h)?;
                check_handle(req.handle, reply.handle)?;
                if reply.error != 0 {
                    return Err(ClientError::Request { error: Errno(reply.error), message: String::new() });
                }
                if self.structured && req.command == CMD_READ {
                    return Err(ClientError::Protocol("simple reply to a READ after structured replies".into()));
                }
                if let Some(buf) = data {
                    self.stream.read_exact(buf).await?;
                }
                Ok(())
            }
            ReplyKind::Structured => {
                if !self.structured {
                    return Err(ClientError::Protocol("structured reply that was not negotiated".into()));
                }
                let mut first = Some(magic);
                let mut failure: Option<ClientError> = None;
                let mut covered: u64 = 0;
                loop {
                    let mut h = [0u8; CHUNK_HEADER_LEN];
                    let start = match first.take() {
                        Some(m) => {
                            h[..4].copy_from_slice(&m);
                            4
                        }
                        None => 0,
                    };
                    self.stream.read_exact(&mut h[start..]).await?;
                    let chunk = ChunkHeader::decode(
                        &h,
                        DEFAULT_MAX_PAYLOAD.saturating_add(8).max(req.length.saturating_add(8)),
                    )?;
                    check_handle(req.handle, chunk.handle)?;
                    match chunk.kind {
                        REPLY_TYPE_NONE => {}
                        REPLY_TYPE_OFFSET_DATA => {
                            let buf = data.as_deref_mut().ok_or_else(|| {
                                ClientError::Protocol("data chunk in the reply to a request without data".into())
                            })?;
                            let data_len = chunk
                                .length
                                .checked_sub(8)
                                .filter(|l| *l > 0)
                                .ok_or_else(|| ClientError::Protocol("data chunk shorter than 9 bytes".into()))?;
                            let offset = self.stream.read_u64().await?;
                            let slice = chunk_slice(buf, req.offset, offset, data_len)?;
                            self.stream.read_exact(slice).await?;
                            covered += u64::from(data_len);
                        }
                        REPLY_TYPE_OFFSET_HOLE => {
                            let buf = data.as_deref_mut().ok_or_else(|| {
                                ClientError::Protocol("hole chunk in the reply to a request without data".into())
                            })?;
                            if chunk.length != 12 {
                                return Err(ClientError::Protocol("hole chunk length is not 12".into()));
                            }
                            let offset = self.stream.read_u64().await?;
                            let len = self.stream.read_u32().await?;
                            chunk_slice(buf, req.offset, offset, len)?.fill(0);
                            covered += u64::from(len);
                        }
                        REPLY_TYPE_BLOCK_STATUS => {
                            let out = extents.as_deref_mut().ok_or_else(|| {
                                ClientError::Protocol("block status chunk in the reply to another request".into())
                            })?;
                            if chunk.length < 4 || (chunk.length - 4) & 7 != 0 || chunk.length > 65536 * 8 {
                                return Err(ClientError::Protocol("block status chunk of a bad length".into()));
                            }
                            let _context = self.stream.read_u32().await?;
                            for _ in 0..(chunk.length - 4) / 8 {
                                let len = self.stream.read_u32().await?;
                                let flags = self.stream.read_u32().await?;
                                out.push((len, flags));
                            }
                        }
                        kind if chunk.is_error() => {
                            if chunk.length > 65536 {
                                return Err(ClientError::Protocol("error chunk longer than 64 KiB".into()));
                            }
                            let mut payload = vec![0u8; chunk.length as usize];
                            self.stream.read_exact(&mut payload).await?;
                            let e = ErrorChunk::parse(kind, &payload)?;
                            failure.get_or_insert(ClientError::Request { error: e.error, message: e.message });
                        }
                        other => {
                            return Err(ClientError::Protocol(format!("unknown structured reply type {other}")));
                        }
                    }
                    if chunk.is_done() {
                        break;
                    }
                }
                if let Some(e) = failure {
                    return Err(e);
                }
                if data.is_some() && covered != u64::from(req.length) {
                    return Err(ClientError::Protocol(format!("read reply covered {covered} of {} bytes", req.length)));
                }
                Ok(())
            }
        }
    }
}

/// The part of the caller's buffer a content chunk at `offset` fills, checked against the request.
fn chunk_slice(buf: &mut [u8], req_offset: u64, offset: u64, len: u32) -> Result<&mut [u8], ClientError> {
    let bad = || ClientError::Protocol("content chunk outside the requested range".into());
    let start = usize::try_from(offset.checked_sub(req_offset).ok_or_else(bad)?).map_err(|_| bad())?;
    let end = start.checked_add(len as usize).ok_or_else(bad)?;
    buf.get_mut(start..end).ok_or_else(bad)
}

fn check_handle(sent: u64, got: u64) -> Result<(), ClientError> {
    if sent == got {
        Ok(())
    } else {
        Err(ClientError::Protocol(format!("reply for handle {got} while waiting for {sent}")))
    }
}

fn len_u32(len: usize) -> Result<u32, ClientError> {
    u32::try_from(len).map_err(|_| ClientError::Protocol(format!("request of {len} bytes does not fit 32 bits")))
}

async fn with_timeout<T>(limit: Duration, fut: impl Future<Output = Result<T, ClientError>>) -> Result<T, ClientError> {
    tokio::time::timeout(limit, fut).await.unwrap_or(Err(ClientError::Timeout(limit)))
}
