//! The query string as kube-apiserver reads it: Go's `url.ParseQuery`, and the parts of
//! `metav1.ListOptions` decoding (`ParameterCodec.DecodeParameters`) that decide a list's
//! verb and the name its field selector asks for.

use super::selector;

/// Decoded query parameters in order, with Go's `url.ParseQuery` rules: pairs split on `&`,
/// a pair holding `;` or a bad `%` escape is dropped, `+` is a space.
///
/// Parsed once per request, before authentication, into the request context: every stage and
/// handler reads this value and never the raw query, so what is authorized is what is served.
/// A scalar option is its key's first value (`url.Values.Get`, as kube's parameter codec
/// converts `[]string` to a scalar); a list option (`dryRun`, `exclude`) is all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: &str) -> Self {
        let mut pairs = Vec::new();
        for piece in raw.split('&') {
            if piece.is_empty() || piece.contains(';') {
                continue;
            }
            let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
            if let (Some(k), Some(v)) = (query_unescape(k), query_unescape(v)) {
                pairs.push((k, v));
            }
        }
        Query { pairs }
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The first value of `key` (`url.Values.Get`, but None when absent).
    pub fn first(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order (`url.Values[key]`).
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A boolean option as kube's parameter codec reads it (see `go_query_bool`); false when absent.
    pub fn flag(&self, key: &str) -> bool {
        self.first(key).is_some_and(go_query_bool)
    }

    /// The query as Go's `url.Values.Encode` writes it (keys sorted, each key's values in
    /// order, `QueryEscape`d): what kube-aggregator sends a backend, so a backend never reads
    /// pairs the chain did not (`watch=true;x=1`, which a `;`-splitting reader takes as a watch).
    pub fn encode(&self) -> String {
        let mut sorted: Vec<&(String, String)> = self.pairs.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0)); // stable: a key's values keep their order
        let mut out = String::new();
        for (k, v) in sorted {
            if !out.is_empty() {
                out.push('&');
            }
            query_escape(&mut out, k);
            out.push('=');
            query_escape(&mut out, v);
        }
        out
    }
}

/// Go's `url.QueryEscape`, appended to `out`: unreserved bytes as they are, a space as `+`,
/// every other byte `%XX`.
fn query_escape(out: &mut String, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
}

/// Go's `url.QueryUnescape`: None on a `%` not followed by two hex digits.
fn query_unescape(s: &str) -> Option<String> {
    if !s.contains(['%', '+']) {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let hi = b.get(i + 1).copied().and_then(hex)?;
                let lo = b.get(i + 2).copied().and_then(hex)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// What RequestInfo takes from the decoded ListOptions.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    pub watch: bool,
    /// The value `metadata.name` must equal, from the field selector.
    pub name: Option<String>,
}

impl ListOptions {
    /// Decodes as kube does. When any parameter fails to decode kube discards the whole
    /// result (so no name) but still honours `watch`.
    pub fn decode(q: &Query) -> Self {
        match Self::try_decode(q) {
            Some(opts) => opts,
            None => ListOptions {
                watch: q.first("watch").is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "false" | "0")),
                name: None,
            },
        }
    }

    fn try_decode(q: &Query) -> Option<Self> {
        if q.is_empty() {
            return Some(ListOptions::default());
        }
        // integers: strconv.ParseInt of the first value
        for key in ["timeoutSeconds", "limit"] {
            if let Some(v) = q.first(key) {
                v.parse::<i64>().ok()?;
            }
        }
        if let Some(v) = q.first("labelSelector") {
            if !selector::label_selector_is_valid(v) {
                return None;
            }
        }
        let name = match q.first("fieldSelector") {
            Some(v) => selector::field_exact_match(v, "metadata.name").ok()?,
            None => None,
        };
        // booleans (watch, allowWatchBookmarks, sendInitialEvents) never fail to decode
        Some(ListOptions { watch: q.flag("watch"), name })
    }
}

/// `runtime.Convert_Slice_string_To_bool`: anything but `0` or (case-folded) `false` is true,
/// the empty string included.
pub fn go_query_bool(v: &str) -> bool {
    !(v == "0" || equal_fold_false(v))
}

