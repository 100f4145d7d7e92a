//! Server-sent events: an incremental parser for upstream streams and a frame writer
//! for client streams.
//!
//! The parser follows the WHATWG event-stream rules: lines end with `\n`, `\r\n` or
//! `\r` (also when the two bytes of `\r\n` arrive in different chunks), `data:` lines
//! of one event are joined with `\n`, lines starting with `:` are comments, and a blank
//! line dispatches the event. Every byte is looked at once: the pending buffer holds
//! only the unfinished line and is never rescanned.

/// One dispatched event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, when the event had one.
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// An incremental event-stream parser. Feed it bytes as they arrive with
/// [`SseParser::push`], then call [`SseParser::finish`] at the end of the stream.
#[derive(Debug, Default)]
pub struct SseParser {
    /// The unfinished line (bytes after the last line ending).
    line: Vec<u8>,
    /// The last chunk ended with `\r`: a `\n` at the start of the next one belongs to it.
    after_cr: bool,
    /// The byte-order mark at the very start has been dealt with.
    started: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// Feeds the next bytes of the stream; returns the events they complete.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if !self.started && !bytes.is_empty() {
            // Strip a UTF-8 BOM (which may itself be split across chunks).
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let have = self.line.len();
            let take = (BOM.len() - have).min(bytes.len());
            if BOM[have..have + take] == bytes[..take] {
                if have + take == BOM.len() {
                    self.line.clear();
                    self.started = true;
                    bytes = &bytes[take..];
                } else {
                    self.line.extend_from_slice(&bytes[..take]);
                    return out;
                }
            } else {
                // Not a BOM: the bytes held back are the start of the first line.
                self.started = true;
            }
        }
        // A `\r` ended the last chunk: a `\n` starting this one belongs to it (CRLF).
        // Only the first byte of a non-empty chunk can pair with it; after that, a
        // `\n` is a line end of its own.
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(pos) = line_end(bytes) {
            self.line.extend_from_slice(&bytes[..pos]);
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, &mut out);
            self.line = line;
            self.line.clear();
            let is_cr = bytes[pos] == b'\r';
            bytes = &bytes[pos + 1..];
            if is_cr {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.line.extend_from_slice(bytes);
        out
    }

    /// Ends the stream: an unfinished last line is taken as a line, and an event that
    /// was not closed by a blank line is still dispatched (Google's streams sometimes
    /// end without one).
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, &mut out);
        }
        self.process_line(b"", &mut out);
        self.after_cr = false;
        self.started = false;
        out
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.event = None;
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                push_lossy(&mut self.data, value);
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            // `id` and `retry` mean nothing to a one-shot upstream stream.
            _ => {}
        }
    }
}

/// The position of the first `\n` or `\r`. Eight bytes at a time (SWAR: a byte of
/// `w ^ pattern` is zero where `w` has the pattern's byte; the lowest flagged byte of
/// `(x - 0x01..) & !x & 0x80..` is the first zero byte), since every byte of a stream
/// passes here.
fn line_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const LF: u64 = u64::from_le_bytes([b'\n'; 8]);
    const CR: u64 = u64::from_le_bytes([b'\r'; 8]);
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut words = bytes.chunks_exact(8);
    let mut offset = 0;
    for word in &mut words {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let word = u64::from_le_bytes(word);
        let found = zero_bytes(word ^ LF) | zero_bytes(word ^ CR);
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map(|pos| offset + pos)
}

/// Appends `bytes` as text, invalid UTF-8 replaced. Valid text (all of Google's) takes
/// `from_utf8`'s word-at-a-time path; `from_utf8_lossy` alone walks byte by byte.
fn push_lossy(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(text) => out.push_str(text),
        Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
    }
}

/// An SSE comment line: it keeps a quiet stream open, and clients ignore it.
pub const KEEPALIVE_COMMENT: &str = ": keep-alive\n\n";

