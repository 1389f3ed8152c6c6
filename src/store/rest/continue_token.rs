//! kube's list continue tokens (k8s.io/apiserver's storage.EncodeContinue and DecodeContinue),
//! byte for byte: `{"v":"meta.k8s.io/v1","rv":N,"start":"<key>"}` as Go's encoding/json writes
//! it, in unpadded URL-safe base64. The start key is relative to the list's own key prefix (a
//! namespace's, or the resource's for a list across namespaces), and is the first key the next
//! page may hold: the last key served, then a NUL. A token is read as Go reads it, so a
//! malformed one is refused in Go's words (base64's and encoding/json's).

/// A token for the page after `last` (a key relative to the list's prefix) at revision `rv`.
pub fn encode_after(rv: u64, last: &str) -> String {
    encode(&rv.to_string(), &format!("{last}\0"))
}

/// The token kube hands back with a 410 for an expired one: the same start, at rv -1 (the
/// latest revision, an inconsistent continuation the client may choose).
pub fn encode_latest(start: &str) -> String {
    encode("-1", start)
}

fn encode(rv: &str, start: &str) -> String {
    use base64::Engine;
    let raw = format!(r#"{{"v":"meta.k8s.io/v1","rv":{rv},"start":{}}}"#, crate::api::go_json(&start.into()));
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// A token's revision (None: a negative one, the latest) and start key (relative to the list's
/// prefix, cleaned), or DecodeContinue's error text (the handler words it
/// `invalid continue token: <text>`, a 400).
pub fn decode(token: &str) -> Result<(Option<u64>, String), String> {
    const NOT_VALID: &str = "continue key is not valid";
    let data = go_raw_url_base64(token.as_bytes())
        .map_err(|at| format!("{NOT_VALID}: illegal base64 data at input byte {at}"))?;
    let token = go_unmarshal(&data).map_err(|e| format!("{NOT_VALID}: {e}"))?;
    if token.v != "meta.k8s.io/v1" {
        return Err(format!("{NOT_VALID}: server does not recognize this encoded version {}", token.v));
    }
    if token.rv == 0 {
        return Err(format!("{NOT_VALID}: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"));
    }
    if token.start.is_empty() {
        return Err(format!("{NOT_VALID}: encoded start key empty (version meta.k8s.io/v1)"));
    }
    // path.Clean must leave "/" + start as it is: the key cannot climb out of the list's prefix
    let key = if token.start.starts_with('/') { token.start.clone() } else { format!("/{}", token.start) };
    if clean(&key) != key {
        return Err(format!("{NOT_VALID}: {}", token.start));
    }
    Ok((u64::try_from(token.rv).ok(), key[1..].to_string()))
}

/// Go's path.Clean of a rooted path.
fn clean(rooted: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for seg in rooted.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            s => kept.push(s),
        }
    }
    format!("/{}", kept.join("/"))
}

/// Go's base64.RawURLEncoding.DecodeString: line breaks are skipped; the error is the offset of
/// the first byte that cannot be (Go's CorruptInputError), a lone last character included.
fn go_raw_url_base64(src: &[u8]) -> Result<Vec<u8>, usize> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some((c - b'A') as u32),
            b'a'..=b'z' => Some((c - b'a') as u32 + 26),
            b'0'..=b'9' => Some((c - b'0') as u32 + 52),
            b'-' => Some(62),
            b'_' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(src.len() * 3 / 4);
    let mut si = 0;
    loop {
        // one quantum of up to four characters, as Go's decodeQuantum reads it
        let (mut quantum, mut j) = ([0u32; 4], 0usize);
        while j < 4 {
            let Some(&c) = src.get(si) else {
                match j {
                    0 => return Ok(out),
                    1 => return Err(si - j),
                    _ => break,
                }
            };
            si += 1;
            match value(c) {
                Some(v) => {
                    quantum[j] = v;
                    j += 1;
                }
                None if c == b'\n' || c == b'\r' => {}
                None => return Err(si - 1),
            }
        }
        let bits = quantum[0] << 18 | quantum[1] << 12 | quantum[2] << 6 | quantum[3];
        out.extend_from_slice(&bits.to_be_bytes()[1..j]);
        if j < 4 {
            return Ok(out);
        }
    }
}

