//! Reading manifest files as kubectl does: files and directories of multi-document YAML or
//! JSON (JSON is YAML), `kind: List` flattened on request. Shared by every loader of
//! object manifests (RBAC objects, APIServices), so they agree on which files count and on
//! how errors name the document and line.

use crate::reload::Walked;
use anyhow::{anyhow, bail, Context};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One non-empty document of a text.
#[derive(Debug)]
pub struct Document {
    /// 1-based, counting empty documents between `---` separators too.
    pub number: usize,
    pub value: Value,
}

/// Every non-empty document of `text`; an error names the document (serde_yaml adds the line
/// and column).
pub fn parse(text: &str) -> anyhow::Result<Vec<Document>> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let number = i + 1;
        let v = serde_yaml::Value::deserialize(doc).map_err(|e| anyhow!("document {number}: {e}"))?;
        if v.is_null() {
            continue;
        }
        let value = serde_json::to_value(&v).map_err(|e| anyhow!("document {number}: {e}"))?;
        out.push(Document { number, value });
    }
    Ok(out)
}

/// Whether an object is a `kind: List` (or `FooList`) with `items`.
pub fn is_list(v: &Value) -> bool {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
    kind.ends_with("List") && v.get("items").is_some_and(Value::is_array)
}

/// A List's items, or the object itself.
pub fn flatten(v: Value) -> Vec<Value> {
    if !is_list(&v) {
        return vec![v];
    }
    match v {
        Value::Object(mut m) => match m.remove("items") {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The manifest files under `paths`: a file as named (it must exist); a directory's
/// .yaml/.yml/.json files, recursively, hidden ones skipped, in name order.
pub fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries = Vec::new();
            collect_dir(p, &mut entries, &mut Default::default())?;
            entries.sort();
            out.extend(entries);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            bail!("{}: no such file or directory", p.display());
        }
    }
    Ok(out)
}

/// A directory's manifests, below it too. A directory is walked once however it is reached
/// ([`Walked`]): a symlink to one is followed, as a ConfigMap volume's nested paths are such
/// links (`sub -> ..data/sub`), but two links to `.` no longer list every file 2^n times. A
/// symlink to a file is read; a special file with a manifest's name is listed, for its read to
/// fail naming it.
fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>, walked: &mut Walked) -> anyhow::Result<()> {
    let meta = std::fs::metadata(dir).with_context(|| format!("{}", dir.display()))?;
    if !walked.first(&meta) {
        return Ok(());
    }
    for e in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let path = e?.path();
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            collect_dir(&path, out, walked)?;
        } else if matches!(path.extension().and_then(|x| x.to_str()), Some("yaml" | "yml" | "json")) {
            out.push(path);
        }
    }
    Ok(())
}

/// Why files are refused that define `what` (`Kind namespace/name`) a second time, in `again`
/// after `first` (the same file: twice in it): as in the API, a name is one object per kind.
pub fn defined_again(what: &str, first: &Path, again: &Path) -> anyhow::Error {
    match first == again {
        true => anyhow!("{what} is defined twice in {}", again.display()),
        false => anyhow!("{what} is defined in both {} and {}", first.display(), again.display()),
    }
}

/// Reads a policy file's text ([`crate::reload::read`]: a regular file of bounded size), its
/// YAML nesting checked from the bytes first: libyaml's cost grows faster than the nesting
/// (a 100 KB file of `[` took 24 s to refuse), so a deep file is refused at once.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    let text = crate::reload::read_to_string(path)?;
    crate::api::decode::check_yaml_depth(text.as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(text)
}

/// Reads and parses one file; errors name it.
pub fn read(path: &Path) -> anyhow::Result<Vec<Document>> {
    let text = read_text(path).with_context(|| format!("{}", path.display()))?;
    parse(&text).with_context(|| format!("{}", path.display()))
}

