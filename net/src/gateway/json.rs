//! JSON as Go's `encoding/json` reads it, because etcd's gateway is Go and its clients see Go's
//! answers: [`next_value`] takes the first value off a request body (what `json.Decoder` does:
//! trailing bytes stay for the next call, a body of only whitespace is the end), [`whole`] parses
//! a text that must be exactly one value (`json.Unmarshal`). Syntax errors carry Go's texts
//! (`invalid character '}' looking for beginning of object key string`, `unexpected EOF`), and
//! values keep what Go's decoding needs: a number's literal text, a string's raw bytes.

/// A parsed JSON value; strings and numbers borrow the input.
#[derive(Clone, Debug, PartialEq)]
pub enum Json<'a> {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written.
    Number(&'a str),
    /// A string: its bytes between the quotes as written, and its decoded value.
    String {
        /// The bytes between the quotes, escapes not decoded.
        raw: &'a [u8],
        /// The value (invalid UTF-8 and lone surrogates become U+FFFD, as in Go).
        value: String,
    },
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object's members in order (a repeated name is kept twice; readers take the last).
    Object(Vec<(String, Json<'a>)>),
}

impl Json<'_> {
    /// What Go calls this kind of value in `cannot unmarshal <kind> into ...`.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "bool",
            Json::Number(_) => "number",
            Json::String { .. } => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }
}

/// What [`next_value`] found at the front of a buffer.
#[derive(Debug, PartialEq)]
pub enum Next<'a> {
    /// A whole value, and how many bytes of the buffer it (and whitespace before it) took.
    Value(Json<'a>, usize),
    /// Nothing but whitespace, and the input has ended (Go's `io.EOF`).
    End,
    /// A value has begun but not ended, and more input may come.
    NeedMore,
}

/// The first JSON value in `buffer`. `eof` says no more bytes will follow: a value cut short is
/// then Go's `unexpected EOF`. The error is Go's text.
pub fn next_value(buffer: &[u8], eof: bool) -> Result<Next<'_>, String> {
    let mut parser = Parser { input: buffer, at: 0, depth: 0 };
    parser.skip_space();
    if parser.at == buffer.len() {
        return Ok(if eof { Next::End } else { Next::NeedMore });
    }
    match parser.value() {
        // A number at the very end may go on in the next bytes.
        Ok(_) if !eof && parser.at == buffer.len() && ends_in_number(buffer) => Ok(Next::NeedMore),
        Ok(value) => Ok(Next::Value(value, parser.at)),
        Err(Fault::Incomplete) if eof => Err("unexpected EOF".to_string()),
        Err(Fault::Incomplete) => Ok(Next::NeedMore),
        Err(Fault::Syntax(message)) => Err(message),
    }
}

/// `text` as exactly one JSON value, with Go's `json.Unmarshal` errors.
pub fn whole(text: &[u8]) -> Result<Json<'_>, String> {
    let mut parser = Parser { input: text, at: 0, depth: 0 };
    parser.skip_space();
    let value = parser.value().map_err(|fault| match fault {
        Fault::Incomplete => "unexpected end of JSON input".to_string(),
        Fault::Syntax(message) => message,
    })?;
    parser.skip_space();
    match parser.peek() {
        None => Ok(value),
        Some(c) => Err(invalid(c, "after top-level value")),
    }
}

/// Watches a body's bytes as they arrive and tells when a whole value may have come (its
/// brackets closed, outside any string), so that a reader parses a body that trickles in once
/// per value, not once per chunk (which costs the square of its length).
#[derive(Debug, Default)]
pub struct Boundary {
    depth: i64,
    in_string: bool,
    escaped: bool,
    started: bool,
}

impl Boundary {
    /// Takes the next bytes of the body; `true` if a value may have ended within them (then
    /// [`next_value`] tells for sure).
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        let mut may_end = false;
        for &c in bytes {
            if self.in_string {
                match c {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => self.in_string = false,
                    _ => {}
                }
            } else {
                match c {
                    // Space may end a number or a literal: it counts, but starts nothing.
                    b' ' | b'\t' | b'\n' | b'\r' => {}
                    b'"' => self.in_string = true,
                    b'{' | b'[' => self.depth += 1,
                    b'}' | b']' => self.depth -= 1,
                    _ => {}
                }
                self.started |= !matches!(c, b' ' | b'\t' | b'\n' | b'\r');
            }
            may_end |= self.started && !self.in_string && self.depth <= 0;
        }
        may_end
    }
}

fn ends_in_number(buffer: &[u8]) -> bool {
    buffer
        .last()
        .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
}

enum Fault {
    /// The input ended inside a value.
    Incomplete,
    /// Go's syntax error text.
    Syntax(String),
}

