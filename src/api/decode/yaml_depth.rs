//! A linear pre-scan of a YAML document's nesting depth, before libyaml sees it: libyaml's
//! time grows with the square of flow nesting (a 200 KB body nested 100,000 levels took
//! most of a minute), so a document nested past the limit is refused from its bytes alone.
//!
//! The scan follows libyaml's tokenizer where a token may start (flow indicators, block
//! indicators, quoted, plain and block scalars, comments), so brackets in strings and
//! comments do not count; the depth is the flow level plus the number of block indentation
//! levels, as libyaml keeps them. As a backstop against any case where the scan and libyaml
//! might still read a byte differently, the raw excess of opening over closing brackets,
//! wherever they stand, is bounded too (`RAW_LIMIT`): a document nested past that in any
//! reading is refused.

/// The raw bracket excess tolerated, strings and comments included.
const RAW_LIMIT: usize = 1000;

fn blank(c: Option<&u8>) -> bool {
    matches!(c, None | Some(b' ' | b'\t' | b'\r' | b'\n'))
}

fn flow_indicator(c: u8) -> bool {
    matches!(c, b',' | b'[' | b']' | b'{' | b'}')
}

/// Why a document is refused: kube's (go-yaml's) texts.
fn too_deep(limit: usize) -> String {
    format!("yaml: exceeded max depth of {limit}")
}

struct Scan<'a> {
    b: &'a [u8],
    pos: usize,
    line_start: usize,
    flow: usize,
    /// Open flow collections: whether a sequence, and whether an implicit single-pair mapping
    /// (`[k: v]`) is open in its current entry, which nests one level more.
    flows: Vec<(bool, bool)>,
    pairs: usize,
    /// Block collections: their column, and whether a sequence. libyaml's indent stack, plus
    /// the indentless sequences (`key:` then `- item` at the key's column) it leaves out.
    indents: Vec<(usize, bool)>,
    /// Column and line (its start) of the last token in block context that may be a key.
    key_col: usize,
    key_line: usize,
    limit: usize,
    /// Tokens the document may have, and has had: libyaml's time, and serde_yaml's, is per
    /// token.
    token_limit: usize,
    tokens: usize,
}