/// Go's `strings.EqualFold(v, "false")` (simple Unicode folding: `ſ` folds to `s`).
fn equal_fold_false(v: &str) -> bool {
    let mut chars = v.chars();
    for want in ['f', 'a', 'l', 's', 'e'] {
        match chars.next() {
            Some(c) if c.to_ascii_lowercase() == want => {}
            Some('\u{17f}') if want == 's' => {}
            _ => return false,
        }
    }
    chars.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(q: &str) -> ListOptions {
        ListOptions::decode(&Query::parse(q))
    }

    #[test]
    fn go_parse_query() {
        let q = Query::parse("a=1&a=2&b&c=x+y%21&bad=%zz&semi=1;x=2&&d=");
        assert_eq!(q.first("a"), Some("1"));
        assert_eq!(q.first("b"), Some(""));
        assert_eq!(q.first("c"), Some("x y!"));
        assert_eq!(q.first("bad"), None);
        assert_eq!(q.first("semi"), None);
        assert_eq!(q.first("d"), Some(""));
    }

    /// Go's `url.Values.Encode` of what `url.ParseQuery` read.
    #[test]
    fn go_encode() {
        for (raw, encoded) in [
            ("", ""),
            ("limit=500", "limit=500"),
            ("watch=true;x=1", ""),
            ("watch=true;x=1&limit=5", "limit=5"),
            ("b=2&a=1&b=1", "a=1&b=2&b=1"),
            ("labelSelector=app=x,tier!=db", "labelSelector=app%3Dx%2Ctier%21%3Ddb"),
            ("fieldSelector=metadata.name%3Da+b&w", "fieldSelector=metadata.name%3Da+b&w="),
            ("k=%C3%A9~-_.*", "k=%C3%A9~-_.%2A"),
            ("bad=%zz&ok=1", "ok=1"),
        ] {
            assert_eq!(Query::parse(raw).encode(), encoded, "{raw:?}");
        }
    }

    #[test]
    fn watch_values() {
        for (q, w) in [
            ("watch=true", true),
            ("watch=1", true),
            ("watch=garbage", true),
            ("watch=", true),
            ("watch", true),
            ("watch=t", true),
            ("watch=false", false),
            ("watch=FALSE", false),
            ("watch=fal\u{17f}e", false),
            ("watch=0", false),
            ("watch=0&watch=1", false),
            ("", false),
        ] {
            assert_eq!(opts(q).watch, w, "{q:?}");
        }
    }

    #[test]
    fn decode_failure_drops_the_name_but_keeps_watch() {
        let name = Some("a".to_string());
        assert_eq!(opts("fieldSelector=metadata.name%3Da").name, name);
        assert_eq!(opts("fieldSelector=metadata.name%3Da&limit=5&timeoutSeconds=-1").name, name);
        assert_eq!(opts("fieldSelector=metadata.name%3Da&limit=x"), ListOptions { watch: false, name: None });
        assert_eq!(opts("fieldSelector=metadata.name%3Da&limit="), ListOptions { watch: false, name: None });
        assert_eq!(opts("fieldSelector=metadata.name%3Da&limit=5&limit=x").name, name, "first value only");
        assert_eq!(
            opts("fieldSelector=metadata.name%3Da&timeoutSeconds=1.5&watch=1"),
            ListOptions { watch: true, name: None }
        );
        assert_eq!(opts("fieldSelector=metadata.name%3Da&labelSelector=a%3Db").name, name);
        assert_eq!(
            opts("fieldSelector=metadata.name%3Da&labelSelector=%3D%3D%3D&watch=yes"),
            ListOptions { watch: true, name: None }
        );
        assert_eq!(opts("fieldSelector=metadata.name%3Da,foo&watch=false"), ListOptions { watch: false, name: None });
        // booleans never fail
        assert_eq!(opts("fieldSelector=metadata.name%3Da&allowWatchBookmarks=maybe&sendInitialEvents=x").name, name);
    }
}