/// storage.continueToken as decoded.
#[derive(Debug, Default, PartialEq)]
struct Token {
    v: String,
    rv: i64,
    start: String,
}

/// Go's json.Unmarshal into storage.continueToken: the syntax is checked first (Go's scanner
/// and its messages), then the fields (matched case-insensitively, the last of repeated keys
/// winning, unknown keys ignored, null leaving a field as it is), the first type error reported.
fn go_unmarshal(data: &[u8]) -> Result<Token, String> {
    go_json_check(data)?;
    let mut p = Parser { b: data, i: 0 };
    let mut token = Token::default();
    p.space();
    let top = p.b[p.i];
    if top == b'n' {
        return Ok(token);
    }
    if top != b'{' {
        return Err(format!("json: cannot unmarshal {} into Go value of type storage.continueToken", kind(top)));
    }
    let mut first_error = None;
    p.i += 1;
    loop {
        p.space();
        if p.b[p.i] == b'}' {
            break;
        }
        let key = p.string();
        p.space();
        p.i += 1; // ':'
        p.space();
        let at = p.b[p.i];
        let value = p.value();
        let field = ["v", "rv", "start"].into_iter().find(|f| *f == key).or_else(|| {
            let folded = fold(&key);
            ["v", "rv", "start"].into_iter().find(|f| *f == folded)
        });
        let mismatch = match (field, at) {
            (None, _) | (Some(_), b'n') => None,
            (Some("rv"), b'-' | b'0'..=b'9') => match std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()) {
                Some(n) => {
                    token.rv = n;
                    None
                }
                None => Some(("rv", format!("number {}", String::from_utf8_lossy(value)))),
            },
            (Some(f @ ("v" | "start")), b'"') => {
                let s = Parser { b: value, i: 0 }.string();
                *if f == "v" { &mut token.v } else { &mut token.start } = s;
                None
            }
            (Some(f), _) => Some((f, kind(at).to_string())),
        };
        if let (Some((f, what)), None) = (mismatch, &first_error) {
            let ty = if f == "rv" { "int64" } else { "string" };
            first_error =
                Some(format!("json: cannot unmarshal {what} into Go struct field continueToken.{f} of type {ty}"));
        }
        p.space();
        if p.b[p.i] == b',' {
            p.i += 1;
        }
    }
    first_error.map_or(Ok(token), Err)
}

/// A field name folded as Go's encoding/json matches names (bytes.EqualFold: ASCII case, and
/// the Kelvin sign and long s, which fold to k and s).
fn fold(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '\u{212a}' => 'k',
            '\u{17f}' => 's',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// What Go's type errors call a JSON value that starts with `c`.
fn kind(c: u8) -> &'static str {
    match c {
        b'{' => "object",
        b'[' => "array",
        b'"' => "string",
        b't' | b'f' => "bool",
        _ => "number",
    }
}

