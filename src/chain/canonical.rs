//! Canonical JSON, byte-exact with Python's `json.dumps(obj, sort_keys=True)` of
//! `json.loads(record)`: the seed rules hash exactly these bytes, so every detail
//! (key order by code point, `", "`/`": "` separators, `ensure_ascii` escapes,
//! float `repr`, big integers verbatim) is part of consensus.
//!
//! The parser writes a flat *tape* of nodes (reused between calls, so replaying a
//! chain allocates nothing per block) and, in the same pass, notes whether the input
//! is *already* canonical. Our own node publishes canonical bytes, so the common case
//! hashes the record as-is; anything else (e.g. Python's unsorted `json.dumps(block)`)
//! is re-serialised from the tape into a reusable buffer.

use std::cmp::Ordering;
use std::io::Write as _;

use sha2::{Digest, Sha256};

/// Nesting limit: how many arrays and objects may be open at once. Python's `json`
/// has no limit of its own: it stops at the interpreter's recursion limit (1000
/// frames, shared with the Python frames of the caller), so `json.loads` and
/// `json.dumps` handle about 990 to 995 levels depending on how deep the calling
/// program is. We take 990 (see docs/compat.md). Nothing here recurses on the Rust
/// stack, so the limit is about compatibility only.
pub const MAX_DEPTH: usize = 990;
/// Python 3.11+ refuses to convert integers longer than this (`sys.get_int_max_str_digits`),
/// so `json.loads` rejects them; so do we.
pub const MAX_INT_DIGITS: usize = 4300;

/// Why a record is not JSON that Python's `json.loads` would accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg} at byte {pos}")]
pub struct JsonError {
    pub msg: &'static str,
    pub pos: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Object,
    Array,
    Str,
    Int,
    /// Any literal with `.`, `e` or `E`, and `NaN`/`Infinity`/`-Infinity`.
    Float,
    True,
    False,
    Null,
}

/// One value on the tape. Objects are followed by their members as (key `Str`,
/// value subtree) pairs, arrays by their items; `next` skips the whole subtree.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    pub kind: Kind,
    /// `Str`: the raw text is already the `ensure_ascii` form; `Float`: the literal is
    /// already Python's `repr`.
    pub canon: bool,
    /// `Str`: the raw text contains escapes, so it must be decoded to be read.
    pub escaped: bool,
    /// Byte span in the input; for strings the text between the quotes.
    pub start: u32,
    pub end: u32,
    /// Member or item count for objects and arrays.
    pub len: u32,
    /// Index of the first node after this subtree.
    pub next: u32,
}

/// A parsed document: reusable, so parsing allocates only while it grows.
#[derive(Debug, Default)]
pub(crate) struct Tape {
    pub nodes: Vec<Node>,
    /// Whether the input bytes are exactly Python's canonical dump.
    pub canonical: bool,
    key_a: Vec<u8>,
    key_b: Vec<u8>,
    open: Vec<Open>,
}

impl Tape {
    pub fn parse(&mut self, input: &[u8]) -> Result<(), JsonError> {
        self.nodes.clear();
        if input.len() > u32::MAX as usize {
            return Err(JsonError {
                msg: "document too large",
                pos: 0,
            });
        }
        let mut p = Parser {
            s: input,
            i: 0,
            nodes: &mut self.nodes,
            canonical: true,
            key_a: &mut self.key_a,
            key_b: &mut self.key_b,
            open: &mut self.open,
        };
        if p.ws() != 0 {
            p.canonical = false;
        }
        p.value()?;
        if p.ws() != 0 {
            p.canonical = false;
        }
        if p.i != input.len() {
            return Err(p.err("trailing characters after the JSON value"));
        }
        self.canonical = p.canonical;
        Ok(())
    }

    pub fn node(&self, idx: usize) -> &Node {
        &self.nodes[idx]
    }

