//! The two selector grammars RequestInfo must agree with: field selectors
//! (apimachinery `fields.ParseSelector`, for `RequiresExactMatch("metadata.name")`) and label
//! selectors (`labels.Parse`, whose failure makes kube drop the whole decoded ListOptions).

/// `fields.ParseSelector(s)` then `RequiresExactMatch(field)`: the value of the first
/// `field=v` / `field==v` term after kube's sort of the terms, `Ok(None)` when there is none,
/// `Err` when the selector does not parse.
pub fn field_exact_match(selector: &str, field: &str) -> Result<Option<String>, SelectorError> {
    let mut terms = split_terms(selector);
    terms.sort_unstable();
    let mut found = None;
    for term in terms.into_iter().filter(|t| !t.is_empty()) {
        let (lhs, op, rhs) = split_term(term).ok_or(SelectorError)?;
        let value = unescape_value(rhs)?;
        if found.is_none() && op != "!=" && lhs == field {
            found = Some(value);
        }
    }
    Ok(found)
}

/// A selector that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectorError;

/// Splits on commas not escaped by a backslash (the backslashes stay in the terms).
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::with_capacity(1);
    let (mut start, mut in_slash) = (0, false);
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// The first operator occurrence splits the term; at each position `!=` is tried before
/// `==` before `=`.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], op, rhs));
            }
        }
    }
    None
}

/// `fields.UnescapeValue`: `\\`, `\,` and `\=` are the only escapes, and a bare `,` or `=`
/// is an error.
fn unescape_value(s: &str) -> Result<String, SelectorError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => return Err(SelectorError),
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(SelectorError),
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError);
    }
    Ok(out)
}

/// Whether `labels.Parse` accepts the selector (grammar, keys, values, integer `<`/`>`).
pub fn label_selector_is_valid(selector: &str) -> bool {
    let tokens = lex(selector.as_bytes());
    Parser { tokens, pos: 0 }.parse().is_some()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
    Ident(&'a [u8]),
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn symbol(s: &[u8]) -> Option<Tok<'static>> {
    Some(match s {
        b")" => Tok::ClosedPar,
        b"," => Tok::Comma,
        b"!" => Tok::DoesNotExist,
        b"==" => Tok::DoubleEquals,
        b"=" => Tok::Equals,
        b">" => Tok::GreaterThan,
        b"in" => Tok::In,
        b"<" => Tok::LessThan,
        b"!=" => Tok::NotEquals,
        b"notin" => Tok::NotIn,
        b"(" => Tok::OpenPar,
        _ => return None,
    })
}

/// The label selector lexer: bytes, whitespace-separated, special symbols scanned greedily
/// for the longest operator. Like Go's lexer, a NUL byte reads as the end of input at the
/// start of a token, and ends (and is swallowed by) a token in progress.
fn lex(s: &[u8]) -> Vec<Tok<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        while pos < s.len() && is_whitespace(s[pos]) {
            pos += 1;
        }
        if pos >= s.len() || s[pos] == 0 {
            out.push(Tok::End);
            return out;
        }
        let start = pos;
        if is_special(s[pos]) {
            let mut last = None;
            while pos < s.len() && is_special(s[pos]) {
                match symbol(&s[start..=pos]) {
                    Some(t) => last = Some((t, pos + 1)),
                    None if last.is_some() => break,
                    None => {}
                }
                pos += 1;
            }
            // a single special byte is always a token, so `last` is set
            let (tok, end) = last.expect("special symbol");
            pos = end;
            if s.get(pos) == Some(&0) {
                pos += 1;
            }
            out.push(tok);
        } else {
            while pos < s.len() && s[pos] != 0 && !is_special(s[pos]) && !is_whitespace(s[pos]) {
                pos += 1;
            }
            let word = &s[start..pos];
            if s.get(pos) == Some(&0) {
                pos += 1;
            }
            out.push(symbol(word).unwrap_or(Tok::Ident(word)));
        }
    }
}

struct Parser<'a> {
    tokens: Vec<Tok<'a>>,
    pos: usize,
}

impl<'a> Parser<'a> {
    /// In a value position `in` and `notin` are plain identifiers.
    fn as_value(t: Tok<'a>) -> Tok<'a> {
        match t {
            Tok::In => Tok::Ident(b"in"),
            Tok::NotIn => Tok::Ident(b"notin"),
            t => t,
        }
    }

    fn peek(&self) -> Tok<'a> {
        Self::as_value(self.tokens[self.pos])
    }

