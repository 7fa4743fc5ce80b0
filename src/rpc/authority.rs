//! Serving isp-kit's Go client, which sends an empty `:authority`.
//!
//! Go's client dials `isp:///` (no host), so every request carries
//! `:authority: ""`, which Go's HPACK encoder writes as the static table's
//! entry 1: the single byte `0x81` in the header block. hyper's HTTP/2
//! (h2) takes an empty authority for a malformed request and resets the
//! stream (`RST_STREAM PROTOCOL_ERROR`) before any service runs, while it
//! accepts a request with no `:authority` at all. No setting changes that,
//! and a `[patch]` of h2 would not reach the crates that depend on this
//! one, so the fix sits between the socket and h2: this I/O layer reads
//! the client's HTTP/2 frames as they arrive and drops that field from each
//! header block.
//!
//! What it changes, and why that is safe:
//! * only an *indexed* field for static index 1 (`0x81`), and a literal
//!   `:authority` with an empty value that is not indexed (`0000`/`0001`
//!   forms): neither touches the HPACK dynamic table, so the decoder's
//!   table (h2's) stays exactly the encoder's (Go's). A literal *with*
//!   incremental indexing is left alone (dropping it would shift every
//!   later index); no known client sends one for an empty authority.
//! * everything else passes byte for byte: DATA and the other frames are
//!   never copied (only their 9-byte headers are looked at), a header block
//!   without the field is handed on as it came.
//! * a block that changed is written again as HEADERS (+ CONTINUATION) of
//!   at most 16 KiB each (the frame size every HTTP/2 peer accepts), its
//!   padding dropped, its priority and END_STREAM kept.
//! * anything that is not HTTP/2 with prior knowledge (no client preface),
//!   a block over [`MAX_BLOCK_BYTES`], or a block that does not parse is
//!   handed on untouched: h2 judges it as it would without this layer.
//!
//! The server's writes are not touched.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_BYTES: usize = 9;
const TYPE_HEADERS: u8 = 0x1;
const TYPE_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;
/// The largest frame payload written: the initial SETTINGS_MAX_FRAME_SIZE,
/// which every peer accepts.
const MAX_WRITTEN_FRAME: usize = 16 * 1024;
/// The largest header block rewritten; a larger one passes untouched.
pub(crate) const MAX_BLOCK_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Matching the client preface; the number of bytes matched.
    Preface(usize),
    /// Reading frames.
    Frames,
    /// Not HTTP/2 with prior knowledge: everything passes.
    Off,
}

/// A header block being collected: HEADERS, then CONTINUATIONs up to
/// END_HEADERS.
struct Block {
    stream: u32,
    /// The HEADERS flags (END_STREAM, PRIORITY).
    flags: u8,
    /// The 5 priority bytes, when the PRIORITY flag was set.
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
    /// The frames as they came, to hand on when nothing changes.
    raw: Vec<u8>,
}

/// The I/O layer; see the module documentation.
pub(crate) struct GoAuthority<IO> {
    io: IO,
    mode: Mode,
    /// Payload bytes of the current passed-through frame still to come.
    skip: usize,
    /// Inside a block handed on untouched: its CONTINUATIONs pass too.
    passing_block: bool,
    block: Option<Block>,
    /// Read from the socket, not yet scanned.
    carry: BytesMut,
    /// Scanned (and maybe rewritten), to hand on first.
    ready: BytesMut,
}

impl<IO> GoAuthority<IO> {
    pub(crate) fn new(io: IO) -> Self {
        Self {
            io,
            mode: Mode::Preface(0),
            skip: 0,
            passing_block: false,
            block: None,
            carry: BytesMut::new(),
            ready: BytesMut::new(),
        }
    }

