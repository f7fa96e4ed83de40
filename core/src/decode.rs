//! Fast, strict decoding of the common clean event record.
//!
//! `decode_fast` accepts a line only when it is sure the Python reference
//! (`streams.engine.events.decode_event`) would accept it with exactly these
//! fields. Anything else (escapes, duplicate known keys, exponents, deep
//! nesting, a value that fails validation, ...) is `None`: the caller then asks
//! the reference, so dead-letter reasons are always the reference's.

/// SPEC §1 bounds (mirrors `streams.engine.events`).
pub const TS_MIN: i64 = 946_684_800_000;
pub const TS_MAX: i64 = 4_102_444_800_000;
pub const MAX_ID_CHARS: usize = 128;
const MAX_SKIP_DEPTH: usize = 32;
const MAX_NUMBER_DIGITS: usize = 18;

/// One valid event, borrowing its strings from the line.
#[derive(Debug, PartialEq, Eq)]
pub struct Event<'a> {
    pub id: &'a str,
    pub kind: u8,
    pub actor: &'a str,
    pub target: &'a str,
    pub ts: i64,
}

/// Python's `bytes.strip()` whitespace: a line of only these is blank (not read).
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
}

/// `line.rstrip(b"\r\n")`.
pub fn strip_line_end(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    &line[..end]
}

struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Some(())
        } else {
            None
        }
    }

    /// A string with no escapes and no control characters (the cursor is on its opening quote).
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => return None,
                byte if byte < 0x20 => return None,
                _ => self.at += 1,
            }
        }
        let end = self.at;
        self.at += 1;
        // the whole line is valid UTF-8 and quotes are ASCII: these are char boundaries
        Some(&self.text[start..end])
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    /// A number without exponent and with few digits (so any JSON parser reads it as a finite value).
    fn plain_number(&mut self) -> Option<()> {
        let _ = self.eat(b'-');
        let first = self.peek()?;
        let whole = self.digits();
        if whole == 0 || whole > MAX_NUMBER_DIGITS || (first == b'0' && whole > 1) {
            return None;
        }
        if self.eat(b'.').is_some() {
            let fraction = self.digits();
            if fraction == 0 || fraction > MAX_NUMBER_DIGITS {
                return None;
            }
        }
        match self.peek() {
            Some(b'e' | b'E') => None,
            _ => Some(()),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Some(())
        } else {
            None
        }
    }

    /// Any JSON value of a field the engine ignores, checked as strictly as a parser would.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_SKIP_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.plain_string().map(|_| ()),
            b'{' => {
                self.at += 1;
                self.skip_ws();
                if self.eat(b'}').is_some() {
                    return Some(());
                }
                loop {
                    self.plain_string()?;
                    self.skip_ws();
                    self.eat(b':')?;
                    self.skip_ws();
                    self.skip_value(depth + 1)?;
                    self.skip_ws();
                    match self.peek()? {
                        b',' => {
                            self.at += 1;
                            self.skip_ws();
                        }
                        b'}' => {
                            self.at += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'[' => {
                self.at += 1;
                self.skip_ws();
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    self.skip_ws();
                    match self.peek()? {
                        b',' => {
                            self.at += 1;
                            self.skip_ws();
                        }
                        b']' => {
                            self.at += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.plain_number(),
            _ => None,
        }
    }

    /// The `ts` value: a plain positive integer, nothing else (floats and the rest go to the reference).
    fn timestamp(&mut self) -> Option<i64> {
        let start = self.at;
        if !matches!(self.peek()?, b'1'..=b'9') {
            return None;
        }
        let count = self.digits();
        if count > MAX_NUMBER_DIGITS || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let mut value: i64 = 0;
        for &byte in &self.bytes[start..self.at] {
            value = value * 10 + i64::from(byte - b'0');
        }
        Some(value)
    }
}

fn valid_id(value: &str) -> bool {
    // code points, as Python's len(str)
    let chars = if value.is_ascii() { value.len() } else { value.chars().count() };
    (1..=MAX_ID_CHARS).contains(&chars)
}

fn kind_index(value: &str) -> Option<u8> {
    match value {
        "mention" => Some(0),
        "reply" => Some(1),
        "like" => Some(2),
        _ => None,
    }
}

/// The event of a clean, valid record, or None when the reference must decide.
pub fn decode_fast(raw: &[u8]) -> Option<Event<'_>> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut cursor = Cursor { text, bytes: raw, at: 0 };
    let (mut id, mut kind, mut actor, mut target, mut ts) = (None, None, None, None, None);
    cursor.skip_ws();
    cursor.eat(b'{')?;
    cursor.skip_ws();
    loop {
        let key = cursor.plain_string()?;
        cursor.skip_ws();
        cursor.eat(b':')?;
        cursor.skip_ws();
        match key {
            "id" | "actor_id" | "target_id" | "type" => {
                let slot = match key {
                    "id" => &mut id,
                    "actor_id" => &mut actor,
                    "target_id" => &mut target,
                    _ => &mut kind,
                };
                if slot.is_some() {
                    return None; // a repeated key: the reference says which one counts
                }
                *slot = Some(cursor.plain_string()?);
            }
            "ts" => {
                if ts.is_some() {
                    return None;
                }
                ts = Some(cursor.timestamp()?);
            }
            _ => cursor.skip_value(0)?,
        }
        cursor.skip_ws();
        match cursor.peek()? {
            b',' => {
                cursor.at += 1;
                cursor.skip_ws();
            }
            b'}' => {
                cursor.at += 1;
                break;
            }
            _ => return None,
        }
    }
    cursor.skip_ws();
    if cursor.at != raw.len() {
        return None;
    }
    let (id, actor, target) = (id?, actor?, target?);
    if !(valid_id(id) && valid_id(actor) && valid_id(target)) {
        return None;
    }
    let kind = kind_index(kind?)?;
    let ts = ts?;
    if !(TS_MIN..TS_MAX).contains(&ts) {
        return None;
    }
    Some(Event { id, kind, actor, target, ts })
}