    /// (key index, value index) of an object's members, in input order.
    pub fn members(&self, obj: usize) -> Members<'_> {
        Members {
            tape: self,
            next: obj + 1,
            left: self.nodes[obj].len,
        }
    }

    /// Indexes of an array's items.
    pub fn items(&self, arr: usize) -> Items<'_> {
        Items {
            tape: self,
            next: arr + 1,
            left: self.nodes[arr].len,
        }
    }

    /// Raw bytes of a node's span.
    pub fn raw<'a>(&self, s: &'a [u8], idx: usize) -> &'a [u8] {
        let n = &self.nodes[idx];
        &s[n.start as usize..n.end as usize]
    }

    /// Writes the canonical form of the subtree at `idx`.
    pub fn write(&self, s: &[u8], idx: usize, out: &mut Vec<u8>, scratch: &mut Vec<(u32, u32)>) {
        // Iterative: `scratch` above `base` is a stack of work items (tag, node), so a
        // deeply nested document costs heap, never Rust stack. An object's members are
        // sorted in place on the same stack, then turned into MEMBER items.
        const NODE: u32 = 0;
        const MEMBER: u32 = 1;
        const ITEM: u32 = 2;
        const CLOSE_OBJECT: u32 = 3;
        const CLOSE_ARRAY: u32 = 4;
        const SEP: u32 = 1 << 8;
        let base = scratch.len();
        scratch.push((NODE, idx as u32));
        while scratch.len() > base {
            let Some((tag, i)) = scratch.pop() else { break };
            if tag & SEP != 0 {
                out.extend_from_slice(b", ");
            }
            let i = i as usize;
            match tag & !SEP {
                CLOSE_OBJECT => {
                    out.push(b'}');
                    continue;
                }
                CLOSE_ARRAY => {
                    out.push(b']');
                    continue;
                }
                MEMBER => {
                    self.write_scalar(s, i, out);
                    out.extend_from_slice(b": ");
                    scratch.push((NODE, i as u32 + 1));
                    continue;
                }
                _ => {}
            }
            let n = self.nodes[i];
            match n.kind {
                Kind::Object if n.len == 0 => out.extend_from_slice(b"{}"),
                Kind::Object => {
                    out.push(b'{');
                    scratch.push((CLOSE_OBJECT, 0));
                    let first = scratch.len();
                    for (k, _) in self.members(i) {
                        scratch.push((k as u32, 0));
                    }
                    let nodes = &self.nodes;
                    let cmp = |a: &(u32, u32), b: &(u32, u32)| {
                        key_cmp(s, &nodes[a.0 as usize], &nodes[b.0 as usize])
                    };
                    scratch[first..].sort_by(cmp);
                    // After a stable sort, equal keys keep input order: the last one wins.
                    let end = scratch.len();
                    let mut w = first;
                    for j in first..end {
                        if j + 1 < end && cmp(&scratch[j], &scratch[j + 1]) == Ordering::Equal {
                            continue;
                        }
                        scratch[w] = scratch[j];
                        w += 1;
                    }
                    scratch.truncate(w);
                    scratch[first..].reverse();
                    let last = scratch.len() - 1;
                    for (j, item) in scratch[first..].iter_mut().enumerate() {
                        let sep = if first + j == last { 0 } else { SEP };
                        *item = (MEMBER | sep, item.0);
                    }
                }
                Kind::Array if n.len == 0 => out.extend_from_slice(b"[]"),
                Kind::Array => {
                    out.push(b'[');
                    scratch.push((CLOSE_ARRAY, 0));
                    let first = scratch.len();
                    for (j, item) in self.items(i).enumerate() {
                        scratch.push((if j == 0 { ITEM } else { ITEM | SEP }, item as u32));
                    }
                    scratch[first..].reverse();
                }
                _ => self.write_scalar(s, i, out),
            }
        }
    }

    /// Writes the canonical form of a string, number or literal node.
    fn write_scalar(&self, s: &[u8], idx: usize, out: &mut Vec<u8>) {
        let n = self.nodes[idx];
        match n.kind {
            Kind::Str => {
                if n.canon {
                    // The span sits between its quotes in the input: copy them too.
                    out.extend_from_slice(&s[n.start as usize - 1..n.end as usize + 1]);
                } else {
                    out.push(b'"');
                    write_escaped_raw(&s[n.start as usize..n.end as usize], out);
                    out.push(b'"');
                }
            }
            Kind::Int => {
                let raw = &s[n.start as usize..n.end as usize];
                out.extend_from_slice(if raw == b"-0" { b"0" } else { raw });
            }
            Kind::Float => {
                let raw = &s[n.start as usize..n.end as usize];
                if n.canon {
                    out.extend_from_slice(raw);
                } else {
                    write_py_float(parse_float(raw), out);
                }
            }
            Kind::True => out.extend_from_slice(b"true"),
            Kind::False => out.extend_from_slice(b"false"),
            Kind::Null => out.extend_from_slice(b"null"),
            Kind::Object | Kind::Array => {}
        }
    }
}