impl Scan<'_> {
    fn col(&self) -> usize {
        self.pos - self.line_start
    }

    fn at(&self, i: usize) -> Option<&u8> {
        self.b.get(self.pos + i)
    }

    fn newline(&mut self) {
        self.pos += 1;
        self.line_start = self.pos;
    }

    fn check(&self) -> Result<(), String> {
        if self.flow + self.pairs + self.indents.len() > self.limit {
            Err(too_deep(self.limit))
        } else {
            Ok(())
        }
    }

    /// libyaml's roll_indent: a block collection starting at `col`.
    fn roll(&mut self, col: usize, seq: bool) -> Result<(), String> {
        let push = match self.indents.last() {
            _ if self.flow > 0 => false,
            None => true,
            Some(&(top, top_seq)) => top < col || (top == col && seq && !top_seq),
        };
        if push {
            self.indents.push((col, seq));
        }
        self.check()
    }

    /// A key or value indicator in a flow sequence opens a single-pair mapping.
    fn pair(&mut self) {
        if let Some(top) = self.flows.last_mut().filter(|t| t.0 && !t.1) {
            top.1 = true;
            self.pairs += 1;
        }
    }

    fn key(&mut self, col: usize) {
        self.key_col = col;
        self.key_line = self.line_start;
    }

    fn parent_indent(&self) -> isize {
        self.indents.last().map_or(-1, |c| c.0 as isize)
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.at(0) {
            if *c == b'\n' {
                return;
            }
            self.pos += 1;
        }
    }

    /// Whitespace, line breaks and comments up to the next token.
    fn skip_to_token(&mut self) {
        loop {
            match self.at(0) {
                Some(b' ' | b'\t' | b'\r') => self.pos += 1,
                Some(b'\n') => self.newline(),
                Some(b'#') => self.skip_line(),
                _ => return,
            }
        }
    }

    fn document_marker(&self) -> bool {
        self.col() == 0
            && (self.b[self.pos..].starts_with(b"---") || self.b[self.pos..].starts_with(b"..."))
            && blank(self.at(3))
    }

    fn quoted(&mut self, q: u8) -> Result<(), String> {
        self.pos += 1;
        loop {
            match self.at(0) {
                None => return Err("yaml: found unexpected end of stream".into()),
                Some(b'\\') if q == b'"' => self.pos += 2,
                Some(b'\'') if q == b'\'' && self.at(1) == Some(&b'\'') => self.pos += 2,
                Some(c) if *c == q => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(b'\n') => self.newline(),
                Some(_) => self.pos += 1,
            }
        }
    }

    /// A plain scalar: to `: `, ` #`, a flow indicator in flow context, or a line that is
    /// not indented past the enclosing block (libyaml's scan_plain_scalar).
    fn plain(&mut self) {
        let indent = self.parent_indent() + 1;
        loop {
            // one run of non-blank characters
            while let Some(&c) = self.at(0) {
                if blank(Some(&c)) {
                    break;
                }
                let next = self.at(1);
                if c == b':'
                    && (blank(next) || (self.flow > 0 && next.is_some_and(|n| flow_indicator(*n) || *n == b'?')))
                {
                    return;
                }
                if self.flow > 0 && flow_indicator(c) {
                    return;
                }
                self.pos += 1;
            }
            // blanks and line breaks, then decide whether the scalar goes on
            let mut broke = false;
            loop {
                match self.at(0) {
                    Some(b' ' | b'\t' | b'\r') => self.pos += 1,
                    Some(b'\n') => {
                        self.newline();
                        broke = true;
                    }
                    _ => break,
                }
            }
            match self.at(0) {
                None | Some(b'#') => return,
                _ if self.document_marker() => return,
                _ if broke && self.flow == 0 && (self.col() as isize) < indent => return,
                _ => {}
            }
        }
    }

    /// A literal or folded block scalar (`|`, `>`): its header line, then every line indented
    /// at least as far as its content (libyaml's scan_block_scalar).
    fn block_scalar(&mut self) {
        let parent = self.parent_indent();
        self.pos += 1;
        let mut explicit = None;
        while let Some(&c) = self.at(0) {
            match c {
                b'1'..=b'9' => explicit = Some((c - b'0') as isize),
                b'+' | b'-' => {}
                _ => break,
            }
            self.pos += 1;
        }
        self.skip_line();
        let mut indent = explicit.map(|n| if parent >= 0 { parent + n } else { n });
        while self.at(0) == Some(&b'\n') {
            self.newline();
            let mut spaces = 0;
            while self.at(spaces) == Some(&b' ') {
                spaces += 1;
            }
            let rest = self.at(spaces);
            let empty = matches!(rest, None | Some(b'\n' | b'\r'));
            if indent.is_none() && !empty && !matches!(rest, Some(b'\t')) {
                indent = Some((spaces as isize).max(parent + 1).max(1));
            }
            let need = indent.unwrap_or(isize::MAX);
            if !empty && (spaces as isize) < need && indent.is_some() {
                return; // the first line past the scalar: its own tokens follow
            }
            self.skip_line();
        }
    }

    /// An anchor, alias or tag: up to a blank (or a flow indicator in flow context).
    fn property(&mut self) {
        while let Some(&c) = self.at(0) {
            if blank(Some(&c)) || (self.flow > 0 && flow_indicator(c)) {
                return;
            }
            self.pos += 1;
        }
    }

    fn run(&mut self) -> Result<(), String> {
        loop {
            self.skip_to_token();
            let Some(&c) = self.at(0) else { return Ok(()) };
            self.tokens += 1;
            if self.tokens > self.token_limit {
                return Err(too_many_tokens(self.token_limit));
            }
            let col = self.col();
            if self.flow == 0 {
                while self.indents.last().is_some_and(|top| top.0 > col) {
                    self.indents.pop();
                }
                // anything but an entry at a sequence's column ends it
                let entry = c == b'-' && blank(self.at(1));
                if !entry && self.indents.last().is_some_and(|top| top.0 == col && top.1) {
                    self.indents.pop();
                }
            }
            if col == 0 && c == b'%' {
                self.skip_line();
                continue;
            }
            if self.document_marker() {
                self.indents.clear();
                self.pos += 3;
                continue;
            }
            match c {
                b'[' | b'{' => {
                    if self.flow == 0 {
                        self.key(col);
                    }
                    self.flow += 1;
                    self.flows.push((c == b'[', false));
                    self.pos += 1;
                    self.check()?;
                }
                b']' | b'}' => {
                    self.flow = self.flow.saturating_sub(1);
                    if let Some((_, true)) = self.flows.pop() {
                        self.pairs -= 1;
                    }
                    self.pos += 1;
                }
                b',' => {
                    if let Some(top) = self.flows.last_mut().filter(|t| t.1) {
                        top.1 = false;
                        self.pairs -= 1;
                    }
                    self.pos += 1;
                }
                b'-' if blank(self.at(1)) => {
                    self.roll(col, true)?;
                    self.pos += 1;
                }
                b'?' if self.flow > 0 || blank(self.at(1)) => {
                    self.pair();
                    self.roll(col, false)?;
                    self.pos += 1;
                }
                b':' if self.flow > 0 || blank(self.at(1)) => {
                    // a simple key is on the value's line; else the value starts the entry
                    let key = if self.key_line == self.line_start { self.key_col } else { col };
                    self.pair();
                    self.roll(key, false)?;
                    self.pos += 1;
                }
                b'*' | b'&' | b'!' => {
                    if self.flow == 0 && c != b'*' {
                        self.key(col);
                    }
                    self.property();
                }
                b'|' | b'>' if self.flow == 0 => self.block_scalar(),
                b'\'' | b'"' => {
                    if self.flow == 0 {
                        self.key(col);
                    }
                    self.quoted(c)?;
                }
                _ => {
                    if self.flow == 0 {
                        self.key(col);
                    }
                    let before = self.pos;
                    self.plain();
                    if self.pos == before {
                        self.pos += 1; // a lone indicator character: never stall
                    }
                }
            }
        }
    }
}

