//! The two selector grammars of apimachinery, as Kubernetes 1.31 (the version frontdoor follows)
//! parses them, one parser each, shared by RequestInfo and the store:
//!
//! - label selectors, `labels.Parse`: a small lexer and a recursive-descent parser over its
//!   tokens, then `NewRequirement`'s checks of the key and values. Kube reads `x in(a)`,
//!   `a in ()` (the set {""}), `x>1` and `a b=c` by their tokens, not by where a substring
//!   falls, so the parser here is kube's, token for token, and so are its error texts;
//! - field selectors, `fields.ParseSelector`: terms split at commas a backslash does not escape,
//!   sorted, each split at its first operator (nothing trimmed) and its value unescaped.
//!
//! kube-apiserver answers a list or watch whose selector does not parse with a 400 whose message
//! is the parser's error as it stands (`unable to parse requirement: ...`, `invalid selector:
//! '<selector>'; can't understand '<term>'`). RequestInfo asks only whether a label selector
//! parses (kube drops the whole decoded ListOptions when not) and which name a field selector
//! pins; the store matches objects with the requirements and terms.

use crate::api::field::quote;
use crate::store::validation::{label_value, qualified_name};
use std::collections::BTreeSet;

/// `fields.ParseSelector(s)` then `RequiresExactMatch(field)`: the value of the first
/// `field=v` / `field==v` term after kube's sort of the terms, `Ok(None)` when there is none,
/// `Err` (kube's text) when the selector does not parse.
pub fn field_exact_match(selector: &str, field: &str) -> Result<Option<String>, String> {
    Ok(parse_fields(selector)?.into_iter().find(|t| t.equal && t.field == field).map(|t| t.value))
}

/// One term of a field selector: `field=value` (or `==`), or `field!=value` when `equal` is
/// false; the value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: String,
    pub equal: bool,
    pub value: String,
}

/// `fields.ParseSelector`: the terms in kube's order (its sort of the terms as written), or
/// kube's error text. Empty terms (`a=b,`, `,,`) are skipped; nothing is trimmed, so
/// `metadata.name = a` is the field `metadata.name ` with the value ` a`.
pub fn parse_fields(selector: &str) -> Result<Vec<FieldTerm>, String> {
    let mut parts = split_terms(selector);
    parts.sort_unstable();
    let mut terms = Vec::with_capacity(parts.len());
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        let Some((lhs, op, rhs)) = split_term(part) else {
            return Err(format!("invalid selector: '{selector}'; can't understand '{part}'"));
        };
        terms.push(FieldTerm { field: lhs.to_string(), equal: op != "!=", value: unescape_value(rhs)? });
    }
    Ok(terms)
}

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
/// `==` before `=`. The field cannot be escaped: `a\=b=c` is the field `a\`.
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

/// `fields.UnescapeValue`: `\\`, `\,` and `\=` are the only escapes, and a bare `=` is an error
/// (a bare `,` never reaches a value: it splits the terms). Go prints the bare rune with `%v`,
/// which is its number (`=` is 61).
fn unescape_value(s: &str) -> Result<String, String> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => return Err(format!("invalid field selector: invalid escape sequence: \\{c}")),
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(format!("invalid field selector: unescaped character in value: {}", c as u32)),
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

/// `selection.Operator`, as a label requirement uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One requirement of a label selector (`labels.Requirement`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    /// Sorted and without duplicates (the parser's `sets.String`); `in ()` is `[""]`.
    pub values: Vec<String>,
}

impl Requirement {
    /// `Requirement.Matches`, given the value of the label `key` (`None` when it is absent): a
    /// missing label matches `!=`, `notin` and `!key` only; `>`/`<` compare the label's value
    /// as an integer and a value that is not one matches neither.
    pub fn matches(&self, label: Option<&str>) -> bool {
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => label.is_some_and(has),
            Operator::NotIn | Operator::NotEquals => !label.is_some_and(has),
            Operator::Exists => label.is_some(),
            Operator::DoesNotExist => label.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(have), [want]) = (label.and_then(go_parse_int), self.values.as_slice()) else {
                    return false;
                };
                match go_parse_int(want) {
                    Some(want) if self.operator == Operator::GreaterThan => have > want,
                    Some(want) => have < want,
                    None => false,
                }
            }
        }
    }
}