    /// How many leading bytes of `data` pass untouched; stops at a header
    /// block frame or a frame header split across reads.
    fn pass(&mut self, data: &[u8]) -> usize {
        let mut at = 0;
        while at < data.len() {
            match self.mode {
                Mode::Off => return data.len(),
                Mode::Preface(matched) => {
                    let n = (PREFACE.len() - matched).min(data.len() - at);
                    if data[at..at + n] != PREFACE[matched..matched + n] {
                        self.mode = Mode::Off;
                        return data.len();
                    }
                    at += n;
                    self.mode = if matched + n == PREFACE.len() {
                        Mode::Frames
                    } else {
                        Mode::Preface(matched + n)
                    };
                }
                Mode::Frames if self.skip > 0 => {
                    let n = self.skip.min(data.len() - at);
                    self.skip -= n;
                    at += n;
                }
                Mode::Frames => {
                    if data.len() - at < FRAME_HEADER_BYTES || self.block.is_some() {
                        return at;
                    }
                    let head = FrameHead::parse(&data[at..]);
                    let continuation = head.kind == TYPE_CONTINUATION;
                    if head.kind == TYPE_HEADERS && Self::passes_whole(head, &data[at..]) {
                        // The usual block: one frame, here whole, nothing
                        // to drop. It passes as it came, without a copy.
                        self.skip = head.len;
                        at += FRAME_HEADER_BYTES;
                        continue;
                    }
                    if head.kind == TYPE_HEADERS || (continuation && !self.passing_block) {
                        return at;
                    }
                    if continuation && head.flags & FLAG_END_HEADERS != 0 {
                        self.passing_block = false;
                    }
                    self.skip = head.len;
                    at += FRAME_HEADER_BYTES;
                }
            }
        }
        at
    }

    /// Whether `data` starts with a whole HEADERS frame that ends its
    /// block and holds no field to drop (or does not parse, which h2
    /// judges): what the slow path would hand on unchanged.
    fn passes_whole(head: FrameHead, data: &[u8]) -> bool {
        if head.flags & FLAG_END_HEADERS == 0 || data.len() < FRAME_HEADER_BYTES + head.len {
            return false;
        }
        let payload = &data[FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + head.len];
        match headers_fragment(head.flags, payload) {
            Some((_, fragment)) => !has_empty_authority(fragment),
            None => true,
        }
    }

    /// Moves what it can from `carry` to `ready`; returns when `carry`
    /// needs more bytes (or is empty).
    fn process(&mut self) {
        loop {
            let passed = self.pass_carry();
            if passed > 0 {
                let bytes = self.carry.split_to(passed);
                self.ready.extend_from_slice(&bytes);
                continue;
            }
            if self.carry.len() < FRAME_HEADER_BYTES || self.mode != Mode::Frames {
                return;
            }
            let head = FrameHead::parse(&self.carry);
            if self.carry.len() < FRAME_HEADER_BYTES + head.len {
                if FRAME_HEADER_BYTES + head.len > MAX_BLOCK_BYTES {
                    // Too large to collect: hand the block on as it is.
                    self.give_up_block();
                    self.passing_block = head.flags & FLAG_END_HEADERS == 0;
                    let bytes = self.carry.split_to(FRAME_HEADER_BYTES);
                    self.ready.extend_from_slice(&bytes);
                    self.skip = head.len;
                    continue;
                }
                return;
            }
            let frame = self.carry.split_to(FRAME_HEADER_BYTES + head.len);
            self.collect(head, &frame);
        }
    }

    fn pass_carry(&mut self) -> usize {
        let carry = std::mem::take(&mut self.carry);
        let n = self.pass(&carry);
        self.carry = carry;
        n
    }

    /// Adds a HEADERS or CONTINUATION frame to the block; at END_HEADERS
    /// the block is written on.
    fn collect(&mut self, head: FrameHead, frame: &[u8]) {
        let payload = &frame[FRAME_HEADER_BYTES..];
        if head.kind == TYPE_HEADERS {
            // A new block while one is open is h2's to refuse.
            self.give_up_block();
            let Some((priority, fragment)) = headers_fragment(head.flags, payload) else {
                self.ready.extend_from_slice(frame);
                self.passing_block = head.flags & FLAG_END_HEADERS == 0;
                return;
            };
            self.block = Some(Block {
                stream: head.stream,
                flags: head.flags & (FLAG_END_STREAM | FLAG_PRIORITY),
                priority,
                fragment: fragment.to_vec(),
                raw: frame.to_vec(),
            });
        } else {
            match &mut self.block {
                Some(block) if block.stream == head.stream => {
                    block.fragment.extend_from_slice(payload);
                    block.raw.extend_from_slice(frame);
                }
                // A CONTINUATION out of place: h2 answers it.
                _ => {
                    self.give_up_block();
                    self.ready.extend_from_slice(frame);
                    return;
                }
            }
        }
        let too_large = self
            .block
            .as_ref()
            .is_some_and(|b| b.raw.len() > MAX_BLOCK_BYTES);
        if head.flags & FLAG_END_HEADERS != 0 {
            self.finish_block();
        } else if too_large {
            self.give_up_block();
            self.passing_block = true;
        }
    }