pub(crate) struct Members<'t> {
    tape: &'t Tape,
    next: usize,
    left: u32,
}

impl Iterator for Members<'_> {
    type Item = (usize, usize);
    fn next(&mut self) -> Option<(usize, usize)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let k = self.next;
        let v = k + 1;
        self.next = self.tape.nodes[v].next as usize;
        Some((k, v))
    }
}

pub(crate) struct Items<'t> {
    tape: &'t Tape,
    next: usize,
    left: u32,
}

impl Iterator for Items<'_> {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let i = self.next;
        self.next = self.tape.nodes[i].next as usize;
        Some(i)
    }
}

/// Whether string node `n` (a key) decodes to exactly `key`.
pub(crate) fn key_is(s: &[u8], n: &Node, key: &[u8]) -> bool {
    let raw = &s[n.start as usize..n.end as usize];
    if !n.escaped {
        return raw.len() == key.len() && short_cmp(raw, key) == Ordering::Equal;
    }
    let mut buf = Vec::new();
    decode_string(raw, &mut buf);
    buf == key
}

/// Byte-wise comparison for short keys: they usually differ in the first byte, so
/// an inline loop beats a call into `memcmp`.
#[inline]
fn short_cmp(a: &[u8], b: &[u8]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// Python compares `str` by code point; WTF-8 (UTF-8 that also encodes lone
/// surrogates) preserves that order bytewise.
fn key_cmp(s: &[u8], a: &Node, b: &Node) -> Ordering {
    let ra = &s[a.start as usize..a.end as usize];
    let rb = &s[b.start as usize..b.end as usize];
    if !a.escaped && !b.escaped {
        return short_cmp(ra, rb);
    }
    let (mut da, mut db) = (Vec::new(), Vec::new());
    decode_string(ra, &mut da);
    decode_string(rb, &mut db);
    da.cmp(&db)
}

fn key_cmp_buf(s: &[u8], a: &Node, b: &Node, ba: &mut Vec<u8>, bb: &mut Vec<u8>) -> Ordering {
    let ra = &s[a.start as usize..a.end as usize];
    let rb = &s[b.start as usize..b.end as usize];
    if !a.escaped && !b.escaped {
        return short_cmp(ra, rb);
    }
    ba.clear();
    bb.clear();
    decode_string(ra, ba);
    decode_string(rb, bb);
    ba.as_slice().cmp(bb.as_slice())
}

/// Bytes that stand for themselves in a canonical string: printable ASCII but `"` and `\\`.
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x20;
    while b < 0x7f {
        t[b] = b != b'"' as usize && b != b'\\' as usize;
        b += 1;
    }
    t
};

struct Parser<'a, 't> {
    s: &'a [u8],
    i: usize,
    nodes: &'t mut Vec<Node>,
    canonical: bool,
    key_a: &'t mut Vec<u8>,
    key_b: &'t mut Vec<u8>,
    open: &'t mut Vec<Open>,
}

/// A container being parsed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Open {
    idx: usize,
    len: u32,
    object: bool,
    prev_key: Option<usize>,
}

impl Parser<'_, '_> {
    fn err(&self, msg: &'static str) -> JsonError {
        JsonError { msg, pos: self.i }
    }

    /// Skips JSON whitespace (Python accepts space, tab, CR, LF); returns how much.
    #[inline]
    fn ws(&mut self) -> usize {
        let start = self.i;
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
        self.i - start
    }