/// `labels.Parse`: the requirements, sorted by key, or kube's error text.
pub fn parse_labels(selector: &str) -> Result<Vec<Requirement>, String> {
    let mut requirements = Parser { tokens: lex(selector), pos: 0 }.parse()?;
    requirements.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(requirements)
}

/// Whether `labels.Parse` accepts the selector (grammar, keys, values, integer `<`/`>`).
pub fn label_selector_is_valid(selector: &str) -> bool {
    parse_labels(selector).is_ok()
}

/// A token of the label selector lexer (`labels.Token`; kube's `ErrorToken` cannot occur: a
/// single special byte is always a token).
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
    Ident(&'a str),
}

impl<'a> Tok<'a> {
    /// The literal kube's errors quote (`''` for the end of the string).
    fn literal(self) -> &'a str {
        match self {
            Tok::End => "",
            Tok::ClosedPar => ")",
            Tok::Comma => ",",
            Tok::DoesNotExist => "!",
            Tok::DoubleEquals => "==",
            Tok::Equals => "=",
            Tok::GreaterThan => ">",
            Tok::In => "in",
            Tok::LessThan => "<",
            Tok::NotEquals => "!=",
            Tok::NotIn => "notin",
            Tok::OpenPar => "(",
            Tok::Ident(s) => s,
        }
    }
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

/// kube's `string2token`: the operators and keywords.
fn symbol(s: &str) -> Option<Tok<'static>> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "in" => Tok::In,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

/// kube's `Lexer`, all tokens up to and including `End`: bytes, whitespace-separated, a run of
/// special bytes read as its longest operator prefix (`!!a` is `!`, `!`, `a`; `a==b` is `==`),
/// anything else up to whitespace or a special byte one identifier (or keyword: `in`, `notin`).
/// Like Go's lexer (whose `read` gives 0 at the end), a NUL byte reads as the end of input at
/// the start of a token, and ends (and is swallowed by) a token in progress. Tokens end only at
/// ASCII bytes, so every identifier is a `str` slice.
fn lex(s: &str) -> Vec<Tok<'_>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        while pos < b.len() && is_whitespace(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() || b[pos] == 0 {
            out.push(Tok::End);
            return out;
        }
        let start = pos;
        if is_special(b[pos]) {
            let mut last = None;
            while pos < b.len() && is_special(b[pos]) {
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
            if b.get(pos) == Some(&0) {
                pos += 1;
            }
            out.push(tok);
        } else {
            while pos < b.len() && b[pos] != 0 && !is_special(b[pos]) && !is_whitespace(b[pos]) {
                pos += 1;
            }
            let word = &s[start..pos];
            if b.get(pos) == Some(&0) {
                pos += 1;
            }
            out.push(symbol(word).unwrap_or(Tok::Ident(word)));
        }
    }
}