/// A reader of JSON that `go_json_check` has found well formed.
struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn space(&mut self) {
        while self.b.get(self.i).is_some_and(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    /// The bytes of the value here, skipped.
    fn value(&mut self) -> &'a [u8] {
        let start = self.i;
        match self.b[self.i] {
            b'"' => {
                self.string();
            }
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.b[self.i] {
                        b'"' => {
                            self.string();
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth -= 1,
                        _ => {}
                    }
                    self.i += 1;
                    if depth == 0 {
                        break;
                    }
                }
            }
            _ => {
                while self
                    .b
                    .get(self.i)
                    .is_some_and(|c| !matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'))
                {
                    self.i += 1;
                }
            }
        }
        &self.b[start..self.i]
    }

    /// The string here, decoded as Go decodes it (invalid UTF-8 and lone surrogates are U+FFFD).
    fn string(&mut self) -> String {
        let mut bytes = Vec::new();
        self.i += 1;
        loop {
            match self.b[self.i] {
                b'"' => break,
                b'\\' => {
                    self.i += 1;
                    let c = match self.b[self.i] {
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let unit = self.hex4();
                            let pair = (0xd800..0xdc00).contains(&unit)
                                && self.b.get(self.i + 1..self.i + 3) == Some(b"\\u".as_slice());
                            let low = pair.then(|| {
                                self.i += 2;
                                self.hex4()
                            });
                            match low {
                                Some(low) if (0xdc00..0xe000).contains(&low) => {
                                    char::from_u32(0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00))
                                        .unwrap_or('\u{fffd}')
                                }
                                Some(low) => {
                                    // not a pair: the first is U+FFFD, the second read again
                                    push_char(&mut bytes, '\u{fffd}');
                                    char::from_u32(low).unwrap_or('\u{fffd}')
                                }
                                None => char::from_u32(unit).unwrap_or('\u{fffd}'),
                            }
                        }
                        c => c as char,
                    };
                    push_char(&mut bytes, c);
                }
                c => bytes.push(c),
            }
            self.i += 1;
        }
        self.i += 1;
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The four hex digits after `\u` (the cursor on the `u`, left on the last digit).
    fn hex4(&mut self) -> u32 {
        let digits = std::str::from_utf8(&self.b[self.i + 1..self.i + 5]).unwrap_or("0");
        self.i += 4;
        u32::from_str_radix(digits, 16).unwrap_or(0xfffd)
    }
}

fn push_char(bytes: &mut Vec<u8>, c: char) {
    bytes.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
}