/// The raw excess of opening over closing brackets anywhere in `b`, at its highest.
fn raw_excess(b: &[u8]) -> usize {
    let (mut cur, mut max) = (0usize, 0usize);
    for c in b {
        match c {
            b'[' | b'{' => {
                cur += 1;
                max = max.max(cur);
            }
            b']' | b'}' => cur = cur.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Why a document with too many tokens is refused (go-yaml has no such bound: ours keeps any
/// body's decoding within a fixed CPU budget).
fn too_many_tokens(limit: usize) -> String {
    format!("yaml: document has more than {limit} tokens; send a larger object as JSON")
}

/// Refuses a YAML document nested deeper than `limit`, or with more than `tokens` tokens, in
/// time linear in its length.
pub fn check(b: &[u8], limit: usize, tokens: usize) -> Result<(), String> {
    if raw_excess(b) > RAW_LIMIT.max(limit) {
        return Err(too_deep(limit));
    }
    let mut s = Scan {
        b,
        pos: 0,
        line_start: 0,
        flow: 0,
        flows: Vec::new(),
        pairs: 0,
        indents: Vec::new(),
        key_col: 0,
        key_line: 0,
        limit,
        token_limit: tokens,
        tokens: 0,
    };
    s.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(doc: &str, limit: usize) -> bool {
        check(doc.as_bytes(), limit, usize::MAX).is_ok()
    }

    #[test]
    fn flow_and_block_nesting_count() {
        assert!(depth_ok("[[[1]]]", 3));
        assert!(!depth_ok("[[[[1]]]]", 3));
        assert!(depth_ok("{a: {b: {c: 1}}}", 3));
        assert!(!depth_ok("{a: {b: {c: {d: 1}}}}", 3));
        assert!(depth_ok("a:\n  b:\n    c: 1\n", 3));
        assert!(!depth_ok("a:\n  b:\n    c:\n      d: 1\n", 3));
        assert!(depth_ok("- - - x\n", 3));
        // indentless sequences count, and end at their key's column
        assert!(!depth_ok("a:\n- b:\n  - c:\n    - d\n", 5));
        assert!(depth_ok("a:\n- b:\n  - c:\n    - d\n", 6));
        assert!(depth_ok("a:\n- 1\nb:\n- 2\nc:\n- 3\n", 2));
        assert!(!depth_ok("- - - - x\n", 3));
        assert!(!depth_ok("a:\n  - b: [[1]]\n", 3), "block and flow add up");
        // siblings do not add up
        assert!(depth_ok("a:\n  b: 1\nc:\n  d: 1\ne:\n  f: [1]\n", 3));
    }

    #[test]
    fn brackets_in_strings_comments_and_block_scalars_do_not_count() {
        let doc = "a: '[[[[ it''s ]'\nb: \"{{{{ \\\" [[[\"\nc: x[[[[y # [[[[[\nd: |\n  [[[[[[\n  {{{{{\ne: >-\n    [[[[[\n# [[[[[[\nf: [\"]]]]\", '[[[[']\n";
        assert!(depth_ok(doc, 2), "{:?}", check(doc.as_bytes(), 2, usize::MAX));
        // after the block scalar, structure counts again
        assert!(!depth_ok("d: |\n  [[[\ne: [[[1]]]\n", 2));
        // a multi-line plain scalar hides nothing: its continuation is not a quote
        assert!(!depth_ok("a: b\n  'c\nd: [[[[1]]]]\n", 3));
    }

    /// Random documents as serde_yaml writes them (block style, indentless sequences, block
    /// scalars, quoting) and as JSON (flow style), with strings full of YAML's indicators:
    /// the scan finds exactly the depth libyaml does.
    #[test]
    fn the_scan_agrees_with_libyaml_on_random_documents() {
        use serde_json::{json, Value};
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        const BITS: [&str; 24] = [
            "[", "]", "{", "}", "'", "\"", "#", ": ", " #", "- ", "\n", "|", ">", "*a", "&b", "!t", "%", "---", "...",
            "x", " ", "\t", "\\", "? ",
        ];
        fn depth(v: &Value) -> usize {
            match v {
                Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
                Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
                _ => 0,
            }
        }
        fn text(next: &mut dyn FnMut(u64) -> u64) -> String {
            (0..next(6)).map(|_| BITS[next(BITS.len() as u64) as usize]).collect()
        }
        fn gen(next: &mut dyn FnMut(u64) -> u64, level: usize) -> Value {
            match if level > 6 { next(3) } else { next(6) } {
                0 => json!(text(next)),
                1 => json!(next(100)),
                2 => Value::Null,
                3 => Value::Array((0..next(4)).map(|_| gen(next, level + 1)).collect()),
                _ => {
                    let mut m = serde_json::Map::new();
                    for i in 0..next(4) {
                        let k = format!("k{i}{}", text(next));
                        m.insert(k, gen(next, level + 1));
                    }
                    Value::Object(m)
                }
            }
        }
        for _ in 0..3000 {
            let v = gen(&mut next, 0);
            let d = depth(&v);
            for doc in [serde_yaml::to_string(&v).unwrap(), v.to_string()] {
                let back: Value = serde_yaml::from_str(&doc).unwrap();
                assert_eq!(back, v, "{doc}");
                assert!(check(doc.as_bytes(), d, usize::MAX).is_ok(), "over-counted (depth {d}):\n{doc}");
                if d > 0 {
                    assert!(check(doc.as_bytes(), d - 1, usize::MAX).is_err(), "under-counted (depth {d}):\n{doc}");
                }
            }
        }
    }

    /// Random strings of YAML's tokens: wherever libyaml accepts one, the scan never finds it
    /// shallower than it is (deeper only where a duplicate key dropped a deeper value).
    #[test]
    fn random_token_soup_is_never_undercounted() {
        use serde_json::Value;
        let mut seed = 0x1234_5678_9abc_def1u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        const F: [&str; 30] = [
            "[",
            "]",
            "{",
            "}",
            ", ",
            ": ",
            "- ",
            "? ",
            "\n",
            "  ",
            "a",
            "'b]'",
            "\"c[\"",
            " #x[\n",
            "|\n  [[\n",
            ">-\n   {{\n",
            "a:\n",
            "- - ",
            "\n  ",
            "\n    ",
            "x y",
            "k: ",
            "it's",
            "a#b",
            "[a, b]",
            "{a: 1}",
            "'",
            "\"",
            "\n- ",
            ":",
        ];
        fn depth(v: &Value) -> usize {
            match v {
                Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
                Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
                _ => 0,
            }
        }
        let mut valid = 0;
        for _ in 0..150_000 {
            let doc: String = (0..next(24)).map(|_| F[next(F.len() as u64) as usize]).collect();
            let Ok(v) = serde_yaml::from_str::<Value>(&doc) else { continue };
            valid += 1;
            let d = depth(&v);
            if d > 0 && check(doc.as_bytes(), d - 1, usize::MAX).is_ok() {
                panic!("under-counted (depth {d}):\n{doc}\n{v}");
            }
        }
        assert!(valid > 10_000, "the soup is mostly YAML: {valid}");
    }

    #[test]
    fn deep_documents_fail_fast_and_in_kubes_words() {
        for doc in [
            "[".repeat(100_000) + &"]".repeat(100_000),
            "{a: ".repeat(100_000) + &"}".repeat(100_000),
            "- ".repeat(100_000) + "x\n",
            (0..300).map(|i| format!("{}k:\n", " ".repeat(i))).collect::<String>(),
            // hidden in what a naive scan would take for a string: the raw excess still counts
            format!("a: b\n  'c\nd: {}\ne: x'\n", "[".repeat(5000) + &"]".repeat(5000)),
        ] {
            let started = std::time::Instant::now();
            assert_eq!(check(doc.as_bytes(), 100, usize::MAX), Err("yaml: exceeded max depth of 100".into()));
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
        }
        assert!(check(b"a: 'open", 100, usize::MAX).is_err());
    }
}