    fn next_raw(&mut self) -> Tok<'a> {
        let t = self.tokens[self.pos];
        self.pos = (self.pos + 1).min(self.tokens.len() - 1);
        t
    }

    fn next(&mut self) -> Tok<'a> {
        Self::as_value(self.next_raw())
    }

    fn parse(&mut self) -> Option<()> {
        loop {
            match self.peek() {
                Tok::Ident(_) | Tok::DoesNotExist => {
                    self.requirement()?;
                    match self.next() {
                        Tok::End => return Some(()),
                        Tok::Comma if matches!(self.peek(), Tok::Ident(_) | Tok::DoesNotExist) => {}
                        _ => return None,
                    }
                }
                Tok::End => return Some(()),
                _ => return None,
            }
        }
    }

    fn requirement(&mut self) -> Option<()> {
        let mut t = self.next();
        let negated = t == Tok::DoesNotExist;
        if negated {
            t = self.next();
        }
        let Tok::Ident(key) = t else { return None };
        if !is_qualified_name(key) {
            return None;
        }
        if negated || matches!(self.peek(), Tok::End | Tok::Comma) {
            // `!key` must stand alone: what follows is checked by the caller
            return Some(());
        }
        match self.next_raw() {
            Tok::In | Tok::NotIn => self.value_set(),
            op @ (Tok::Equals | Tok::DoubleEquals | Tok::NotEquals | Tok::GreaterThan | Tok::LessThan) => {
                let value = self.exact_value()?;
                if matches!(op, Tok::GreaterThan | Tok::LessThan) && go_parse_int(value).is_none() {
                    return None;
                }
                is_label_value(value).then_some(())
            }
            _ => None,
        }
    }

    fn exact_value(&mut self) -> Option<&'a [u8]> {
        match self.peek() {
            Tok::End | Tok::Comma => Some(b""),
            _ => match self.next() {
                Tok::Ident(v) => Some(v),
                _ => None,
            },
        }
    }

    fn value_set(&mut self) -> Option<()> {
        if self.next() != Tok::OpenPar {
            return None;
        }
        match self.peek() {
            Tok::ClosedPar => {
                self.next();
                return Some(());
            }
            Tok::Ident(_) | Tok::Comma => {}
            _ => return None,
        }
        loop {
            match self.next() {
                Tok::Ident(v) => {
                    if !is_label_value(v) {
                        return None;
                    }
                    match self.peek() {
                        Tok::Comma => continue,
                        Tok::ClosedPar => break,
                        _ => return None,
                    }
                }
                Tok::Comma => match self.peek() {
                    Tok::ClosedPar => break,
                    Tok::Comma => {
                        self.next();
                    }
                    _ => {}
                },
                _ => return None,
            }
        }
        (self.next() == Tok::ClosedPar).then_some(())
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)`.
fn go_parse_int(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_qualified_name_part(s: &[u8]) -> bool {
    match (s.first(), s.last()) {
        (Some(&f), Some(&l)) => {
            is_alnum(f) && is_alnum(l) && s.iter().all(|&b| is_alnum(b) || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// `validation.IsQualifiedName`: `[prefix/]name`, prefix a DNS-1123 subdomain, name at most
/// 63 characters.
pub fn is_qualified_name(s: &[u8]) -> bool {
    let mut parts = s.split(|&b| b == b'/');
    let (prefix, name) = match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, None) => (None, name),
        (Some(prefix), Some(name), None) => (Some(prefix), name),
        _ => return false,
    };
    if let Some(p) = prefix {
        if !is_dns1123_subdomain(p) {
            return false;
        }
    }
    name.len() <= 63 && is_qualified_name_part(name)
}

/// `validation.IsDNS1123Subdomain`.
fn is_dns1123_subdomain(s: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split(|&b| b == b'.').all(|label| match (label.first(), label.last()) {
            (Some(&f), Some(&l)) => {
                let ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
                ok(f) && ok(l) && label.iter().all(|&b| ok(b) || b == b'-')
            }
            _ => false,
        })
}

/// `validation.IsValidLabelValue`: empty, or a qualified-name part of at most 63 characters.
fn is_label_value(s: &[u8]) -> bool {
    s.is_empty() || (s.len() <= 63 && is_qualified_name_part(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_selector_exact_match() {
        let name = |s| field_exact_match(s, "metadata.name");
        assert_eq!(name("metadata.name=a"), Ok(Some("a".into())));
        assert_eq!(name("metadata.name==a"), Ok(Some("a".into())));
        assert_eq!(name("metadata.name!=a"), Ok(None));
        assert_eq!(name("metadata.namespace=x,metadata.name=a"), Ok(Some("a".into())));
        // terms are sorted before the first match wins
        assert_eq!(name("metadata.name=b,metadata.name=a"), Ok(Some("a".into())));
        // no trimming: the field must match exactly
        assert_eq!(name(" metadata.name=a"), Ok(None));
        assert_eq!(name(""), Ok(None));
        assert_eq!(name(",,"), Ok(None));
        assert_eq!(name("metadata.name="), Ok(Some(String::new())));
        // escapes
        assert_eq!(name(r"metadata.name=a\,b\=c\\d"), Ok(Some(r"a,b=c\d".into())));
        assert_eq!(name(r"metadata.name=a\x"), Err(SelectorError));
        assert_eq!(name(r"metadata.name=a\"), Err(SelectorError));
        // the first operator splits; a bare = in the value is an error
        assert_eq!(name("metadata.name=a=b"), Err(SelectorError));
        assert_eq!(name("a=b!=c"), Err(SelectorError));
        assert_eq!(name("metadata.name=a,foo"), Err(SelectorError));
    }

    #[test]
    fn label_selector_grammar() {
        for ok in [
            "",
            "a",
            "!a",
            "a=b",
            "a==b",
            "a!=b",
            "a=",
            "a in (b,c)",
            "a notin ()",
            "x in (foo,,baz),y,z notin ()",
            "a in (,b)",
            "a in (b,)",
            "a>5",
            "a<5",
            "example.com/key=value",
            " a = b , c ",
            "in in (in)",
            "\0a b",
            "a=b\0",
            "a\0,b",
        ] {
            assert!(label_selector_is_valid(ok), "{ok:?} should parse");
        }
        for bad in [
            "=",
            "a,",
            ",a",
            "a b",
            "!a=b",
            "a in b",
            "a in (b",
            "a>b",
            "a>",
            "a<-5",
            "a=b=c",
            "-a=b",
            "a=-b",
            "a=b/c",
            "Example.com/a=b",
            "/a",
            "a/b/c",
            "a in (b c)",
            "a===b",
            "a=(b)",
            "a\0b",
        ] {
            assert!(!label_selector_is_valid(bad), "{bad:?} should not parse");
        }
        let long = "a".repeat(64);
        assert!(!label_selector_is_valid(&long));
        assert!(!label_selector_is_valid(&format!("a={long}")));
        assert!(label_selector_is_valid(&"a".repeat(63)));
    }
}