/// kube's `Parser` over the lexed tokens. Where kube reads in its `Values` context, `in` and
/// `notin` are plain identifiers (`in in (in)` is valid); only the operator position
/// (`KeyAndOperator`) reads them as keywords. The comments name kube's functions.
struct Parser<'a> {
    tokens: Vec<Tok<'a>>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn as_value(t: Tok<'a>) -> Tok<'a> {
        match t {
            Tok::In | Tok::NotIn => Tok::Ident(t.literal()),
            t => t,
        }
    }

    /// `lookahead(Values)`.
    fn peek(&self) -> Tok<'a> {
        Self::as_value(self.tokens[self.pos])
    }

    /// `consume(KeyAndOperator)`; past the end it stays at `End`.
    fn next_raw(&mut self) -> Tok<'a> {
        let t = self.tokens[self.pos];
        self.pos = (self.pos + 1).min(self.tokens.len() - 1);
        t
    }

    /// `consume(Values)`.
    fn next(&mut self) -> Tok<'a> {
        Self::as_value(self.next_raw())
    }

    /// `parse`: requirements separated by commas up to the end.
    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            match self.peek() {
                Tok::Ident(_) | Tok::DoesNotExist => {
                    let r = self.requirement().map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    match self.next() {
                        Tok::End => return Ok(requirements),
                        Tok::Comma => match self.peek() {
                            Tok::Ident(_) | Tok::DoesNotExist => {}
                            t => return Err(format!("found '{}', expected: identifier after ','", t.literal())),
                        },
                        t => return Err(format!("found '{}', expected: ',' or 'end of string'", t.literal())),
                    }
                }
                Tok::End => return Ok(requirements),
                t => return Err(format!("found '{}', expected: !, identifier, or 'end of string'", t.literal())),
            }
        }
    }

    /// `parseRequirement`.
    fn requirement(&mut self) -> Result<Requirement, String> {
        let (key, unary) = self.key_and_inferred_operator()?;
        let (operator, values) = match unary {
            Some(op) => (op, Vec::new()),
            None => {
                let op = self.operator()?;
                let values = match op {
                    Operator::In | Operator::NotIn => self.values()?,
                    _ => self.exact_value()?,
                };
                (op, values)
            }
        };
        new_requirement(key, operator, values)
    }

    /// `parseKeyAndInferOperator`: `!key`, or a key alone (`Exists`), or a key an operator
    /// follows (`None`). What follows `!key` is left to the caller, which wants a comma or the
    /// end (`!a=b` fails there).
    fn key_and_inferred_operator(&mut self) -> Result<(&'a str, Option<Operator>), String> {
        let mut t = self.next();
        let negated = t == Tok::DoesNotExist;
        if negated {
            t = self.next();
        }
        let Tok::Ident(key) = t else {
            return Err(format!("found '{}', expected: identifier", t.literal()));
        };
        let errs = qualified_name(key);
        if !errs.is_empty() {
            // `field.Invalid` at the parser's field path, which `labels.Parse` leaves nil
            return Err(format!("<nil>: Invalid value: {}: {}", quote(key), errs.join("; ")));
        }
        Ok(match (negated, self.peek()) {
            (true, _) => (key, Some(Operator::DoesNotExist)),
            (false, Tok::End | Tok::Comma) => (key, Some(Operator::Exists)),
            _ => (key, None),
        })
    }

    /// `parseOperator`.
    fn operator(&mut self) -> Result<Operator, String> {
        Ok(match self.next_raw() {
            Tok::In => Operator::In,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::GreaterThan => Operator::GreaterThan,
            Tok::LessThan => Operator::LessThan,
            Tok::NotIn => Operator::NotIn,
            Tok::NotEquals => Operator::NotEquals,
            t => return Err(format!("found '{}', expected: in, notin, =, ==, !=, gt, lt", t.literal())),
        })
    }

    /// `parseValues`: `( ... )`; `()` is the set {""}. (Its missing comma after the quote is
    /// kube's.)
    fn values(&mut self) -> Result<Vec<String>, String> {
        let t = self.next();
        if t != Tok::OpenPar {
            return Err(format!("found '{}' expected: '('", t.literal()));
        }
        match self.peek() {
            first @ (Tok::Ident(_) | Tok::Comma) => {
                let set = self.identifiers_list()?;
                // the list only ends before `)`, so this holds; kube quotes the first token
                if self.next() != Tok::ClosedPar {
                    return Err(format!("found '{}', expected: ')'", first.literal()));
                }
                Ok(set.into_iter().collect())
            }
            Tok::ClosedPar => {
                self.next();
                Ok(vec![String::new()])
            }
            t => Err(format!("found '{}', expected: ',', ')' or identifier", t.literal())),
        }
    }

    /// `parseIdentifiersList`: comma-separated, possibly empty, values up to (not including)
    /// `)`. As in 1.31, `,,` consumes its second comma (`(a,,)` is an error there; 1.32 took
    /// that consume out).
    fn identifiers_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut set = BTreeSet::new();
        loop {
            match self.next() {
                Tok::Ident(v) => {
                    set.insert(v.to_string());
                    match self.peek() {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(set),
                        t => return Err(format!("found '{}', expected: ',' or ')'", t.literal())),
                    }
                }
                Tok::Comma => {
                    if set.is_empty() {
                        set.insert(String::new());
                    }
                    match self.peek() {
                        Tok::ClosedPar => {
                            set.insert(String::new());
                            return Ok(set);
                        }
                        Tok::Comma => {
                            self.next();
                            set.insert(String::new());
                        }
                        _ => {}
                    }
                }
                t => return Err(format!("found '{}', expected: ',', or identifier", t.literal())),
            }
        }
    }

    /// `parseExactValue`: one identifier, or the empty value before `,` or the end.
    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        if matches!(self.peek(), Tok::End | Tok::Comma) {
            return Ok(vec![String::new()]);
        }
        match self.next() {
            Tok::Ident(v) => Ok(vec![v.to_string()]),
            t => Err(format!("found '{}', expected: identifier", t.literal())),
        }
    }
}