    /// Skips whitespace that must be exactly one space in the canonical form.
    #[inline]
    fn one_space(&mut self) {
        if self.s.get(self.i) == Some(&b' ')
            && !matches!(self.s.get(self.i + 1), Some(b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.i += 1;
        } else {
            self.ws();
            self.canonical = false;
        }
    }

    #[inline]
    fn no_space(&mut self) {
        if self.ws() != 0 {
            self.canonical = false;
        }
    }

    fn push(&mut self, kind: Kind, start: usize) -> usize {
        let idx = self.nodes.len();
        self.nodes.push(Node {
            kind,
            canon: true,
            escaped: false,
            start: start as u32,
            end: start as u32,
            len: 0,
            next: idx as u32 + 1,
        });
        idx
    }

    /// Parses one JSON value (and everything nested in it) without recursion: open
    /// containers live on an explicit stack, so nesting costs heap, never Rust stack.
    fn value(&mut self) -> Result<(), JsonError> {
        let mut open = std::mem::take(self.open);
        open.clear();
        let result = self.value_with(&mut open);
        *self.open = open;
        result
    }

    fn value_with(&mut self, open: &mut Vec<Open>) -> Result<(), JsonError> {
        'value: loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err(self.err("expected a value, found the end of the input"));
            };
            match c {
                b'{' | b'[' => {
                    if open.len() >= MAX_DEPTH {
                        return Err(self.err("nesting too deep"));
                    }
                    let object = c == b'{';
                    let idx = self.push(if object { Kind::Object } else { Kind::Array }, self.i);
                    self.i += 1;
                    if self.ws() != 0 {
                        self.canonical = false;
                    }
                    let close = if object { b'}' } else { b']' };
                    if self.s.get(self.i) == Some(&close) {
                        self.i += 1;
                        self.close(idx, 0);
                    } else {
                        open.push(Open {
                            idx,
                            len: 0,
                            object,
                            prev_key: None,
                        });
                        if object {
                            self.key(open)?;
                        }
                        continue 'value;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b'-' | b'0'..=b'9' => self.number()?,
                b't' => self.literal(b"true", Kind::True)?,
                b'f' => self.literal(b"false", Kind::False)?,
                b'n' => self.literal(b"null", Kind::Null)?,
                b'N' => self.literal(b"NaN", Kind::Float)?,
                b'I' => self.literal(b"Infinity", Kind::Float)?,
                _ => return Err(self.err("expected a value")),
            }
            // A value is complete: continue or close the containers around it.
            loop {
                let Some(top) = open.last_mut() else {
                    return Ok(());
                };
                top.len += 1;
                let (object, idx, len) = (top.object, top.idx, top.len);
                self.no_space();
                let close = if object { b'}' } else { b']' };
                match self.s.get(self.i) {
                    Some(b',') => {
                        self.i += 1;
                        self.one_space();
                        if object {
                            self.key(open)?;
                        }
                        continue 'value;
                    }
                    Some(&b) if b == close => {
                        self.i += 1;
                        self.close(idx, len);
                        open.pop();
                    }
                    _ if object => return Err(self.err("expected ',' or '}' in an object")),
                    _ => return Err(self.err("expected ',' or ']' in an array")),
                }
            }
        }
    }

    /// Parses `"key": ` inside the innermost open object, checking the canonical order.
    fn key(&mut self, open: &mut [Open]) -> Result<(), JsonError> {
        if self.s.get(self.i) != Some(&b'"') {
            return Err(self.err("expected a string key"));
        }
        let key = self.string()?;
        let Some(top) = open.last_mut() else {
            return Ok(());
        };
        if self.canonical {
            if let Some(prev) = top.prev_key {
                let ord = key_cmp_buf(
                    self.s,
                    &self.nodes[prev],
                    &self.nodes[key],
                    self.key_a,
                    self.key_b,
                );
                if ord != Ordering::Less {
                    self.canonical = false;
                }
            }
        }
        top.prev_key = Some(key);
        self.no_space();
        if self.s.get(self.i) != Some(&b':') {
            return Err(self.err("expected ':' after an object key"));
        }
        self.i += 1;
        self.one_space();
        Ok(())
    }

    /// Records a finished container's member/item count, end and subtree extent.
    fn close(&mut self, idx: usize, len: u32) {
        let next = self.nodes.len() as u32;
        let n = &mut self.nodes[idx];
        n.len = len;
        n.next = next;
        n.end = self.i as u32;
    }

    fn literal(&mut self, word: &[u8], kind: Kind) -> Result<(), JsonError> {
        if !self.s[self.i..].starts_with(word) {
            return Err(self.err("expected a value"));
        }
        let idx = self.push(kind, self.i);
        self.i += word.len();
        self.nodes[idx].end = self.i as u32;
        Ok(())
    }

    /// Parses a string starting at its opening quote; returns its node index.
    fn string(&mut self) -> Result<usize, JsonError> {
        self.i += 1;
        let start = self.i;
        let idx = self.push(Kind::Str, start);
        let s = self.s;
        let mut canon = true;
        let mut escaped = false;
        let mut non_ascii = false;
        loop {
            // Fast path: a run of plain printable ASCII.
            while self.i < s.len() && PLAIN[s[self.i] as usize] {
                self.i += 1;
            }
            let Some(&b) = s.get(self.i) else {
                return Err(self.err("unterminated string"));
            };
            match b {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    let Some(&e) = s.get(self.i + 1) else {
                        return Err(self.err("unterminated string"));
                    };
                    match e {
                        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                        b'/' => {
                            canon = false;
                            self.i += 2;
                        }
                        b'u' => {
                            let Some(hex) = s.get(self.i + 2..self.i + 6) else {
                                return Err(self.err("invalid \\u escape"));
                            };
                            let mut v = 0u32;
                            for &h in hex {
                                let d = match h {
                                    b'0'..=b'9' => h - b'0',
                                    b'a'..=b'f' => h - b'a' + 10,
                                    b'A'..=b'F' => {
                                        canon = false;
                                        h - b'A' + 10
                                    }
                                    _ => return Err(self.err("invalid \\u escape")),
                                };
                                v = v * 16 + d as u32;
                            }
                            // ensure_ascii only uses \u for what has no other spelling.
                            if (0x20..0x7f).contains(&v)
                                || matches!(v, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d)
                            {
                                canon = false;
                            }
                            self.i += 6;
                        }
                        _ => return Err(self.err("invalid escape")),
                    }
                }
                0x00..=0x1f => return Err(self.err("invalid control character in string")),
                _ => {
                    // 0x7f or a UTF-8 lead/continuation byte: valid, but escaped when canonical.
                    canon = false;
                    if b >= 0x80 {
                        non_ascii = true;
                    }
                    self.i += 1;
                }
            }
        }
        if non_ascii && std::str::from_utf8(&s[start..self.i]).is_err() {
            return Err(JsonError {
                msg: "invalid UTF-8 in string",
                pos: start,
            });
        }
        if !canon {
            self.canonical = false;
        }
        let n = &mut self.nodes[idx];
        n.end = self.i as u32;
        n.canon = canon;
        n.escaped = escaped;
        self.i += 1;
        Ok(idx)
    }