/// Reads a one-document YAML or JSON config file as `T`; errors read `{what} {path}: {cause}`
/// (the cause carries the line and column).
pub fn read_config<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    let text = read_text(path).map_err(|e| anyhow!("{what} {}: {e}", path.display()))?;
    serde_yaml::from_str(&text).map_err(|e| anyhow!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_lists_and_errors() {
        let docs = parse("---\na: 1\n---\n---\n{\"kind\": \"List\", \"items\": [{\"b\": 2}, {\"c\": 3}]}\n").unwrap();
        assert_eq!(docs.iter().map(|d| d.number).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(flatten(docs[1].value.clone()).len(), 2);
        assert_eq!(flatten(docs[0].value.clone()), vec![serde_json::json!({"a": 1})]);
        let e = parse("a: 1\n---\nb: [\n").unwrap_err().to_string();
        assert!(e.starts_with("document 2: ") && e.contains("line"), "{e}");
    }

    #[test]
    fn files_of_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        for f in ["b.yaml", "a.json", ".hidden.yaml", "notes.txt", "sub/c.yml"] {
            std::fs::write(dir.path().join(f), "a: 1\n").unwrap();
        }
        let names: Vec<_> = files(&[dir.path().to_path_buf()])
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.json", "b.yaml", "sub/c.yml"]);
        assert!(files(&[dir.path().join("missing")]).is_err());
        let e = read(&dir.path().join("notes.txt")).map(|d| d.len()).unwrap();
        assert_eq!(e, 1);
        std::fs::write(dir.path().join("list.yaml"), "- a\n- [b]\n").unwrap();
        let e = read_config::<Vec<String>>(&dir.path().join("list.yaml"), "--some-file").unwrap_err().to_string();
        assert!(e.starts_with("--some-file ") && e.contains("list.yaml: ") && e.contains("line 2"), "{e}");
        assert_eq!(read_config::<Vec<String>>(&dir.path().join("b.yaml"), "x").ok(), None);
    }

    /// A directory is walked once however it is reached (two links to `.` listed every file
    /// 2^n times), a linked one too (a ConfigMap volume's nested paths); links to files are
    /// read; a FIFO is listed and its read fails at once, naming it; a deep file is refused
    /// from its bytes.
    #[test]
    fn links_special_files_and_deep_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.yaml"), "a: 1\n").unwrap();
        std::fs::create_dir(d.join("..data")).unwrap();
        std::fs::write(d.join("..data/b.yaml"), "b: 1\n").unwrap();
        std::os::unix::fs::symlink("..data/b.yaml", d.join("b.yaml")).unwrap();
        std::fs::create_dir(d.join("..data/sub")).unwrap();
        std::fs::write(d.join("..data/sub/c.yaml"), "c: 1\n").unwrap();
        std::os::unix::fs::symlink("..data/sub", d.join("sub")).unwrap();
        std::os::unix::fs::symlink(".", d.join("self")).unwrap();
        std::os::unix::fs::symlink(".", d.join("self2")).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(d.join("pipe.yaml")).status().unwrap().success());
        let names: Vec<_> = files(&[d.to_path_buf()])
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(d).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.yaml", "b.yaml", "pipe.yaml", "sub/c.yaml"]);
        assert_eq!(read(&d.join("b.yaml")).unwrap()[0].value, serde_json::json!({"b": 1}));
        let e = format!("{:#}", read(&d.join("pipe.yaml")).unwrap_err());
        assert!(e.ends_with("pipe.yaml: not a regular file"), "{e}");
        std::fs::write(d.join("deep.yaml"), format!("a: {}", "[".repeat(100_000))).unwrap();
        let e = format!("{:#}", read(&d.join("deep.yaml")).unwrap_err());
        assert!(e.ends_with("deep.yaml: yaml: exceeded max depth of 100"), "{e}");
        let big = std::fs::File::create(d.join("big.yaml")).unwrap();
        big.set_len(crate::reload::MAX_FILE + 1).unwrap();
        let e = format!("{:#}", read(&d.join("big.yaml")).unwrap_err());
        assert!(e.ends_with("big.yaml: larger than 32 MiB"), "{e}");
    }
}
