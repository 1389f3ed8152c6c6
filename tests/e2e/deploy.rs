//! Every file in deploy/ parses, and every `frontdoor serve` flag it names exists (asked of
//! the real binary's `--help`). APIService objects in it pass frontdoor's own validation.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn serve_flags() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_frontdoor")).args(["serve", "--help"]).output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    let flags: BTreeSet<String> = help
        .lines()
        .filter_map(|l| {
            let t = l.trim_start();
            let t = t.strip_prefix("-h, ").unwrap_or(t);
            let name = t.strip_prefix("--")?;
            Some(name.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).next()?.to_string())
        })
        .collect();
    assert!(flags.contains("secure-port") && flags.contains("apiservices-file"), "{flags:?}");
    flags
}

/// Every text file under `dir` (pictures, such as the dashboard's PNG, name no flags).
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_none_or(|x| x != "png") {
            out.push(p);
        }
    }
}

/// The `--flag` names in a flag list, skipping values.
fn flag_names<'a>(args: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    args.into_iter().filter_map(|a| a.strip_prefix("--")).map(|a| a.split('=').next().unwrap().to_string()).collect()
}

/// Flags on `frontdoor serve` command lines of a text file (shell-style continuations joined).
fn flags_in_text(text: &str) -> Vec<String> {
    let joined = text.replace("\\\n", " ");
    let mut out = Vec::new();
    for line in joined.lines() {
        let Some(pos) = line
            .find("frontdoor serve")
            .map(|p| p + "frontdoor serve".len())
            .or_else(|| line.find("\"serve\"").map(|p| p + 7))
        else {
            continue;
        };
        let rest = &line[pos..];
        let tokens =
            rest.split(|c: char| c.is_whitespace() || c == '"' || c == ',' || c == '[' || c == ']' || c == '`');
        out.extend(flag_names(tokens.filter(|t| t.starts_with("--"))));
    }
    out
}

/// Flags in YAML: container args of frontdoor containers, and `config.yaml` settings files
/// (a mapping of flag names) whether standalone or inside a ConfigMap.
fn flags_in_yaml(doc: &serde_json::Value, file_is_config: bool, out: &mut Vec<String>) {
    if file_is_config {
        if let Some(m) = doc.as_object() {
            out.extend(m.keys().cloned());
        }
        return;
    }
    match doc {
        serde_json::Value::Object(m) => {
            let is_frontdoor =
                ["image", "command"].iter().any(|k| m.get(*k).is_some_and(|v| v.to_string().contains("frontdoor")));
            if is_frontdoor {
                if let Some(args) = m.get("args").and_then(|a| a.as_array()) {
                    out.extend(flag_names(args.iter().filter_map(|a| a.as_str())));
                }
            }
            if m.get("kind").and_then(|k| k.as_str()) == Some("ConfigMap") {
                if let Some(text) = m.get("data").and_then(|d| d.get("config.yaml")).and_then(|c| c.as_str()) {
                    let cfg: serde_json::Value = serde_yaml::from_str(text).expect("config.yaml in ConfigMap parses");
                    flags_in_yaml(&cfg, true, out);
                }
            }
            for v in m.values() {
                flags_in_yaml(v, false, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| flags_in_yaml(v, false, out)),
        _ => {}
    }
}

/// APIService objects, including those embedded as files in ConfigMaps.
fn apiservices(doc: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    if doc.get("kind").and_then(|k| k.as_str()) == Some("APIService") {
        out.push(doc.clone());
    }
    if doc.get("kind").and_then(|k| k.as_str()) == Some("ConfigMap") {
        for (k, v) in doc.get("data").and_then(|d| d.as_object()).into_iter().flatten() {
            if k.ends_with(".yaml") || k.ends_with(".yml") {
                let inner = frontdoor::router::apiservice::documents(v.as_str().unwrap_or(""))
                    .unwrap_or_else(|e| panic!("ConfigMap file {k}: {e}"));
                inner.iter().for_each(|d| apiservices(d, out));
            }
        }
    }
}

/// Checks one file; returns the flags it names that `serve` does not have.
fn check(path: &Path, known: &BTreeSet<String>, apis: &mut Vec<serde_json::Value>) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut flags = flags_in_text(&text);
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml") | Some("yml") | Some("json") => {
            let docs = frontdoor::router::apiservice::documents(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
            assert!(!docs.is_empty(), "{} is empty", path.display());
            let is_config = name == "config.yaml";
            for d in &docs {
                let not_a_manifest =
                    name.starts_with("prometheus") || path.parent().is_some_and(|d| d.ends_with("grafana"));
                if !is_config && !not_a_manifest {
                    assert!(
                        d.get("apiVersion").is_some() && d.get("kind").is_some(),
                        "{}: a manifest without apiVersion/kind: {d}",
                        path.display()
                    );
                }
                flags_in_yaml(d, is_config, &mut flags);
                apiservices(d, apis);
            }
        }
        _ => {}
    }
    flags.into_iter().filter(|f| !known.contains(f)).collect()
}

#[test]
fn deploy_files_parse_and_name_real_flags() {
    let known = serve_flags();
    let mut all = Vec::new();
    files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy"), &mut all);
    assert!(all.len() >= 8, "deploy/ has its files: {all:?}");
    let mut apis = Vec::new();
    let mut bad = Vec::new();
    for f in &all {
        for flag in check(f, &known, &mut apis) {
            bad.push(format!("{}: --{flag}", f.display()));
        }
    }
    assert!(bad.is_empty(), "flags `frontdoor serve` does not have:\n{}", bad.join("\n"));
    assert!(apis.len() >= 4, "APIService examples found: {}", apis.len());
    for a in apis {
        frontdoor::router::apiservice::ApiService::from_value(a.clone()).unwrap_or_else(|e| panic!("{e}: {a}"));
    }
    for kind in ["Deployment", "Service", "ConfigMap", "Secret"] {
        assert!(
            all.iter().any(|f| std::fs::read_to_string(f).unwrap().contains(&format!("kind: {kind}"))),
            "no {kind} manifest"
        );
    }
    assert!(all.iter().any(|f| f.extension().is_some_and(|e| e == "service")), "no systemd unit");
}

#[test]
fn the_checker_catches_unknown_flags() {
    let known = serve_flags();
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("x.service");
    std::fs::write(
        &unit,
        "[Service]\nExecStart=/usr/bin/frontdoor serve \\\n  --secure-port=6443 \\\n  --no-such-flag=1\n",
    )
    .unwrap();
    assert_eq!(check(&unit, &known, &mut Vec::new()), vec!["no-such-flag"]);
    let dep = dir.path().join("d.yaml");
    std::fs::write(&dep, "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - image: frontdoor:1\n        args: [serve, --authorization-modes=RBAC, --secure-port, '6443']\n").unwrap();
    assert_eq!(check(&dep, &known, &mut Vec::new()), vec!["authorization-modes"]);
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, "secure-port: 1\nbogus-setting: 2\n").unwrap();
    assert_eq!(check(&cfg, &known, &mut Vec::new()), vec!["bogus-setting"]);
    let broken = dir.path().join("b.yaml");
    std::fs::write(&broken, "kind: [").unwrap();
    assert!(
        std::panic::catch_unwind(|| check(&broken, &known, &mut Vec::new())).is_err(),
        "a manifest that does not parse fails"
    );
}