    fn number(&mut self) -> Result<(), JsonError> {
        let s = self.s;
        let start = self.i;
        if s[self.i] == b'-' {
            self.i += 1;
            if s.get(self.i) == Some(&b'I') {
                if !s[self.i..].starts_with(b"Infinity") {
                    return Err(self.err("invalid number"));
                }
                self.i += 8;
                let idx = self.push(Kind::Float, start);
                self.nodes[idx].end = self.i as u32;
                return Ok(());
            }
        }
        let digits_start = self.i;
        match s.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                while matches!(s.get(self.i), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            }
            _ => return Err(self.err("invalid number")),
        }
        let int_digits = self.i - digits_start;
        let mut float = false;
        if s.get(self.i) == Some(&b'.') && matches!(s.get(self.i + 1), Some(b'0'..=b'9')) {
            float = true;
            self.i += 1;
            while matches!(s.get(self.i), Some(b'0'..=b'9')) {
                self.i += 1;
            }
        }
        if matches!(s.get(self.i), Some(b'e' | b'E')) {
            let mut j = self.i + 1;
            if matches!(s.get(j), Some(b'+' | b'-')) {
                j += 1;
            }
            if matches!(s.get(j), Some(b'0'..=b'9')) {
                float = true;
                self.i = j;
                while matches!(s.get(self.i), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            }
        }
        if float {
            let idx = self.push(Kind::Float, start);
            let raw = &s[start..self.i];
            let buf = &mut *self.key_a;
            buf.clear();
            write_py_float(parse_float(raw), buf);
            let canon = buf.as_slice() == raw;
            let n = &mut self.nodes[idx];
            n.end = self.i as u32;
            n.canon = canon;
            if !n.canon {
                self.canonical = false;
            }
        } else {
            if int_digits > MAX_INT_DIGITS {
                return Err(JsonError {
                    msg: "integer longer than Python's 4300-digit limit",
                    pos: start,
                });
            }
            let idx = self.push(Kind::Int, start);
            self.nodes[idx].end = self.i as u32;
            if &s[start..self.i] == b"-0" {
                self.canonical = false;
            }
        }
        Ok(())
    }
}

/// Parses a float literal the way Python's `float()` does (correctly rounded;
/// overflow gives infinity). The parser has already checked the syntax.
pub(crate) fn parse_float(raw: &[u8]) -> f64 {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or(f64::NAN)
}

