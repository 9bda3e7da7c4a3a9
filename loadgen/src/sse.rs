//! An incremental `text/event-stream` parser following the WHATWG "interpret an event
//! stream" algorithm: CR, LF and CRLF line endings (also when CR and LF arrive in different
//! reads), a leading BOM, comments, `field: value` with one optional space stripped, multi-line
//! `data` joined with LF, `id` persisting across events (and ignored when it holds NUL),
//! `retry` only when all digits, and no dispatch for an event without data.

/// One dispatched event. `event_type` is empty for the default type (`message`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, empty when absent.
    pub event_type: &'a [u8],
    /// The data buffer, without its final LF.
    pub data: &'a [u8],
    /// The last event id seen on this stream (persists across events).
    pub id: &'a [u8],
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parser state of one stream.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    event_type: Vec<u8>,
    last_id: Vec<u8>,
    skip_lf: bool,
    bom_state: usize,
    /// Comment lines seen (heartbeats are comments).
    pub comments: u64,
    /// The last valid `retry:` value, in milliseconds.
    pub retry: Option<u64>,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes of the stream; calls `on_event` for every complete event.
    pub fn feed(&mut self, mut input: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        // A BOM is only skipped at the very start; it may be split across reads.
        while self.bom_state < BOM.len() {
            match input.first() {
                None => return,
                Some(&b) if b == BOM[self.bom_state] => {
                    self.bom_state += 1;
                    input = &input[1..];
                }
                Some(_) => {
                    // Not a BOM: replay what matched (only possible for a garbled stream).
                    let matched = &BOM[..self.bom_state];
                    self.line.extend_from_slice(matched);
                    self.bom_state = BOM.len();
                }
            }
        }
        if self.skip_lf {
            if input.is_empty() {
                return;
            }
            if input[0] == b'\n' {
                input = &input[1..];
            }
            self.skip_lf = false;
        }
        while let Some(i) = memchr::memchr2(b'\r', b'\n', input) {
            let mut next = i + 1;
            if input[i] == b'\r' {
                if next < input.len() {
                    if input[next] == b'\n' {
                        next += 1;
                    }
                } else {
                    self.skip_lf = true;
                }
            }
            if self.line.is_empty() {
                self.process_line(&input[..i], on_event);
            } else {
                self.line.extend_from_slice(&input[..i]);
                let mut line = std::mem::take(&mut self.line);
                self.process_line(&line, on_event);
                line.clear();
                self.line = line;
            }
            input = &input[next..];
        }
        self.line.extend_from_slice(input);
    }

    fn process_line(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            self.comments += 1;
            return;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(c) => {
                let v = &line[c + 1..];
                (&line[..c], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"event" => {
                self.event_type.clear();
                self.event_type.extend_from_slice(value);
            }
            b"id" if !value.contains(&0) => {
                self.last_id.clear();
                self.last_id.extend_from_slice(value);
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        self.data.pop();
        on_event(SseEvent {
            event_type: &self.event_type,
            data: &self.data,
            id: &self.last_id,
        });
        self.data.clear();
        self.event_type.clear();
    }
}

/// Reads the first unsigned integer after `"key":` in a JSON object (the bench payloads are
/// flat objects of integers). `key` includes the quotes and colon, e.g. `"seq":`.
pub fn json_u64(data: &[u8], key: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(data, key)? + key.len();
    let rest = &data[at..];
    let start = rest.iter().position(|b| !b.is_ascii_whitespace())?;
    let digits = &rest[start..];
    let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 19 {
        return None;
    }
    digits[..len].iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> (Vec<(String, String, String)>, u64) {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut |e| {
                out.push((
                    String::from_utf8_lossy(e.event_type).into_owned(),
                    String::from_utf8_lossy(e.data).into_owned(),
                    String::from_utf8_lossy(e.id).into_owned(),
                ))
            });
        }
        (out, p.comments)
    }

    #[test]
    fn every_line_ending_and_split_points() {
        let stream: &[u8] =
            b"\xEF\xBB\xBF: ping\r\nid: 7\revent: tick\r\ndata: a\ndata:b\r\n\r\ndata: c\n\n";
        let whole = parse_chunks(&[stream]);
        assert_eq!(
            whole.0,
            vec![
                ("tick".into(), "a\nb".into(), "7".into()),
                ("".into(), "c".into(), "7".into())
            ]
        );
        assert_eq!(whole.1, 1);
        for split in 0..stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(parse_chunks(&[a, b]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parse_chunks(&bytes), whole);
    }

    #[test]
    fn no_data_no_dispatch_and_field_rules() {
        let (ev, _) = parse_chunks(&[b"event: x\n\nid: a\0b\ndata\nretry: 1x\n\n"]);
        assert_eq!(ev, vec![("".into(), "".into(), "".into())]);
    }

    #[test]
    fn reads_integers() {
        let d = br#"{"seq": 12,"ts_us":1700000000000001}"#;
        assert_eq!(json_u64(d, b"\"seq\":"), Some(12));
        assert_eq!(json_u64(d, b"\"ts_us\":"), Some(1_700_000_000_000_001));
        assert_eq!(json_u64(d, b"\"nope\":"), None);
    }
}