    /// Hands an open block on as it came.
    fn give_up_block(&mut self) {
        if let Some(block) = self.block.take() {
            self.ready.extend_from_slice(&block.raw);
        }
    }

    fn finish_block(&mut self) {
        let Some(block) = self.block.take() else {
            return;
        };
        match strip_empty_authority(&block.fragment) {
            None => self.ready.extend_from_slice(&block.raw),
            Some(fragment) => write_block(&mut self.ready, &block, &fragment),
        }
    }
}

/// A frame's 9-byte header.
#[derive(Debug, Clone, Copy)]
struct FrameHead {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl FrameHead {
    fn parse(bytes: &[u8]) -> Self {
        Self {
            len: usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]),
            kind: bytes[3],
            flags: bytes[4],
            stream: u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) & 0x7fff_ffff,
        }
    }
}

/// The priority bytes and the block fragment of a HEADERS payload, without
/// padding; `None` when the lengths do not add up (h2's to refuse).
fn headers_fragment(flags: u8, payload: &[u8]) -> Option<(Option<[u8; 5]>, &[u8])> {
    let mut rest = payload;
    let mut pad = 0;
    if flags & FLAG_PADDED != 0 {
        pad = usize::from(*rest.first()?);
        rest = &rest[1..];
    }
    let mut priority = None;
    if flags & FLAG_PRIORITY != 0 {
        let bytes: [u8; 5] = rest.get(..5)?.try_into().ok()?;
        priority = Some(bytes);
        rest = &rest[5..];
    }
    let end = rest.len().checked_sub(pad)?;
    Some((priority, &rest[..end]))
}

/// Writes `block` with `fragment` as HEADERS and CONTINUATIONs.
fn write_block(out: &mut BytesMut, block: &Block, fragment: &[u8]) {
    let priority_len = if block.priority.is_some() { 5 } else { 0 };
    let first = fragment.len().min(MAX_WRITTEN_FRAME - priority_len);
    let (head, mut rest) = fragment.split_at(first);
    let mut flags = block.flags;
    if rest.is_empty() {
        flags |= FLAG_END_HEADERS;
    }
    put_frame_head(
        out,
        priority_len + head.len(),
        TYPE_HEADERS,
        flags,
        block.stream,
    );
    if let Some(priority) = block.priority {
        out.put_slice(&priority);
    }
    out.put_slice(head);
    while !rest.is_empty() {
        let n = rest.len().min(MAX_WRITTEN_FRAME);
        let (chunk, tail) = rest.split_at(n);
        let flags = if tail.is_empty() { FLAG_END_HEADERS } else { 0 };
        put_frame_head(out, n, TYPE_CONTINUATION, flags, block.stream);
        out.put_slice(chunk);
        rest = tail;
    }
}

fn put_frame_head(out: &mut BytesMut, len: usize, kind: u8, flags: u8, stream: u32) {
    // `len` is at most MAX_WRITTEN_FRAME: three bytes.
    out.put_slice(&(len as u32).to_be_bytes()[1..]);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream);
}

/// An HPACK integer with an `n`-bit prefix at the start of `bytes`: its
/// value and length. `None` when cut short or over `u32`.
fn hpack_int(bytes: &[u8], prefix_bits: u8) -> Option<(u64, usize)> {
    let mask = (1u16 << prefix_bits) as u8 - 1;
    let first = *bytes.first()? & mask;
    if first < mask {
        return Some((u64::from(first), 1));
    }
    let mut value = u64::from(mask);
    let mut shift = 0;
    for (i, b) in bytes.iter().enumerate().skip(1) {
        value += u64::from(b & 0x7f) << shift;
        if value > u64::from(u32::MAX) {
            return None;
        }
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
        shift += 7;
    }
    None
}

/// The length of an HPACK string literal at the start of `bytes`, and
/// whether its value is empty.
fn hpack_string(bytes: &[u8]) -> Option<(usize, bool)> {
    let (len, n) = hpack_int(bytes, 7)?;
    let len = usize::try_from(len).ok()?;
    let total = n.checked_add(len)?;
    (total <= bytes.len()).then_some((total, len == 0))
}

/// The header block without its empty-`:authority` fields that do not
/// touch the dynamic table; `None` when there are none (or the block does
/// not parse: h2 judges it as it came).
pub(crate) fn strip_empty_authority(block: &[u8]) -> Option<Vec<u8>> {
    let mut drop: Vec<(usize, usize)> = Vec::new();
    scan_empty_authority(block, |at, len| drop.push((at, len)))?;
    if drop.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(block.len());
    let mut from = 0;
    for (start, len) in drop {
        out.extend_from_slice(&block[from..start]);
        from = start + len;
    }
    out.extend_from_slice(&block[from..]);
    Some(out)
}