/// Writes `x` as Python's `json.dumps` does: `repr(x)` for finite values (shortest
/// round-trip digits; exponent form when the decimal exponent is < -4 or >= 16),
/// `NaN`, `Infinity`, `-Infinity` otherwise.
pub fn write_py_float(x: f64, out: &mut Vec<u8>) {
    if x.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if x.is_infinite() {
        out.extend_from_slice(if x > 0.0 { b"Infinity" } else { b"-Infinity" });
    } else {
        write_py_repr_finite(x, out);
    }
}

/// Python's `str(x)` of a float (`inf`/`nan` differ from the JSON spelling).
pub(crate) fn write_py_str_float(x: f64, out: &mut Vec<u8>) {
    if x.is_nan() {
        out.extend_from_slice(b"nan");
    } else if x.is_infinite() {
        out.extend_from_slice(if x > 0.0 { b"inf" } else { b"-inf" });
    } else {
        write_py_repr_finite(x, out);
    }
}

fn write_py_repr_finite(x: f64, out: &mut Vec<u8>) {
    // Ryu prints the shortest round-trip digits, as Python's repr does; only the
    // layout differs, so reduce its output to digits and a decimal exponent.
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(x).as_bytes();
    let (neg, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let epos = text
        .iter()
        .position(|&b| b == b'e' || b == b'E')
        .unwrap_or(text.len());
    let mut digits = [0u8; 24];
    let mut k = 0;
    // Decimal exponent of the first significant digit, counted from the mantissa text.
    let mut int_len: i32 = 0;
    let mut seen_point = false;
    let mut leading_zeros_after_point: i32 = 0;
    for &d in &text[..epos] {
        if d == b'.' {
            seen_point = true;
        } else if k == 0 && d == b'0' {
            if seen_point {
                leading_zeros_after_point += 1;
            }
        } else {
            if !seen_point {
                int_len += 1;
            }
            if k < digits.len() {
                digits[k] = d;
                k += 1;
            }
        }
    }
    while k > 1 && digits[k - 1] == b'0' {
        k -= 1;
    }
    if k == 0 {
        digits[0] = b'0';
        k = 1;
    }
    let mut e: i32 = 0;
    let exp_text = &text[(epos + 1).min(text.len())..];
    let (eneg, exp_digits) = match exp_text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, exp_text),
    };
    for &d in exp_digits {
        e = e * 10 + (d - b'0') as i32;
    }
    if eneg {
        e = -e;
    }
    let first_nonzero_is_int = int_len > 0;
    let mut n = if x == 0.0 {
        0
    } else if first_nonzero_is_int {
        int_len - 1
    } else {
        -(leading_zeros_after_point + 1)
    };
    n += e;
    let digits = &digits[..k];
    if neg {
        out.push(b'-');
    }
    if !(-4..16).contains(&n) {
        out.push(digits[0]);
        if k > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if n < 0 { b'-' } else { b'+' });
        let a = n.unsigned_abs();
        if a < 10 {
            out.push(b'0');
        }
        let _ = write!(out, "{a}");
    } else if n >= 0 {
        let int_len = n as usize + 1;
        if k <= int_len {
            out.extend_from_slice(digits);
            out.extend(std::iter::repeat_n(b'0', int_len - k));
            out.extend_from_slice(b".0");
        } else {
            out.extend_from_slice(&digits[..int_len]);
            out.push(b'.');
            out.extend_from_slice(&digits[int_len..]);
        }
    } else {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-n - 1) as usize));
        out.extend_from_slice(digits);
    }
}

/// Iterates the UTF-16 code units a raw (already validated) JSON string stands for.
fn for_each_unit(raw: &[u8], mut f: impl FnMut(u32)) {
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'\\' {
            let e = raw[i + 1];
            let u = match e {
                b'"' => 0x22,
                b'\\' => 0x5c,
                b'/' => 0x2f,
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => 0x0a,
                b'r' => 0x0d,
                b't' => 0x09,
                _ => {
                    let mut v = 0u32;
                    for &h in &raw[i + 2..i + 6] {
                        v = v * 16 + (h as char).to_digit(16).unwrap_or(0);
                    }
                    i += 4;
                    v
                }
            };
            f(u);
            i += 2;
        } else if b < 0x80 {
            f(b as u32);
            i += 1;
        } else {
            let len = if b >= 0xf0 {
                4
            } else if b >= 0xe0 {
                3
            } else {
                2
            };
            let cp = std::str::from_utf8(&raw[i..i + len])
                .ok()
                .and_then(|c| c.chars().next())
                .map_or(0xfffd, |c| c as u32);
            if cp >= 0x10000 {
                let v = cp - 0x10000;
                f(0xd800 + (v >> 10));
                f(0xdc00 + (v & 0x3ff));
            } else {
                f(cp);
            }
            i += len;
        }
    }
}

