//! A connection's two buffers: the read buffer, which holds what the socket delivered until the requests in it are
//! handled, and the reply buffer, which gathers replies until they go out in one write. Both keep their memory
//! between requests and give it back when the connection goes idle.
//!
//! Reply memory is bounded per connection and in total: a reply buffer may always hold [`REPLY_BASE`] bytes, and
//! grows past that (up to the connection's `--reply-buffer-kib`) only with bytes taken from the server-wide
//! [`ReplyBudget`] (`--reply-memory-mib`), given back when the connection goes idle or ends. The request loop
//! sends the buffer whenever it reaches the size it got, and sends reads larger than that in pieces of that size,
//! so a client that does not read its replies holds at most its buffer, while its thread waits in the write and
//! reads no more requests (back-pressure).

use dvsan_nbd::constants::{CHUNK_HEADER_LEN, REPLY_FLAG_DONE, REPLY_TYPE_NONE};
use dvsan_nbd::transmission::ChunkHeader;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Initial read buffer: room for many small requests or a few large ones per wake-up.
const READ_BUF: usize = 256 * 1024;
/// What every reply buffer may hold without the budget: 32 replies of 4 KiB reads and their headers, and more.
pub(crate) const REPLY_BASE: usize = 256 * 1024;

/// Bytes of reply buffers past [`REPLY_BASE`], shared by every connection.
#[derive(Debug)]
pub struct ReplyBudget {
    limit: usize,
    used: AtomicUsize,
}

impl ReplyBudget {
    pub fn new(limit: usize) -> Arc<ReplyBudget> {
        Arc::new(ReplyBudget { limit, used: AtomicUsize::new(0) })
    }

    /// Take `n` bytes if that stays within the limit.
    fn try_take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes taken now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// The read buffer: bytes `start..end` of `buf` are received and not yet handled.
pub(crate) struct InBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl InBuf {
    pub(crate) fn new() -> InBuf {
        InBuf { buf: vec![0; READ_BUF], start: 0, end: 0 }
    }

    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Make sure a request of `need` bytes starting at `start` fits, and that there is free space to read into.
    pub(crate) fn make_room(&mut self, need: usize) {
        let pending = self.end - self.start;
        if self.start > 0 && (self.buf.len() - self.start < need.max(READ_BUF / 4) || self.end == self.buf.len()) {
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = pending;
        }
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        if self.end == self.buf.len() {
            // Full with one incomplete request that fits (need <= len): cannot happen, but never spin on a zero
            // length read.
            let grow = self.buf.len() + READ_BUF;
            self.buf.resize(grow, 0);
        }
    }

    pub(crate) fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.end..]
    }

    pub(crate) fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Give back the memory of a large request once the connection is idle.
    pub(crate) fn shrink_if_idle(&mut self) {
        if self.end == 0 && self.buf.len() > READ_BUF {
            self.buf.truncate(READ_BUF);
            self.buf.shrink_to_fit();
        }
    }
}

/// The reply buffer. `buf[..len]` is pending output; `buf` keeps its initialised length as a high-water mark so
/// reads can land in it without zeroing memory per request. `charged` bytes of it (what is past [`REPLY_BASE`])
/// are taken from the budget, if there is one.
#[derive(Default)]
pub(crate) struct OutBuf {
    buf: Vec<u8>,
    len: usize,
    budget: Option<Arc<ReplyBudget>>,
    charged: usize,
}

impl Drop for OutBuf {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give_back(self.charged);
        }
    }
}

impl OutBuf {
    /// A reply buffer whose memory past [`REPLY_BASE`] comes from `budget`.
    pub(crate) fn with_budget(budget: Arc<ReplyBudget>) -> OutBuf {
        OutBuf { buf: Vec::new(), len: 0, budget: Some(budget), charged: 0 }
    }

