//! Static tokens (`--token-auth-file`): kube's CSV, `token,user,uid[,"group1,group2"]`,
//! read with Go's encoding/csv rules (quoted fields, no comment lines, blank lines skipped,
//! at least three columns per record).

use super::cache::TokenResult;
use super::user::UserInfo;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub struct TokenFile {
    tokens: HashMap<String, Arc<UserInfo>>,
}

/// Never prints the tokens.
impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenFile({} tokens)", self.tokens.len())
    }
}

impl TokenFile {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = crate::reload::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, name: &str) -> anyhow::Result<Self> {
        let mut tokens = HashMap::new();
        for (line, record) in parse_csv(text).map_err(|e| anyhow::anyhow!("{name}: {e}"))? {
            if record.len() < 3 {
                anyhow::bail!(
                    "token file '{name}' must have at least 3 columns (token, user name, user uid), found {} (line {line})",
                    record.len()
                );
            }
            if record[0].is_empty() {
                tracing::warn!(file = name, line, "empty token in token file");
                continue;
            }
            let mut u = UserInfo { username: record[1].clone(), uid: record[2].clone(), ..Default::default() };
            if record.len() >= 4 {
                u.groups = record[3].split(',').map(str::to_string).collect();
            }
            if tokens.insert(record[0].clone(), Arc::new(u)).is_some() {
                tracing::warn!(file = name, line, "duplicate token in token file");
            }
        }
        Ok(TokenFile { tokens })
    }

    pub fn authenticate(&self, token: &str) -> TokenResult {
        Ok(self.tokens.get(token).cloned())
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// Go encoding/csv (comma separator, no comment character, strict quotes): records with the
/// line they start on. Empty lines are skipped.
pub fn parse_csv(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1usize;
    while chars.peek().is_some() {
        // skip empty lines
        if matches!(chars.peek(), Some('\n')) {
            chars.next();
            line += 1;
            continue;
        }
        if matches!(chars.peek(), Some('\r')) {
            let mut la = chars.clone();
            la.next();
            if matches!(la.peek(), Some('\n') | None) {
                chars.next();
                continue;
            }
        }
        let start = line;
        let mut record = Vec::new();
        loop {
            let mut field = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next() {
                        None => {
                            return Err(format!("record on line {start}: extraneous or missing \" in quoted-field"))
                        }
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                        }
                    }
                }
                match chars.peek() {
                    None | Some(',') | Some('\n') => {}
                    Some('\r') => {}
                    Some(_) => return Err(format!("record on line {start}: extraneous or missing \" in quoted-field")),
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' || c == '\n' {
                        break;
                    }
                    if c == '"' {
                        return Err(format!("record on line {line}: bare \" in non-quoted-field"));
                    }
                    field.push(c);
                    chars.next();
                }
                if field.ends_with('\r') && matches!(chars.peek(), Some('\n') | None) {
                    field.pop();
                }
            }
            if chars.peek() == Some(&'\r') {
                chars.next();
            }
            record.push(field);
            match chars.next() {
                Some(',') => continue,
                Some('\n') => {
                    line += 1;
                    break;
                }
                _ => break,
            }
        }
        out.push((start, record));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_csv() {
        let f = TokenFile::parse("abc,alice,1,\"dev,ops\"\n\nxyz,bob,2\n", "t").unwrap();
        let a = f.authenticate("abc").unwrap().unwrap();
        assert_eq!((a.username.as_str(), a.uid.as_str()), ("alice", "1"));
        assert_eq!(a.groups, vec!["dev", "ops"]);
        assert!(f.authenticate("xyz").unwrap().unwrap().groups.is_empty());
        assert!(f.authenticate("nope").unwrap().is_none());
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn comments_are_records_as_in_go() {
        // Go's csv.Reader has no comment character by default: this is a 1-column record.
        let err = TokenFile::parse("# tokens\nabc,alice,1\n", "t").unwrap_err().to_string();
        assert!(err.contains("must have at least 3 columns"), "{err}");
    }

    #[test]
    fn malformed() {
        assert!(TokenFile::parse("a,b\n", "t").is_err());
        assert!(TokenFile::parse("\"abc,alice,1\n", "t").is_err());
        assert!(TokenFile::parse("a\"b,alice,1\n", "t").is_err());
        let f = TokenFile::parse(",alice,1\r\nt,bob,2\r\n", "t").unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f.authenticate("t").unwrap().unwrap().uid, "2");
        assert!(TokenFile::parse("", "t").unwrap().is_empty());
    }
}