/// Whether [`strip_empty_authority`] would change the block; without an
/// allocation.
fn has_empty_authority(block: &[u8]) -> bool {
    let mut found = false;
    scan_empty_authority(block, |_, _| found = true).is_some() && found
}

/// Walks the block's fields, calling `found(at, len)` for each
/// empty-`:authority` field that can be dropped; `None` when the block
/// does not parse.
fn scan_empty_authority(block: &[u8], mut found: impl FnMut(usize, usize)) -> Option<()> {
    let mut at = 0;
    while at < block.len() {
        let rest = &block[at..];
        let first = rest[0];
        let len = if first & 0x80 != 0 {
            // Indexed field.
            let (index, n) = hpack_int(rest, 7)?;
            if index == 1 {
                found(at, n);
            }
            n
        } else if first & 0xc0 == 0x40 {
            // Literal with incremental indexing: changes the table; kept.
            let (index, mut n) = hpack_int(rest, 6)?;
            if index == 0 {
                n += hpack_string(&rest[n..])?.0;
            }
            n + hpack_string(&rest[n..])?.0
        } else if first & 0xe0 == 0x20 {
            // Dynamic table size update.
            hpack_int(rest, 5)?.1
        } else {
            // Literal without indexing or never indexed.
            let (index, mut n) = hpack_int(rest, 4)?;
            if index == 0 {
                n += hpack_string(&rest[n..])?.0;
            }
            let (value, empty) = hpack_string(&rest[n..])?;
            if index == 1 && empty {
                found(at, n + value);
            }
            n + value
        };
        at += len;
    }
    Some(())
}