/// Decodes a raw JSON string into WTF-8, joining surrogate pairs as Python does.
pub(crate) fn decode_string(raw: &[u8], out: &mut Vec<u8>) {
    let mut pending_high: Option<u32> = None;
    let emit = |cp: u32, out: &mut Vec<u8>| {
        // WTF-8: UTF-8's bit layout, also for lone surrogates.
        if cp < 0x80 {
            out.push(cp as u8);
        } else if cp < 0x800 {
            out.extend_from_slice(&[0xc0 | (cp >> 6) as u8, 0x80 | (cp & 0x3f) as u8]);
        } else if cp < 0x10000 {
            out.extend_from_slice(&[
                0xe0 | (cp >> 12) as u8,
                0x80 | ((cp >> 6) & 0x3f) as u8,
                0x80 | (cp & 0x3f) as u8,
            ]);
        } else {
            out.extend_from_slice(&[
                0xf0 | (cp >> 18) as u8,
                0x80 | ((cp >> 12) & 0x3f) as u8,
                0x80 | ((cp >> 6) & 0x3f) as u8,
                0x80 | (cp & 0x3f) as u8,
            ]);
        }
    };
    for_each_unit(raw, |u| {
        if let Some(h) = pending_high.take() {
            if (0xdc00..0xe000).contains(&u) {
                emit(0x10000 + ((h - 0xd800) << 10) + (u - 0xdc00), out);
                return;
            }
            emit(h, out);
        }
        if (0xd800..0xdc00).contains(&u) {
            pending_high = Some(u);
        } else {
            emit(u, out);
        }
    });
    if let Some(h) = pending_high {
        emit(h, out);
    }
}

/// Writes one UTF-16 code unit the way `ensure_ascii` does.
#[inline]
fn write_unit(u: u32, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match u {
        0x22 => out.extend_from_slice(b"\\\""),
        0x5c => out.extend_from_slice(b"\\\\"),
        0x0a => out.extend_from_slice(b"\\n"),
        0x0d => out.extend_from_slice(b"\\r"),
        0x09 => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        0x20..=0x7e => out.push(u as u8),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            HEX[(u >> 12 & 0xf) as usize],
            HEX[(u >> 8 & 0xf) as usize],
            HEX[(u >> 4 & 0xf) as usize],
            HEX[(u & 0xf) as usize],
        ]),
    }
}

fn write_escaped_raw(raw: &[u8], out: &mut Vec<u8>) {
    for_each_unit(raw, |u| write_unit(u, out));
}

/// Writes `text` as a canonical JSON string, quotes included.
pub fn write_json_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let mut units = [0u16; 2];
    for c in text.chars() {
        for u in c.encode_utf16(&mut units).iter() {
            write_unit(*u as u32, out);
        }
    }
    out.push(b'"');
}

/// Writes a JSON number literal (as validated by a JSON parser) in canonical form.
pub fn write_json_number(literal: &str, out: &mut Vec<u8>) {
    let b = literal.as_bytes();
    if b.iter().any(|c| matches!(c, b'.' | b'e' | b'E'))
        || literal.contains("Infinity")
        || literal == "NaN"
    {
        write_py_float(parse_float(b), out);
    } else if literal == "-0" {
        out.push(b'0');
    } else {
        out.extend_from_slice(b);
    }
}

/// Reusable canonicaliser: keeps its tape and output buffer between calls so that
/// hashing record after record does not allocate.
#[derive(Debug, Default)]
pub struct Canonicalizer {
    pub(crate) tape: Tape,
    pub(crate) buf: Vec<u8>,
    pub(crate) scratch: Vec<(u32, u32)>,
}