/// Go's encoding/json checkValid: its scanner over `b`, with its first error as it words it.
fn go_json_check(b: &[u8]) -> Result<(), String> {
    /// Go's scanner states (its step functions).
    #[derive(Clone, Copy, PartialEq)]
    enum S {
        BeginValue,
        BeginValueOrEmpty,
        BeginStringOrEmpty,
        BeginString,
        EndValue,
        EndTop,
        InString,
        Esc,
        EscU(u8),
        Neg,
        One,
        Zero,
        Dot,
        Dot0,
        E,
        ESign,
        E0,
        Lit(&'static [u8], usize),
    }
    #[derive(Clone, Copy)]
    enum Parse {
        ObjectKey,
        ObjectValue,
        ArrayValue,
    }
    const MAX_DEPTH: usize = 10_000;
    let error = |c: u8, context: &str| format!("invalid character {} {context}", quote_char(c));
    let space = |c: u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let mut stack: Vec<Parse> = Vec::new();
    let mut state = S::BeginValue;
    // each byte, then a space for the end of input (Go's eof)
    for (n, &c) in b.iter().chain(std::iter::once(&b' ')).enumerate() {
        let at_end = n == b.len();
        // a state that hands the byte on to another reads it again
        loop {
            let next = match state {
                S::BeginValueOrEmpty if c == b']' => {
                    state = S::EndValue;
                    continue;
                }
                S::BeginValue | S::BeginValueOrEmpty => match c {
                    c if space(c) => state,
                    b'{' | b'[' => {
                        stack.push(if c == b'{' { Parse::ObjectKey } else { Parse::ArrayValue });
                        if stack.len() > MAX_DEPTH {
                            return Err(error(c, "exceeded max depth"));
                        }
                        if c == b'{' {
                            S::BeginStringOrEmpty
                        } else {
                            S::BeginValueOrEmpty
                        }
                    }
                    b'"' => S::InString,
                    b'-' => S::Neg,
                    b'0' => S::Zero,
                    b'1'..=b'9' => S::One,
                    b't' => S::Lit(b"true", 1),
                    b'f' => S::Lit(b"false", 1),
                    b'n' => S::Lit(b"null", 1),
                    _ => return Err(error(c, "looking for beginning of value")),
                },
                S::BeginStringOrEmpty if c == b'}' => {
                    stack.pop();
                    S::EndValue
                }
                S::BeginStringOrEmpty | S::BeginString => match c {
                    c if space(c) => state,
                    b'"' => S::InString,
                    _ => return Err(error(c, "looking for beginning of object key string")),
                },
                S::EndValue => match (stack.last().copied(), c) {
                    (None, _) => {
                        state = S::EndTop;
                        continue;
                    }
                    (_, c) if space(c) => state,
                    (Some(Parse::ObjectKey), b':') => {
                        *stack.last_mut().expect("in an object") = Parse::ObjectValue;
                        S::BeginValue
                    }
                    (Some(Parse::ObjectKey), _) => return Err(error(c, "after object key")),
                    (Some(Parse::ObjectValue), b',') => {
                        *stack.last_mut().expect("in an object") = Parse::ObjectKey;
                        S::BeginString
                    }
                    (Some(Parse::ArrayValue), b',') => S::BeginValue,
                    (Some(Parse::ObjectValue), b'}') | (Some(Parse::ArrayValue), b']') => {
                        stack.pop();
                        S::EndValue
                    }
                    (Some(Parse::ObjectValue), _) => return Err(error(c, "after object key:value pair")),
                    (Some(Parse::ArrayValue), _) => return Err(error(c, "after array element")),
                },
                S::EndTop if space(c) => state,
                S::EndTop => return Err(error(c, "after top-level value")),
                S::InString => match c {
                    b'"' => S::EndValue,
                    b'\\' => S::Esc,
                    c if c < 0x20 => return Err(error(c, "in string literal")),
                    _ => state,
                },
                S::Esc => match c {
                    b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => S::InString,
                    b'u' => S::EscU(0),
                    _ => return Err(error(c, "in string escape code")),
                },
                S::EscU(k) if c.is_ascii_hexdigit() => {
                    if k == 3 {
                        S::InString
                    } else {
                        S::EscU(k + 1)
                    }
                }
                S::EscU(_) => return Err(error(c, "in \\u hexadecimal character escape")),
                S::Neg => match c {
                    b'0' => S::Zero,
                    b'1'..=b'9' => S::One,
                    _ => return Err(error(c, "in numeric literal")),
                },
                S::One if c.is_ascii_digit() => state,
                S::One | S::Zero => match c {
                    b'.' => S::Dot,
                    b'e' | b'E' => S::E,
                    _ => {
                        state = S::EndValue;
                        continue;
                    }
                },
                S::Dot if c.is_ascii_digit() => S::Dot0,
                S::Dot => return Err(error(c, "after decimal point in numeric literal")),
                S::Dot0 => match c {
                    c if c.is_ascii_digit() => state,
                    b'e' | b'E' => S::E,
                    _ => {
                        state = S::EndValue;
                        continue;
                    }
                },
                S::E if c == b'+' || c == b'-' => S::ESign,
                S::E | S::ESign if c.is_ascii_digit() => S::E0,
                S::E | S::ESign => return Err(error(c, "in exponent of numeric literal")),
                S::E0 if c.is_ascii_digit() => state,
                S::E0 => {
                    state = S::EndValue;
                    continue;
                }
                S::Lit(word, k) if c == word[k] => {
                    if k + 1 == word.len() {
                        S::EndValue
                    } else {
                        S::Lit(word, k + 1)
                    }
                }
                S::Lit(word, k) => {
                    let context =
                        format!("in literal {} (expecting {})", String::from_utf8_lossy(word), quote_char(word[k]));
                    return Err(error(c, &context));
                }
            };
            state = next;
            break;
        }
        if at_end && state != S::EndTop {
            return Err("unexpected end of JSON input".to_string());
        }
    }
    Ok(())
}

/// Go's quoteChar: a byte as its scanner names it in an error (`'x'`, `'\''`, `'"'`, or
/// strconv.Quote's escape of the byte taken as a Latin-1 character).
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => r"'\''".to_string(),
        b'"' => r#"'"'"#.to_string(),
        b'\\' => r"'\\'".to_string(),
        0x20..=0x7e => format!("'{}'", c as char),
        0xa1..=0xff if c != 0xad => format!("'{}'", c as char),
        0x07 => r"'\a'".to_string(),
        0x08 => r"'\b'".to_string(),
        0x0c => r"'\f'".to_string(),
        b'\n' => r"'\n'".to_string(),
        b'\r' => r"'\r'".to_string(),
        b'\t' => r"'\t'".to_string(),
        0x0b => r"'\v'".to_string(),
        c if c < 0x20 || c == 0x7f => format!(r"'\x{c:02x}'"),
        c => format!(r"'\u{c:04x}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn b64(raw: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    #[test]
    fn tokens_are_kubes_bytes_and_read_back() {
        let t = encode_after(7, "ns/b");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&t).unwrap();
        // kube's: its struct's field order, the start after the last key (a NUL), unpadded
        assert_eq!(String::from_utf8(raw).unwrap(), r#"{"v":"meta.k8s.io/v1","rv":7,"start":"ns/b\u0000"}"#);
        assert_eq!(t, "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6Nywic3RhcnQiOiJucy9iXHUwMDAwIn0");
        assert_eq!(decode(&t).unwrap(), (Some(7), "ns/b\0".to_string()));
        assert_eq!(decode(&encode_latest("b\0")).unwrap(), (None, "b\0".to_string()));
        // any negative revision is the latest, as kube reads it
        assert_eq!(decode(&b64(r#"{"v":"meta.k8s.io/v1","rv":-5,"start":"x"}"#)).unwrap(), (None, "x".into()));
        assert_eq!(decode(&b64(r#"{"v":"meta.k8s.io/v1","rv":7,"start":"/ns/b"}"#)).unwrap().1, "ns/b");
        assert_eq!(decode(&b64(r#"{"v":"meta.k8s.io/v1","rv":7,"start":"/"}"#)).unwrap().1, "");
        // Go's json: keys fold, the last repeated key wins, unknown keys and nulls are nothing
        let loose = r#" {"V":"meta.k8s.io/v1","RV":3,"ſtart":"a","start":"b","x":[1,{"y":null}],"v":null} "#;
        assert_eq!(decode(&b64(loose)).unwrap(), (Some(3), "b".into()));
        assert_eq!(
            crate::api::go_json(&"a<b>&\u{2028}\"\\\n\u{1}".into()),
            r#""a\u003cb\u003e\u0026\u2028\"\\\n\u0001""#
        );
    }

    #[test]
    fn malformed_tokens_are_refused_in_gos_words() {
        let e = |token: &str| decode(token).unwrap_err();
        let raw = |json: &str| decode(&b64(json)).unwrap_err();
        const NV: &str = "continue key is not valid";
        // base64: the offset of the first byte Go cannot decode (a lone last character included)
        assert_eq!(e("!!"), format!("{NV}: illegal base64 data at input byte 0"));
        assert_eq!(e("abc$"), format!("{NV}: illegal base64 data at input byte 3"));
        assert_eq!(e("abcde"), format!("{NV}: illegal base64 data at input byte 4"));
        assert_eq!(e("abcdefghi"), format!("{NV}: illegal base64 data at input byte 8"));
        // padding is no part of RawURLEncoding; standard base64's + and / neither
        assert_eq!(e(&format!("{}=", b64(r#"{"v":"x"}"#))), format!("{NV}: illegal base64 data at input byte 12"));
        assert_eq!(e("ab+c"), format!("{NV}: illegal base64 data at input byte 2"));
        // line breaks are skipped, as Go's decoder does
        assert_eq!(go_raw_url_base64(b"YW\nJj\r"), Ok(b"abc".to_vec()));
        // encoding/json's syntax errors
        assert_eq!(e("abc"), format!("{NV}: invalid character 'i' looking for beginning of value"));
        assert_eq!(raw(""), format!("{NV}: unexpected end of JSON input"));
        assert_eq!(raw(r#"{"v":"meta.k8s.io/v1""#), format!("{NV}: unexpected end of JSON input"));
        assert_eq!(raw(r#"{"v" "x"}"#), format!("{NV}: invalid character '\"' after object key"));
        assert_eq!(raw(r#"{"v":"x" "rv":1}"#), format!("{NV}: invalid character '\"' after object key:value pair"));
        assert_eq!(raw(r#"{v:1}"#), format!("{NV}: invalid character 'v' looking for beginning of object key string"));
        assert_eq!(raw(r#"[1 2]"#), format!("{NV}: invalid character '2' after array element"));
        assert_eq!(raw(r#"{} x"#), format!("{NV}: invalid character 'x' after top-level value"));
        assert_eq!(raw(r#"{"rv":01}"#), format!("{NV}: invalid character '1' after object key:value pair"));
        assert_eq!(raw(r#"{"rv":1.}"#), format!("{NV}: invalid character '}}' after decimal point in numeric literal"));
        assert_eq!(raw(r#"{"rv":1e}"#), format!("{NV}: invalid character '}}' in exponent of numeric literal"));
        assert_eq!(raw(r#"{"rv":-x}"#), format!("{NV}: invalid character 'x' in numeric literal"));
        assert_eq!(raw(r#"{"rv":tru}"#), format!("{NV}: invalid character '}}' in literal true (expecting 'e')"));
        assert_eq!(raw("{\"v\":\"a\u{1}\"}"), format!("{NV}: invalid character '\\x01' in string literal"));
        assert_eq!(raw(r#"{"v":"\q"}"#), format!("{NV}: invalid character 'q' in string escape code"));
        assert_eq!(
            raw(r#"{"v":"\u12g4"}"#),
            format!("{NV}: invalid character 'g' in \\u hexadecimal character escape")
        );
        let deep = format!("{}{}", "[".repeat(10_001), "]".repeat(10_001));
        assert_eq!(raw(&deep), format!("{NV}: invalid character '[' exceeded max depth"));
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xb7u8, 0x80, 0xad, 0xa0]);
        assert_eq!(e(&bytes), format!("{NV}: invalid character '·' looking for beginning of value"));
        assert_eq!(quote_char(0x80), r"'\u0080'");
        assert_eq!(quote_char(0xa0), r"'\u00a0'");
        // encoding/json's type errors: the first, in document order
        assert_eq!(
            raw(r#""x""#),
            format!("{NV}: json: cannot unmarshal string into Go value of type storage.continueToken")
        );
        assert_eq!(
            raw("[]"),
            format!("{NV}: json: cannot unmarshal array into Go value of type storage.continueToken")
        );
        assert_eq!(
            raw(r#"{"v":"meta.k8s.io/v1","rv":"7","start":1}"#),
            format!("{NV}: json: cannot unmarshal string into Go struct field continueToken.rv of type int64")
        );
        assert_eq!(
            raw(r#"{"v":"meta.k8s.io/v1","rv":7.5,"start":"x"}"#),
            format!("{NV}: json: cannot unmarshal number 7.5 into Go struct field continueToken.rv of type int64")
        );
        assert_eq!(
            raw(r#"{"v":{},"rv":1,"start":"x"}"#),
            format!("{NV}: json: cannot unmarshal object into Go struct field continueToken.v of type string")
        );
        // DecodeContinue's own checks
        assert_eq!(raw("null"), format!("{NV}: server does not recognize this encoded version "));
        assert_eq!(
            raw(r#"{"v":"v2","rv":1,"start":"x"}"#),
            format!("{NV}: server does not recognize this encoded version v2")
        );
        assert_eq!(
            raw(r#"{"v":"meta.k8s.io/v1","start":"x"}"#),
            format!("{NV}: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
        );
        assert_eq!(
            raw(r#"{"v":"meta.k8s.io/v1","rv":1}"#),
            format!("{NV}: encoded start key empty (version meta.k8s.io/v1)")
        );
        for unclean in ["ns/", "ns//b", "ns/./b", "//ns/b", "ns/b/..", "../x"] {
            let token = format!(r#"{{"v":"meta.k8s.io/v1","rv":7,"start":"{unclean}"}}"#);
            assert_eq!(raw(&token), format!("{NV}: {unclean}"), "{unclean}");
        }
    }
}