/// Go's `invalid character 'c' <context>`.
fn invalid(c: u8, context: &str) -> String {
    format!("invalid character {} {context}", quote_char(c))
}

/// Go's `quoteChar`: the byte as a rune, quoted the way `strconv.Quote` would, in single quotes.
fn quote_char(c: u8) -> String {
    let inner = match c {
        b'\'' => "\\'".to_string(),
        b'"' => "\"".to_string(),
        b'\\' => "\\\\".to_string(),
        0x07 => "\\a".to_string(),
        0x08 => "\\b".to_string(),
        0x0c => "\\f".to_string(),
        b'\n' => "\\n".to_string(),
        b'\r' => "\\r".to_string(),
        b'\t' => "\\t".to_string(),
        0x0b => "\\v".to_string(),
        0x00..=0x1f | 0x7f => format!("\\x{c:02x}"),
        0x80..=0x9f | 0xad => format!("\\u{c:04x}"),
        _ => char::from(c).to_string(),
    };
    format!("'{inner}'")
}

/// How deeply arrays and objects may nest. Go allows 10 000; etcd's messages nest a handful
/// of levels, and a parser that recurses must stop well before a thread's stack does.
const MAX_DEPTH: usize = 512;

struct Parser<'a> {
    input: &'a [u8],
    at: usize,
    /// Arrays and objects open around the current position.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// The next byte, or `Incomplete` at the end of the input.
    fn next(&mut self) -> Result<u8, Fault> {
        let c = self.peek().ok_or(Fault::Incomplete)?;
        self.at += 1;
        Ok(c)
    }

    fn value(&mut self) -> Result<Json<'a>, Fault> {
        match self.peek().ok_or(Fault::Incomplete)? {
            b'{' | b'[' if self.depth == MAX_DEPTH => {
                Err(Fault::Syntax("exceeded max depth".to_string()))
            }
            c @ (b'{' | b'[') => {
                self.depth += 1;
                let value = if c == b'{' { self.object() } else { self.array() };
                self.depth -= 1;
                value
            }
            b'"' => self.string(),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true", Json::Bool(true)),
            b'f' => self.literal(b"false", Json::Bool(false)),
            b'n' => self.literal(b"null", Json::Null),
            c => Err(Fault::Syntax(invalid(c, "looking for beginning of value"))),
        }
    }

    fn object(&mut self) -> Result<Json<'a>, Fault> {
        self.at += 1;
        let mut members = Vec::new();
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Json::Object(members));
        }
        loop {
            self.skip_space();
            match self.peek().ok_or(Fault::Incomplete)? {
                b'"' => {}
                c => {
                    return Err(Fault::Syntax(invalid(
                        c,
                        "looking for beginning of object key string",
                    )))
                }
            }
            let Json::String { value: name, .. } = self.string()? else { unreachable!() };
            self.skip_space();
            match self.next()? {
                b':' => {}
                c => return Err(Fault::Syntax(invalid(c, "after object key"))),
            }
            self.skip_space();
            let value = self.value()?;
            members.push((name, value));
            self.skip_space();
            match self.next()? {
                b',' => continue,
                b'}' => return Ok(Json::Object(members)),
                c => return Err(Fault::Syntax(invalid(c, "after object key:value pair"))),
            }
        }
    }

    fn array(&mut self) -> Result<Json<'a>, Fault> {
        self.at += 1;
        let mut elements = Vec::new();
        self.skip_space();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Json::Array(elements));
        }
        loop {
            self.skip_space();
            elements.push(self.value()?);
            self.skip_space();
            match self.next()? {
                b',' => continue,
                b']' => return Ok(Json::Array(elements)),
                c => return Err(Fault::Syntax(invalid(c, "after array element"))),
            }
        }
    }

    fn literal(&mut self, word: &'static [u8], value: Json<'a>) -> Result<Json<'a>, Fault> {
        self.at += 1;
        let name = std::str::from_utf8(word).unwrap_or_default();
        for &expected in &word[1..] {
            let c = self.next()?;
            if c != expected {
                let context = format!("in literal {name} (expecting {})", quote_char(expected));
                return Err(Fault::Syntax(invalid(c, &context)));
            }
        }
        Ok(value)
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
    }

    /// A digit must come next (`context` names where, for the error).
    fn digit(&mut self, context: &str) -> Result<(), Fault> {
        match self.next()? {
            b'0'..=b'9' => Ok(()),
            c => Err(Fault::Syntax(invalid(c, context))),
        }
    }

    fn number(&mut self) -> Result<Json<'a>, Fault> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
            match self.peek() {
                Some(b'0'..=b'9') => {}
                Some(c) => return Err(Fault::Syntax(invalid(c, "in numeric literal"))),
                None => return Err(Fault::Incomplete),
            }
        }
        if self.next()? != b'0' {
            self.digits();
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.digit("after decimal point in numeric literal")?;
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.digit("in exponent of numeric literal")?;
            self.digits();
        }
        let text = std::str::from_utf8(&self.input[start..self.at]).unwrap_or_default();
        Ok(Json::Number(text))
    }

    fn hex4(&mut self) -> Result<u32, Fault> {
        let mut value = 0;
        for _ in 0..4 {
            let c = self.next()?;
            let digit = char::from(c)
                .to_digit(16)
                .ok_or_else(|| Fault::Syntax(invalid(c, "in \\u hexadecimal character escape")))?;
            value = value * 16 + digit;
        }
        Ok(value)
    }

    fn string(&mut self) -> Result<Json<'a>, Fault> {
        self.at += 1;
        let start = self.at;
        let mut bytes = Vec::new();
        loop {
            match self.next()? {
                b'"' => break,
                b'\\' => match self.next()? {
                    b'"' => bytes.push(b'"'),
                    b'\\' => bytes.push(b'\\'),
                    b'/' => bytes.push(b'/'),
                    b'b' => bytes.push(0x08),
                    b'f' => bytes.push(0x0c),
                    b'n' => bytes.push(b'\n'),
                    b'r' => bytes.push(b'\r'),
                    b't' => bytes.push(b'\t'),
                    b'u' => {
                        let unit = self.hex4()?;
                        let c = self.surrogate_pair(unit)?;
                        bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                    c => return Err(Fault::Syntax(invalid(c, "in string escape code"))),
                },
                c if c < 0x20 => return Err(Fault::Syntax(invalid(c, "in string literal"))),
                c => bytes.push(c),
            }
        }
        let raw = &self.input[start..self.at - 1];
        let value = String::from_utf8_lossy(&bytes).into_owned();
        Ok(Json::String { raw, value })
    }

    /// The character a `\u` escape of `unit` stands for: a high surrogate takes the low one
    /// that follows as `\uXXXX`; an unpaired surrogate is U+FFFD, as Go decodes it.
    fn surrogate_pair(&mut self, unit: u32) -> Result<char, Fault> {
        if !(0xd800..0xdc00).contains(&unit) {
            return Ok(char::from_u32(unit).unwrap_or('\u{fffd}'));
        }
        let rest = &self.input[self.at..];
        if rest.len() >= 6 && rest[0] == b'\\' && rest[1] == b'u' {
            let low = std::str::from_utf8(&rest[2..6])
                .ok()
                .and_then(|hex| u32::from_str_radix(hex, 16).ok());
            if let Some(low @ 0xdc00..=0xdfff) = low {
                self.at += 6;
                let code = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
                return Ok(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
        }
        Ok('\u{fffd}')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        next_value(text.as_bytes(), true).unwrap_err()
    }

    #[test]
    fn syntax_errors_read_as_gos() {
        // Each answer is what etcd 3.4.23's gateway said for the same body.
        for (body, go) in [
            (r#"{"key" "Zm9v"}"#, r#"invalid character '"' after object key"#),
            (
                r#"{"key":"Zm9v",}"#,
                "invalid character '}' looking for beginning of object key string",
            ),
            (r#"{"key":"Zm9v" "x":1}"#, r#"invalid character '"' after object key:value pair"#),
            (r#"{key:"Zm9v"}"#, "invalid character 'k' looking for beginning of object key string"),
            (r#"{"key":Zm9v}"#, "invalid character 'Z' looking for beginning of value"),
            (r#"{"key":"Zm9v"#, "unexpected EOF"),
            ("{\"a\":\"x\ny\"}", r"invalid character '\n' in string literal"),
            (r#"{"a":tru}"#, "invalid character '}' in literal true (expecting 'e')"),
            (r#"{"a":-x}"#, "invalid character 'x' in numeric literal"),
            (r#"{"a":1.}"#, "invalid character '}' after decimal point in numeric literal"),
            (r#"{"a":1e}"#, "invalid character '}' in exponent of numeric literal"),
            (r#"{"a":01}"#, "invalid character '1' after object key:value pair"),
            (r#"{"a":[1 2]}"#, "invalid character '2' after array element"),
            (r#"{"a":"\q"}"#, "invalid character 'q' in string escape code"),
            (r#"{"a":"\u12g4"}"#, "invalid character 'g' in \\u hexadecimal character escape"),
            ("}", "invalid character '}' looking for beginning of value"),
        ] {
            assert_eq!(error(body), go, "{body}");
        }
    }

    #[test]
    fn the_first_value_is_taken_and_the_rest_left() {
        let body = br#" {"a":1} {"b":"x"}"#;
        let Next::Value(first, used) = next_value(body, false).unwrap() else { panic!() };
        assert_eq!(first, Json::Object(vec![("a".into(), Json::Number("1"))]));
        let Next::Value(second, rest) = next_value(&body[used..], false).unwrap() else { panic!() };
        assert_eq!(second.kind(), "object");
        assert_eq!(used + rest, body.len());
        // Trailing garbage after a value is not the first value's problem.
        assert!(matches!(next_value(br#"{"a":1} garbage"#, true), Ok(Next::Value(_, 7))));
        assert_eq!(next_value(b"  \n", true), Ok(Next::End));
        assert_eq!(next_value(b"  ", false), Ok(Next::NeedMore));
        assert_eq!(next_value(br#"{"a":"#, false), Ok(Next::NeedMore));
        assert_eq!(next_value(b"12", false), Ok(Next::NeedMore));
        assert!(matches!(next_value(b"12", true), Ok(Next::Value(Json::Number("12"), 2))));
    }

    #[test]
    fn a_boundary_is_seen_only_where_a_value_may_end() {
        let mut boundary = Boundary::default();
        assert!(!boundary.feed(b"  {\"a\":[1,{\"b\":\"}]\\\"\"}"));
        assert!(!boundary.feed(b"]"));
        assert!(boundary.feed(b"} {"));
        let mut byte_by_byte = Boundary::default();
        let body = br#"{"k":"v\"}"}"#;
        let ends: Vec<bool> = body.iter().map(|b| byte_by_byte.feed(&[*b])).collect();
        assert_eq!(ends.iter().filter(|e| **e).count(), 1);
        assert!(ends[body.len() - 1]);
        // What is not an object or array may end at once: the parser decides.
        assert!(Boundary::default().feed(b"1"));
        assert!(Boundary::default().feed(b"}"));
        assert!(!Boundary::default().feed(b" \n"));
        let mut number = Boundary::default();
        number.feed(b"12");
        assert!(number.feed(b" "), "space after a number may end it");
    }

    #[test]
    fn strings_decode_escapes_and_keep_their_raw_bytes() {
        let Ok(Json::String { raw, value }) = whole(br#""a\u005a\n\ud83d\ude00\ud800x\"""#) else {
            panic!()
        };
        assert_eq!(raw, br#"a\u005a\n\ud83d\ude00\ud800x\""#);
        assert_eq!(value, "aZ\n\u{1f600}\u{fffd}x\"");
        let Ok(Json::String { value, .. }) = whole(b"\"\xff\"") else { panic!() };
        assert_eq!(value, "\u{fffd}");
    }

    #[test]
    fn a_whole_text_must_be_one_value() {
        assert_eq!(whole(b" 12 "), Ok(Json::Number("12")));
        assert_eq!(whole(b"12a").unwrap_err(), "invalid character 'a' after top-level value");
        assert_eq!(whole(b"0x10").unwrap_err(), "invalid character 'x' after top-level value");
        assert_eq!(whole(b"").unwrap_err(), "unexpected end of JSON input");
        assert_eq!(
            whole(b"abc").unwrap_err(),
            "invalid character 'a' looking for beginning of value"
        );
        assert_eq!(whole(b"1.5"), Ok(Json::Number("1.5")));
    }

    #[test]
    fn repeated_names_are_all_kept_in_order() {
        let Ok(Json::Object(members)) = whole(br#"{"k":true,"k":false}"#) else { panic!() };
        assert_eq!(members, vec![("k".into(), Json::Bool(true)), ("k".into(), Json::Bool(false))]);
    }

    #[test]
    fn nesting_stops_at_a_depth_and_never_overflows_the_stack() {
        let deep = "[".repeat(100_000);
        assert_eq!(next_value(deep.as_bytes(), true).unwrap_err(), "exceeded max depth");
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(matches!(next_value(fine.as_bytes(), true), Ok(Next::Value(..))));
    }

    #[test]
    fn no_input_makes_it_panic() {
        // Every prefix of a body full of constructs: never a panic, always an answer.
        let body = br#"{"a":[1,-2.5e+3,true,false,null,"x\u00e9\n"],"b":{"c":{}}, "d":[]}"#;
        for end in 0..=body.len() {
            let _ = next_value(&body[..end], true);
            let _ = next_value(&body[..end], false);
            let _ = whole(&body[..end]);
        }
        for byte in 0..=255u8 {
            let _ = next_value(&[b'{', b'"', byte, b'"', b':', byte, b'}'], true);
        }
    }
}