impl<IO: AsyncRead + Unpin> AsyncRead for GoAuthority<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.mode == Mode::Off && this.carry.is_empty() {
                return Pin::new(&mut this.io).poll_read(cx, buf);
            }
            if !this.carry.is_empty() || this.block.is_some() {
                // Collecting: read into `carry` until it can be scanned.
                this.process();
                if !this.ready.is_empty() {
                    continue;
                }
                let mut chunk = [0u8; 8 * 1024];
                let mut read = ReadBuf::new(&mut chunk);
                ready!(Pin::new(&mut this.io).poll_read(cx, &mut read))?;
                if read.filled().is_empty() {
                    // The peer closed mid-frame: hand on what there is.
                    this.give_up_block();
                    let rest = this.carry.split();
                    this.ready.extend_from_slice(&rest);
                    if this.ready.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    continue;
                }
                this.carry.extend_from_slice(read.filled());
                continue;
            }
            // Nothing held back: read straight into the caller's buffer and
            // hand on all that passes untouched.
            let before = buf.filled().len();
            ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
            let filled = buf.filled().len();
            if filled == before {
                return Poll::Ready(Ok(()));
            }
            let passed = this.pass(&buf.filled()[before..]);
            if passed < filled - before {
                this.carry
                    .extend_from_slice(&buf.filled()[before + passed..]);
                buf.set_filled(before + passed);
            }
            if passed > 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for GoAuthority<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// `:method POST`, `:scheme http`, `:path` (literal, indexed name 4,
    /// incremental indexing), then Go's `0x81`, then `content-type`
    /// (literal without indexing, name 31).
    fn go_block() -> Vec<u8> {
        let mut block = vec![0x83, 0x86, 0x44, 27];
        block.extend_from_slice(b"/isp.BackendService/Request");
        block.push(0x81);
        block.extend_from_slice(&[0x0f, 0x10, 16]);
        block.extend_from_slice(b"application/grpc");
        block
    }

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        put_frame_head(&mut out, payload.len(), kind, flags, stream);
        out.put_slice(payload);
        out.to_vec()
    }

    #[test]
    fn the_go_authority_byte_is_dropped_and_nothing_else() {
        let block = go_block();
        let stripped = strip_empty_authority(&block).unwrap();
        let mut expected = block.clone();
        let at = expected.iter().position(|b| *b == 0x81).unwrap();
        expected.remove(at);
        assert_eq!(stripped, expected);
        // a block without it, an authority with a value, and garbage stay
        assert_eq!(strip_empty_authority(&expected), None);
        let with_value = [0x01, 3, b'a', b':', b'1'];
        assert_eq!(strip_empty_authority(&with_value), None);
        assert_eq!(strip_empty_authority(&[0x44, 200, b'x']), None);
        // literal without indexing, empty value: dropped; with incremental
        // indexing: kept (it enters the dynamic table)
        assert_eq!(strip_empty_authority(&[0x83, 0x01, 0x00]), Some(vec![0x83]));
        assert_eq!(strip_empty_authority(&[0x41, 0x00]), None);
        // an index past the static table (dynamic) is left alone
        assert_eq!(strip_empty_authority(&[0xbe]), None);
        assert_eq!(strip_empty_authority(&[0xff, 0x00]), None); // index 127
    }

    #[test]
    fn hpack_integers() {
        assert_eq!(hpack_int(&[0x81], 7), Some((1, 1)));
        assert_eq!(hpack_int(&[0x1f, 0x9a, 0x0a], 5), Some((1337, 3)));
        assert_eq!(hpack_int(&[0x7f], 7), None, "cut short");
        assert_eq!(
            hpack_int(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 7),
            None
        );
    }

    async fn through_layer(input: Vec<u8>, chunk: usize) -> Vec<u8> {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for piece in input.chunks(chunk) {
                client.write_all(piece).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut layer = GoAuthority::new(server);
        let mut out = Vec::new();
        let mut buf = [0u8; 100];
        loop {
            let n = layer.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        writer.await.unwrap();
        out
    }

    #[tokio::test]
    async fn frames_pass_and_the_block_is_rewritten_at_any_read_size() {
        let mut input = PREFACE.to_vec();
        input.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100])); // SETTINGS
        let block = go_block();
        // HEADERS split over a CONTINUATION, padded, with priority
        let mut headers_payload = vec![2u8]; // pad length
        headers_payload.extend_from_slice(&[0, 0, 0, 0, 15]); // priority
        headers_payload.extend_from_slice(&block[..10]);
        headers_payload.extend_from_slice(&[0, 0]);
        input.extend(frame(
            TYPE_HEADERS,
            FLAG_PADDED | FLAG_PRIORITY,
            1,
            &headers_payload,
        ));
        input.extend(frame(TYPE_CONTINUATION, FLAG_END_HEADERS, 1, &block[10..]));
        let data = vec![7u8; 40_000];
        input.extend(frame(0x0, FLAG_END_STREAM, 1, &data));

        let mut expected = PREFACE.to_vec();
        expected.extend(frame(0x4, 0, 0, &[0, 3, 0, 0, 0, 100]));
        let mut rewritten = vec![0, 0, 0, 0, 15];
        rewritten.extend(strip_empty_authority(&block).unwrap());
        expected.extend(frame(
            TYPE_HEADERS,
            FLAG_PRIORITY | FLAG_END_HEADERS,
            1,
            &rewritten,
        ));
        expected.extend(frame(0x0, FLAG_END_STREAM, 1, &data));
        for chunk in [1, 5, 9, 10, 64, 100_000] {
            assert_eq!(
                through_layer(input.clone(), chunk).await,
                expected,
                "chunk {chunk}"
            );
        }
    }

    #[tokio::test]
    async fn whole_blocks_without_the_field_pass_as_they_came_between_rewritten_ones() {
        let go = go_block();
        let clean = strip_empty_authority(&go).unwrap();
        let mut input = PREFACE.to_vec();
        let mut expected = PREFACE.to_vec();
        for stream in [1u32, 3, 5, 7] {
            // Odd streams from a client that sends no empty authority
            // (passed without a copy), the others Go's (rewritten).
            let (sent, seen) = if stream % 4 == 1 {
                (&clean, &clean)
            } else {
                (&go, &clean)
            };
            input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, stream, sent));
            expected.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, stream, seen));
            let data = vec![stream as u8; 300];
            input.extend(frame(0x0, FLAG_END_STREAM, stream, &data));
            expected.extend(frame(0x0, FLAG_END_STREAM, stream, &data));
        }
        // A block that does not parse passes as it came, for h2 to refuse.
        input.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 9, &[0x7f]));
        expected.extend(frame(TYPE_HEADERS, FLAG_END_HEADERS, 9, &[0x7f]));
        for chunk in [1, 7, 9, 10, 33, 100, 100_000] {
            assert_eq!(
                through_layer(input.clone(), chunk).await,
                expected,
                "chunk {chunk}"
            );
        }
    }

    #[tokio::test]
    async fn anything_but_http2_passes_untouched() {
        let input = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x81\x81".to_vec();
        assert_eq!(through_layer(input.clone(), 3).await, input);
    }
}