    /// How many bytes the buffer may hold, growing it towards `want` as far as the budget allows (at least
    /// [`REPLY_BASE`], at most `want` unless it already holds more): the request loop sends it on reaching this.
    pub(crate) fn room(&mut self, want: usize) -> usize {
        let want = want.max(REPLY_BASE);
        let have = self.buf.len().max(REPLY_BASE);
        if have >= want {
            return have;
        }
        let more = want - have;
        match &self.budget {
            Some(budget) if !budget.try_take(more) => have,
            _ => {
                if self.budget.is_some() {
                    self.charged += more;
                }
                self.buf.resize(want, 0);
                want
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// `n` more bytes of output, to be filled by the caller.
    pub(crate) fn extend(&mut self, n: usize) -> &mut [u8] {
        let start = self.len;
        let end = start + n;
        if self.buf.len() < end {
            // Past what `room` gave: a reply's header or error chunk over the size, charged even over the limit
            // (it is small, and the buffer is sent before anything more is added).
            if let Some(budget) = &self.budget {
                let more = end.saturating_sub(REPLY_BASE).saturating_sub(self.charged);
                budget.used.fetch_add(more, Ordering::AcqRel);
                self.charged += more;
            }
            self.buf.resize(end, 0);
        }
        self.len = end;
        &mut self.buf[start..end]
    }

    pub(crate) fn append(&mut self, bytes: &[u8]) {
        self.extend(bytes.len()).copy_from_slice(bytes);
    }

    /// Give back the memory past [`REPLY_BASE`] once the connection is idle.
    pub(crate) fn shrink_if_idle(&mut self) {
        if self.len == 0 && self.buf.len() > REPLY_BASE {
            self.buf.truncate(REPLY_BASE);
            self.buf.shrink_to_fit();
            if let Some(budget) = &self.budget {
                budget.give_back(std::mem::take(&mut self.charged));
            }
        }
    }
}

/// Append a final NBD_REPLY_TYPE_NONE chunk (without allocating).
pub(crate) fn append_done_chunk(out: &mut OutBuf, handle: u64) {
    let mut done = [0u8; CHUNK_HEADER_LEN];
    ChunkHeader { flags: REPLY_FLAG_DONE, kind: REPLY_TYPE_NONE, handle, length: 0 }.encode_into(&mut done);
    out.append(&done);
}

#[cfg(test)]
mod tests {
    use super::*;
    use dvsan_nbd::constants::REQUEST_HEADER_LEN;

    #[test]
    fn read_buffer_compacts_and_grows_for_a_large_request() {
        let mut b = InBuf::new();
        b.make_room(REQUEST_HEADER_LEN);
        let n = b.spare().len();
        assert_eq!(n, READ_BUF);
        b.filled(READ_BUF);
        b.consume(READ_BUF - 10);
        // 10 bytes of a request left at the end: they move to the front, with room for a 1 MiB write behind.
        b.make_room(REQUEST_HEADER_LEN + (1 << 20));
        assert_eq!((b.start, b.end), (0, 10));
        assert!(b.spare().len() >= REQUEST_HEADER_LEN + (1 << 20) - 10);
        b.consume(10);
        assert_eq!((b.start, b.end), (0, 0));
        b.shrink_if_idle();
        assert_eq!(b.buf.len(), READ_BUF);
    }

    #[test]
    fn reply_buffer_reuses_its_memory() {
        let mut o = OutBuf::default();
        o.append(b"abc");
        o.extend(4).copy_from_slice(b"defg");
        assert_eq!(o.as_slice(), b"abcdefg");
        o.truncate(3);
        assert_eq!(o.as_slice(), b"abc");
        o.clear();
        assert!(o.is_empty());
        assert_eq!(o.buf.len(), 7, "high-water mark kept");
    }

    #[test]
    fn reply_buffers_grow_past_the_base_only_with_budget() {
        const MIB: usize = 1 << 20;
        let budget = ReplyBudget::new(MIB);
        let mut a = OutBuf::with_budget(budget.clone());
        let mut b = OutBuf::with_budget(budget.clone());
        assert_eq!(a.room(MIB), MIB);
        assert_eq!(budget.used(), MIB - REPLY_BASE);
        // What is left of the budget is not enough for b's megabyte: b keeps the base.
        assert_eq!(b.room(MIB), REPLY_BASE);
        assert_eq!(b.room(0), REPLY_BASE);
        // A header past the size is charged, and given back with the rest when idle.
        a.extend(MIB + 16);
        assert_eq!(budget.used(), MIB + 16 - REPLY_BASE);
        a.clear();
        a.shrink_if_idle();
        assert_eq!(budget.used(), 0);
        assert_eq!(b.room(MIB), MIB);
        drop(b);
        assert_eq!(budget.used(), 0, "dropping a buffer gives its bytes back");
    }
}