/// `NewRequirement`'s checks of what the parser read: `>`/`<` want an integer, every value must
/// be a valid label value; kube's `field.ErrorList` aggregated as `ToAggregate` words it (one
/// error alone, several as `[a, b]`). The key was checked as it was read (NewRequirement checks
/// it again at `key`, which cannot fail then), and the parser gives every operator the number of
/// values it needs.
fn new_requirement(key: &str, operator: Operator, values: Vec<String>) -> Result<Requirement, String> {
    let mut errs = Vec::new();
    if matches!(operator, Operator::GreaterThan | Operator::LessThan) {
        for (i, v) in values.iter().enumerate() {
            if go_parse_int(v).is_none() {
                errs.push(format!(
                    "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                    quote(v)
                ));
            }
        }
    }
    for (i, v) in values.iter().enumerate() {
        let bad = label_value(v);
        if !bad.is_empty() {
            errs.push(format!("values[{i}][{key}]: Invalid value: {}: {}", quote(v), bad.join("; ")));
        }
    }
    let mut seen = BTreeSet::new();
    errs.retain(|e| seen.insert(e.clone()));
    match errs.len() {
        0 => Ok(Requirement { key: key.to_string(), operator, values }),
        1 => Err(errs.remove(0)),
        _ => Err(format!("[{}]", errs.join(", "))),
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)`.
fn go_parse_int(s: &str) -> Option<i64> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn matches(selector: &str, labels: &[(&str, &str)]) -> bool {
        let labels: HashMap<&str, &str> = labels.iter().copied().collect();
        let reqs = parse_labels(selector).unwrap_or_else(|e| panic!("{selector:?}: {e}"));
        reqs.iter().all(|r| r.matches(labels.get(r.key.as_str()).copied()))
    }

    fn req(key: &str, operator: Operator, values: &[&str]) -> Requirement {
        Requirement { key: key.into(), operator, values: values.iter().map(|v| v.to_string()).collect() }
    }

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
        assert!(name(r"metadata.name=a\x").is_err());
        assert!(name(r"metadata.name=a\").is_err());
        // the first operator splits; a bare = in the value is an error
        assert!(name("metadata.name=a=b").is_err());
        assert!(name("a=b!=c").is_err());
        assert!(name("metadata.name=a,foo").is_err());
    }

    /// kube's fields TestSplitTerms, TestSplitTerm, TestEscapeValue (unescaping), TestSelectorParse
    /// and TestSelectorMatches, and the errors kube-apiserver answers with.
    #[test]
    fn field_selectors_as_kube() {
        for (s, want) in [
            ("a", vec!["a"]),
            ("a=avalue,b=bvalue", vec!["a=avalue", "b=bvalue"]),
            ("", vec![]),
            ("a=a,", vec!["a=a", ""]),
            (",a=a", vec!["", "a=a"]),
            (r"k=\,,k2=v2", vec![r"k=\,", "k2=v2"]),
            (r"k=\\,k2=v2", vec![r"k=\\", "k2=v2"]),
            (r"k=\\\,,k2=v2", vec![r"k=\\\,", "k2=v2"]),
            (r"k=\a\b\", vec![r"k=\a\b\"]),
            (r"k=\", vec![r"k=\"]),
            ("함=수,목=록", vec!["함=수", "목=록"]),
        ] {
            assert_eq!(split_terms(s), want, "{s}");
        }
        for (t, want) in [
            ("a=value", Some(("a", "=", "value"))),
            ("b==value", Some(("b", "==", "value"))),
            ("c!=value", Some(("c", "!=", "value"))),
            ("", None),
            ("a", None),
            (r"k=\=", Some(("k", "=", r"\="))),
            (r"k=\\\a\b\=\,\", Some(("k", "=", r"\\\a\b\=\,\"))),
            ("함=수", Some(("함", "=", "수"))),
        ] {
            assert_eq!(split_term(t), want, "{t}");
        }
        for (escaped, raw) in
            [("", ""), ("a", "a"), (r"\=", "="), (r"\,", ","), (r"\\", r"\"), (r"\\\=\\\,\\", r"\=\,\")]
        {
            assert_eq!(unescape_value(escaped).as_deref(), Ok(raw));
        }
        for bad in [r"\", r"\\\", r"\a"] {
            assert!(unescape_value(bad)
                .unwrap_err()
                .starts_with("invalid field selector: invalid escape sequence: \\"));
        }
        for good in ["x=a,y=b,z=c", "", "x!=a,y=b", r"x=a||y\=b", r"x=a\=\=b"] {
            assert!(parse_fields(good).is_ok(), "{good}");
        }
        for bad in ["x=a||y=b", "x==a==b", "x=a,b", "x in (a)", "x in (a,b,c)", "x"] {
            assert!(parse_fields(bad).is_err(), "{bad}");
        }
        let term = |f: &str, equal, v: &str| FieldTerm { field: f.into(), equal, value: v.into() };
        assert_eq!(
            parse_fields(r"foo=bar,baz!=blah,complex=\=value\\\,\\").unwrap(),
            vec![term("baz", false, "blah"), term("complex", true, r"=value\,\"), term("foo", true, "bar")]
        );
        assert_eq!(parse_fields("notin=in").unwrap(), vec![term("notin", true, "in")]);
        // nothing is trimmed
        assert_eq!(parse_fields("metadata.name = a").unwrap(), vec![term("metadata.name ", true, " a")]);
        for (s, err) in [
            ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
            ("x=a,b", "invalid selector: 'x=a,b'; can't understand 'b'"),
            ("metadata.name=x=y", "invalid field selector: unescaped character in value: 61"),
            (r"metadata.name=a\b", r"invalid field selector: invalid escape sequence: \b"),
            (r"metadata.name=a\", r"invalid field selector: invalid escape sequence: \"),
            // the sorted terms are read in order: `a` sorts before `b=c=d`
            ("b=c=d,a", "invalid selector: 'b=c=d,a'; can't understand 'a'"),
        ] {
            assert_eq!(parse_fields(s).unwrap_err(), err, "{s}");
        }
    }

    /// kube's labels TestLexer and TestLexerSequence.
    #[test]
    fn label_lexer_as_kube() {
        for (s, t) in [
            ("", Tok::End),
            (",", Tok::Comma),
            ("notin", Tok::NotIn),
            ("in", Tok::In),
            ("=", Tok::Equals),
            ("==", Tok::DoubleEquals),
            (">", Tok::GreaterThan),
            ("<", Tok::LessThan),
            ("!", Tok::DoesNotExist),
            ("!=", Tok::NotEquals),
            ("(", Tok::OpenPar),
            (")", Tok::ClosedPar),
            ("~", Tok::Ident("~")),
            ("||", Tok::Ident("||")),
        ] {
            assert_eq!(lex(s)[0], t, "{s:?}");
            assert_eq!(t.literal(), s);
        }
        use Tok::*;
        for (s, want) in [
            ("key in ( value )", vec![Ident("key"), In, OpenPar, Ident("value"), ClosedPar]),
            (
                "key notin ( value1, value2 )",
                vec![Ident("key"), NotIn, OpenPar, Ident("value1"), Comma, Ident("value2"), ClosedPar],
            ),
            ("!key", vec![DoesNotExist, Ident("key")]),
            ("x in (),y", vec![Ident("x"), In, OpenPar, ClosedPar, Comma, Ident("y")]),
            ("== != (), = notin", vec![DoubleEquals, NotEquals, OpenPar, ClosedPar, Comma, Equals, NotIn]),
            ("key>2", vec![Ident("key"), GreaterThan, Ident("2")]),
            ("key<1", vec![Ident("key"), LessThan, Ident("1")]),
            ("x in(a)", vec![Ident("x"), In, OpenPar, Ident("a"), ClosedPar]),
            ("!!a", vec![DoesNotExist, DoesNotExist, Ident("a")]),
        ] {
            let mut got = lex(s);
            assert_eq!(got.pop(), Some(End));
            assert_eq!(got, want, "{s:?}");
        }
    }

    /// kube's labels TestSelectorParse, TestSetSelectorParser, TestSelectorMatches and
    /// TestRequirementSelectorMatching (through the parser).
    #[test]
    fn label_selectors_parse_and_match_as_kube() {
        for good in ["x=a,y=b,z=c", "", "x!=a,y=b", "x=", "x= ", "x=,z= ", "x= ,z= ", "!x", "x>1", "x>1,z<5"] {
            assert!(parse_labels(good).is_ok(), "{good:?}");
        }
        for bad in ["x=a||y=b", "x==a==b", "!x=a", "x<a"] {
            assert!(parse_labels(bad).is_err(), "{bad:?}");
        }
        use Operator::*;
        for (s, want) in [
            ("", vec![]),
            ("\rx", vec![req("x", Exists, &[])]),
            (
                "this-is-a-dns.domain.com/key-with-dash",
                vec![req("this-is-a-dns.domain.com/key-with-dash", Exists, &[])],
            ),
            (
                "0.1.2.domain/99 notin (10.10.100.1, tick.tack.clock)",
                vec![req("0.1.2.domain/99", NotIn, &["10.10.100.1", "tick.tack.clock"])],
            ),
            ("foo  in\t (abc)", vec![req("foo", In, &["abc"])]),
            ("x notin\n (abc)", vec![req("x", NotIn, &["abc"])]),
            ("x in (abc,)", vec![req("x", In, &["", "abc"])]),
            ("x in ()", vec![req("x", In, &[""])]),
            (
                "x notin (abc,,def),bar,z in (),w",
                vec![
                    req("bar", Exists, &[]),
                    req("w", Exists, &[]),
                    req("x", NotIn, &["", "abc", "def"]),
                    req("z", In, &[""]),
                ],
            ),
            ("x>1", vec![req("x", GreaterThan, &["1"])]),
            ("x<7", vec![req("x", LessThan, &["7"])]),
            (
                "x=a,y!=b,z in (h,i,j)",
                vec![req("x", Equals, &["a"]), req("y", NotEquals, &["b"]), req("z", In, &["h", "i", "j"])],
            ),
            ("x notin ( )", vec![req("x", NotIn, &[""])]),
            ("x notin (, a)", vec![req("x", NotIn, &["", "a"])]),
            ("a ", vec![req("a", Exists, &[])]),
            ("a in (x,y,notin, z,in)", vec![req("a", In, &["in", "notin", "x", "y", "z"])]),
            ("x in(a)", vec![req("x", In, &["a"])]),
            ("x==a", vec![req("x", DoubleEquals, &["a"])]),
        ] {
            assert_eq!(parse_labels(s), Ok(want), "{s:?}");
        }
        for bad in [
            "x=a||y=b",
            "x,,y",
            ",x,y",
            "x nott in (y)",
            "a in (xyz),",
            "a in (xyz)b notin ()",
            "a in (xyz abc)",
            "a notin(",
            "a (",
            "(",
        ] {
            assert!(parse_labels(bad).is_err(), "{bad:?}");
        }

        for (s, labels, want) in [
            ("", &[("x", "y")][..], true),
            ("x=y", &[("x", "y")], true),
            ("x=y,z=w", &[("x", "y"), ("z", "w")], true),
            ("x!=y,z!=w", &[("x", "z"), ("z", "a")], true),
            ("notin=in", &[("notin", "in")], true),
            ("x", &[("x", "z")], true),
            ("!x", &[("y", "z")], true),
            ("x>1", &[("x", "2")], true),
            ("x<1", &[("x", "0")], true),
            ("x=z", &[], false),
            ("x=y", &[("x", "z")], false),
            ("x!=y,z!=w", &[("x", "z"), ("z", "w")], false),
            ("x", &[("y", "z")], false),
            ("!x", &[("x", "z")], false),
            ("x>1", &[("x", "0")], false),
            ("x<1", &[("x", "2")], false),
            ("x in (foo),y notin (alpha)", &[("x", "foo"), ("y", "baz")], true),
            ("x in (foo),y in (alpha)", &[("x", "foo"), ("y", "baz")], false),
            ("x notin (),y", &[("y", "")], true),
            ("!x,y", &[("y", "")], true),
            ("x notin (),!y", &[("y", "")], false),
            ("x in ()", &[("y", "baz")], false),
            // `in ()` is the set {""}: the label present and empty
            ("x in ()", &[("x", "")], true),
            ("x in ()", &[("x", "a")], false),
            ("x notin ()", &[("x", "a")], true),
            ("x notin ()", &[("x", "")], false),
            ("z>1", &[("z", "2")], true),
            // a label value that is not an integer matches neither `>` nor `<`
            ("z>1", &[("z", "v2")], false),
            ("z<1", &[("z", "v2")], false),
            ("z>1", &[], false),
        ] {
            assert_eq!(matches(s, labels), want, "{s:?} on {labels:?}");
        }
    }

    /// The errors `labels.Parse` returns, which kube-apiserver answers a list or watch with.
    #[test]
    fn label_selector_errors_as_kube() {
        let name_part = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
        let value = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
        let subdomain = "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
        let ops = "expected: in, notin, =, ==, !=, gt, lt";
        for (s, want) in [
            ("app in x", "unable to parse requirement: found 'x' expected: '('".to_string()),
            ("a b=c", format!("unable to parse requirement: found 'b', {ops}")),
            ("app=x=y", "found '=', expected: ',' or 'end of string'".into()),
            ("!x=a", "found '=', expected: ',' or 'end of string'".into()),
            ("-a=1", format!("unable to parse requirement: <nil>: Invalid value: \"-a\": {name_part}")),
            ("Bad_Prefix/app=1", format!("unable to parse requirement: <nil>: Invalid value: \"Bad_Prefix/app\": {subdomain}")),
            (
                "x/y/z=1",
                "unable to parse requirement: <nil>: Invalid value: \"x/y/z\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into(),
            ),
            ("/a", "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be non-empty".into()),
            ("a/", format!("unable to parse requirement: <nil>: Invalid value: \"a/\": name part must be non-empty; {name_part}")),
            ("a=-b", format!("unable to parse requirement: values[0][a]: Invalid value: \"-b\": {value}")),
            (
                "a in (-y,b,-x)",
                format!("unable to parse requirement: [values[0][a]: Invalid value: \"-x\": {value}, values[1][a]: Invalid value: \"-y\": {value}]"),
            ),
            ("x<a", "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer".into()),
            (
                "x>-1",
                format!("unable to parse requirement: values[0][x]: Invalid value: \"-1\": {value}"),
            ),
            ("x>", "unable to parse requirement: values[0]: Invalid value: \"\": for 'Gt', 'Lt' operators, the value must be an integer".into()),
            ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'".into()),
            ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'".into()),
            ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier".into()),
            ("a in (,=)", "unable to parse requirement: found '=', expected: ',', or identifier".into()),
            // 1.31 consumes the second of two commas
            ("a in (,,)", "unable to parse requirement: found ')', expected: ',', or identifier".into()),
            ("a=(b)", "unable to parse requirement: found '(', expected: identifier".into()),
            ("!", "unable to parse requirement: found '', expected: identifier".into()),
            ("!!a", "unable to parse requirement: found '!', expected: identifier".into()),
            ("a!", format!("unable to parse requirement: found '!', {ops}")),
            ("a (", format!("unable to parse requirement: found '(', {ops}")),
            ("a,", "found '', expected: identifier after ','".into()),
            ("a,=b", "found '=', expected: identifier after ','".into()),
            ("=", "found '=', expected: !, identifier, or 'end of string'".into()),
            (",a", "found ',', expected: !, identifier, or 'end of string'".into()),
            ("a in (xyz)b notin ()", "found 'b', expected: ',' or 'end of string'".into()),
            // `a||y` is one identifier, and no label value
            ("x=a||y=b", format!("unable to parse requirement: values[0][x]: Invalid value: \"a||y\": {value}")),
        ] {
            assert_eq!(parse_labels(s).unwrap_err(), want, "{s:?}");
        }
        let long = "a".repeat(64);
        assert_eq!(
            parse_labels(&long).unwrap_err(),
            format!("unable to parse requirement: <nil>: Invalid value: \"{long}\": name part must be no more than 63 characters")
        );
        assert_eq!(
            parse_labels(&format!("a={long}")).unwrap_err(),
            format!("unable to parse requirement: values[0][a]: Invalid value: \"{long}\": must be no more than 63 characters")
        );
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