impl Canonicalizer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The canonical bytes of `input`: `input` itself when it already is canonical.
    pub fn canonicalize<'a>(&'a mut self, input: &'a [u8]) -> Result<&'a [u8], JsonError> {
        self.tape.parse(input)?;
        Ok(self.canonical_of_parsed(input))
    }

    /// Canonical bytes of the document last parsed into `self.tape` from `input`.
    pub(crate) fn canonical_of_parsed<'a>(&'a mut self, input: &'a [u8]) -> &'a [u8] {
        if self.tape.canonical {
            input
        } else {
            self.buf.clear();
            self.tape.write(input, 0, &mut self.buf, &mut self.scratch);
            &self.buf
        }
    }

    /// SHA-256 of the canonical form: Python's
    /// `hashlib.sha256(json.dumps(json.loads(input), sort_keys=True).encode()).digest()`.
    pub fn sha256(&mut self, input: &[u8]) -> Result<[u8; 32], JsonError> {
        let bytes = self.canonicalize(input)?;
        Ok(Sha256::digest(bytes).into())
    }
}

/// Python's `json.dumps(json.loads(input), sort_keys=True)`, as bytes.
pub fn to_canonical(input: &[u8]) -> Result<Vec<u8>, JsonError> {
    let mut c = Canonicalizer::new();
    Ok(c.canonicalize(input)?.to_vec())
}

/// Whether `input` is valid JSON that is already byte-for-byte canonical.
pub fn is_canonical(input: &[u8]) -> Result<bool, JsonError> {
    let mut tape = Tape::default();
    tape.parse(input)?;
    Ok(tape.canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        String::from_utf8(to_canonical(s.as_bytes()).unwrap()).unwrap()
    }

    fn repr(x: f64) -> String {
        let mut v = Vec::new();
        write_py_float(x, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn float_repr_matches_python() {
        for (x, want) in [
            (3.0, "3.0"),
            (0.1, "0.1"),
            (1e-5, "1e-05"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (1513818733.589511, "1513818733.589511"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1e300, "1e+300"),
            (0.0001, "0.0001"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (5e-324, "5e-324"),
            (f64::INFINITY, "Infinity"),
        ] {
            assert_eq!(repr(x), want, "{x}");
        }
    }

    #[test]
    fn sorts_escapes_and_normalises() {
        assert_eq!(
            canon(r#"{"b":1,"a":[1.50,-0,"x\/y"]}"#),
            r#"{"a": [1.5, 0, "x/y"], "b": 1}"#
        );
        assert_eq!(canon(r#"{"a":1,"a":2}"#), r#"{"a": 2}"#);
        assert_eq!(
            canon("\"\u{e9}\u{1f600}\u{7f}\\u0001\""),
            r#""\u00e9\ud83d\ude00\u007f\u0001""#
        );
        assert_eq!(canon("1e400"), "Infinity");
        assert_eq!(canon(" [ ] "), "[]");
        assert_eq!(canon("{}"), "{}");
        // Code point order, not UTF-16 order: U+FFFF sorts before U+1F600.
        assert_eq!(
            canon("{\"\u{1f600}\":1,\"\u{ffff}\":2}"),
            r#"{"\uffff": 2, "\ud83d\ude00": 1}"#
        );
    }

    #[test]
    fn detects_canonical_input() {
        assert!(is_canonical(br#"{"a": [1.5, 0, "x"], "b": {"c": null}}"#).unwrap());
        assert!(!is_canonical(br#"{"b": 1, "a": 2}"#).unwrap());
        assert!(!is_canonical(br#"{"a":1}"#).unwrap());
        assert!(!is_canonical(br#"{"a": 1.50}"#).unwrap());
        assert!(!is_canonical(br#"{"a": 1,  "b": 2}"#).unwrap());
        assert!(!is_canonical(br#"{"a": 1, "a": 2}"#).unwrap());
        assert!(!is_canonical(br#""\u00E9""#).unwrap());
        assert!(is_canonical(br#""\u00e9\n""#).unwrap());
    }

    #[test]
    fn rejects_what_python_rejects() {
        for bad in [
            "",
            "{",
            "[1,]",
            "01",
            "\"a\u{1}\"",
            "{\"a\" 1}",
            "tru",
            "1 2",
            "[-]",
            "\"\\x\"",
        ] {
            assert!(to_canonical(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(to_canonical(deep(MAX_DEPTH).as_bytes()).is_ok());
        assert!(to_canonical(deep(MAX_DEPTH + 1).as_bytes()).is_err());
        let big = "9".repeat(4301);
        assert!(to_canonical(big.as_bytes()).is_err());
        assert!(to_canonical("9".repeat(4300).as_bytes()).is_ok());
    }
}