/// Writes one event as an SSE frame: `event: <name>\n`, one `data:` line per line of
/// `data`, and the blank line that ends the event.
pub fn sse_frame(event: Option<&str>, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 32);
    if let Some(event) = event {
        out.push_str("event: ");
        out.push_str(event);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(p.push(c));
        }
        out.extend(p.finish());
        out
    }

    #[test]
    fn parses_events_with_every_line_ending() {
        let input = b": comment\r\nevent: a\r\ndata: one\r\ndata:two\r\n\r\ndata: x\n\ndata: y\r\rid: 4\nretry: 10\ndata\n\n";
        assert_eq!(
            parse_all(&[input]),
            vec![
                ev(Some("a"), "one\ntwo"),
                ev(None, "x"),
                ev(None, "y"),
                ev(None, "")
            ]
        );
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_ending() {
        let out = parse_all(&[b"data: a\r", b"\n", b"\r", b"\ndata: b\r", b"\r"]);
        assert_eq!(out, vec![ev(None, "a"), ev(None, "b")]);
    }

    #[test]
    fn a_lone_lf_after_a_split_crlf_still_ends_the_event() {
        // Found by the fuzz target: `\r` | `\n` | `\n` byte by byte once merged events.
        let bytes = b"data: a\r\n\ndata: b\n\n";
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_all(&one_by_one), vec![ev(None, "a"), ev(None, "b")]);
    }

    #[test]
    fn unterminated_last_event_is_dispatched_at_finish() {
        assert_eq!(
            parse_all(&[b"data: {\"a\":1}"]),
            vec![ev(None, "{\"a\":1}")]
        );
    }

    #[test]
    fn strips_a_split_bom() {
        assert_eq!(
            parse_all(&[b"\xEF\xBB", b"\xBFdata: z\n\n"]),
            vec![ev(None, "z")]
        );
        assert_eq!(parse_all(&[b"d", b"ata: z\n\n"]), vec![ev(None, "z")]);
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        assert_eq!(parse_all(&[b"event: ping\n\n"]), vec![]);
    }

    #[test]
    fn frame_round_trips_through_the_parser() {
        let frame = sse_frame(Some("message_start"), "line1\nline2");
        assert_eq!(frame, "event: message_start\ndata: line1\ndata: line2\n\n");
        assert_eq!(
            parse_all(&[frame.as_bytes()]),
            vec![ev(Some("message_start"), "line1\nline2")]
        );
    }

    #[test]
    fn a_large_event_in_tiny_chunks_is_linear() {
        // 1 MiB of data delivered a byte at a time; a quadratic parser would take
        // minutes here.
        let body = format!("data: {}\n\n", "x".repeat(1 << 20));
        let mut p = SseParser::new();
        let mut n = 0;
        for b in body.as_bytes().chunks(1) {
            n += p.push(b).len();
        }
        assert_eq!(n, 1);
    }

    #[test]
    fn line_end_finds_the_first_terminator() {
        let naive = |b: &[u8]| b.iter().position(|&c| c == b'\n' || c == b'\r');
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"no terminator at all, longer than a word".to_vec(),
            b"\n".to_vec(),
            b"abcdefg\r".to_vec(),
            b"abcdefgh\n".to_vec(),
            b"\x0a\x0d".to_vec(),
            // Bytes next to the patterns, and high bytes, around the word edges.
            b"\x0b\x0c\x09\x0e\xff\x8a\x8d\x00\x01\rafter".to_vec(),
            "données: ümlaut ✓\r\n".as_bytes().to_vec(),
        ];
        for len in 0..20 {
            for at in 0..len {
                for t in [b'\n', b'\r'] {
                    let mut v = vec![b'x'; len];
                    v[at] = t;
                    cases.push(v);
                }
            }
        }
        for case in cases {
            assert_eq!(line_end(&case), naive(&case), "{case:?}");
        }
    }

    proptest! {
        #[test]
        fn line_end_matches_a_byte_scan(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(
                line_end(&bytes),
                bytes.iter().position(|&c| c == b'\n' || c == b'\r')
            );
        }

        #[test]
        fn chunking_does_not_change_events(
            events in proptest::collection::vec(("[a-z]{0,3}", "[ -~]{0,20}"), 0..6),
            ending in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
            cuts in proptest::collection::vec(0usize..400, 0..12),
        ) {
            let mut text = String::new();
            for (name, data) in &events {
                if !name.is_empty() {
                    text.push_str(&format!("event: {name}{ending}"));
                }
                text.push_str(&format!("data: {data}{ending}{ending}"));
            }
            let bytes = text.as_bytes();
            let whole = parse_all(&[bytes]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for c in cuts {
                chunks.push(&bytes[last..c]);
                last = c;
            }
            chunks.push(&bytes[last..]);
            prop_assert_eq!(parse_all(&chunks), whole.clone());
            prop_assert_eq!(whole.len(), events.len());
        }
    }
}
