//! The kubeconfig files that name a webhook (authentication token webhook, authorization
//! webhook, audit webhook), read as kube's clientcmd reads them for a webhook: the current
//! context (else the first) picks the cluster and user; file paths are relative to the
//! kubeconfig's directory.

use crate::http_client::{self, Client};
use anyhow::{anyhow, bail, Context};
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a webhook client needs from a kubeconfig.
#[derive(Debug, Default, Clone)]
pub struct Kubeconfig {
    /// The cluster's server URL (http or https).
    pub server: String,
    /// certificate-authority(-data), PEM.
    pub ca: Option<Vec<u8>>,
    pub insecure_skip_tls_verify: bool,
    /// client-certificate(-data) and client-key(-data), PEM, when both are set.
    pub client_cert: Option<Vec<u8>>,
    pub client_key: Option<Vec<u8>>,
    /// token, or the content of tokenFile.
    pub token: Option<String>,
    /// tokenFile's path (relative paths resolved), re-read by endpoints as client-go does.
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    clusters: Vec<Named<Cluster>>,
    #[serde(default)]
    users: Vec<Named<User>>,
    #[serde(default)]
    contexts: Vec<Named<Ctx>>,
    #[serde(default)]
    current_context: String,
}

#[derive(Debug, Deserialize)]
struct Named<T> {
    #[serde(default)]
    name: String,
    #[serde(alias = "cluster", alias = "user", alias = "context")]
    value: Option<T>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Cluster {
    #[serde(default)]
    server: String,
    certificate_authority: Option<PathBuf>,
    certificate_authority_data: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct User {
    client_certificate: Option<PathBuf>,
    client_certificate_data: Option<String>,
    client_key: Option<PathBuf>,
    client_key_data: Option<String>,
    token: Option<String>,
    #[serde(alias = "tokenFile")]
    token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct Ctx {
    #[serde(default)]
    cluster: String,
    #[serde(default)]
    user: String,
}

impl Kubeconfig {
    /// Reads a kubeconfig file; every error names the file.
    pub fn load(path: &Path) -> anyhow::Result<Kubeconfig> {
        let text = crate::api::documents::read_text(path).with_context(|| format!("reading {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| anyhow!("{}: {e:#}", path.display()))
    }

    /// Parses kubeconfig text; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> anyhow::Result<Kubeconfig> {
        let f: File = serde_yaml::from_str(text)?;
        let ctx = f.contexts.iter().find(|c| c.name == f.current_context).or(f.contexts.first());
        let ctx = ctx.and_then(|c| c.value.as_ref());
        let cluster = match ctx {
            Some(c) => f.clusters.iter().find(|n| n.name == c.cluster),
            None => f.clusters.first(),
        }
        .ok_or_else(|| anyhow!("no cluster"))?;
        let cname = &cluster.name;
        let cluster = cluster.value.as_ref().ok_or_else(|| anyhow!("cluster {cname:?} has no server"))?;
        if cluster.server.is_empty() {
            bail!("cluster {cname:?} has no server");
        }
        let url = url::Url::parse(&cluster.server).map_err(|e| anyhow!("server {:?}: {e}", cluster.server))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("server {:?} is not an http(s) URL", cluster.server);
        }
        let user = match ctx {
            Some(c) => f.users.iter().find(|n| n.name == c.user),
            None => f.users.first(),
        }
        .and_then(|n| n.value.as_ref());
        let mut kc = Kubeconfig {
            server: cluster.server.clone(),
            ca: data_or_file(
                base,
                &cluster.certificate_authority,
                &cluster.certificate_authority_data,
                "certificate-authority",
            )?,
            insecure_skip_tls_verify: cluster.insecure_skip_tls_verify,
            ..Default::default()
        };
        if let Some(u) = user {
            let cert = data_or_file(base, &u.client_certificate, &u.client_certificate_data, "client-certificate")?;
            let key = data_or_file(base, &u.client_key, &u.client_key_data, "client-key")?;
            if cert.is_some() && key.is_some() {
                (kc.client_cert, kc.client_key) = (cert, key);
            }
            kc.token = match (&u.token, &u.token_file) {
                (Some(t), _) => Some(t.clone()),
                (None, Some(f)) => {
                    let p = base.join(f);
                    let t = crate::reload::read_to_string(&p).with_context(|| format!("tokenFile {}", p.display()))?;
                    kc.token_file = Some(p);
                    Some(t.trim().to_string())
                }
                _ => None,
            };
        }
        Ok(kc)
    }

    /// The webhook this kubeconfig names, with a client whose calls time out after `timeout`.
    pub fn endpoint(&self, timeout: Duration) -> anyhow::Result<Endpoint> {
        let identity = self.client_cert.as_deref().zip(self.client_key.as_deref());
        let tls = http_client::Tls { ca_pem: self.ca.as_deref(), identity, insecure: self.insecure_skip_tls_verify };
        let token_file = self.token_file.clone().zip(self.token.clone()).map(|(path, token)| {
            std::sync::Arc::new(TokenFile { path, cached: std::sync::Mutex::new((std::time::Instant::now(), token)) })
        });
        Ok(Endpoint {
            url: self.server.clone(),
            token: self.token.clone(),
            token_file,
            headers: Vec::new(),
            client: Client::new(tls, timeout)?,
        })
    }
}

/// An apiserver frontdoor calls as itself (the upstream apiserver's TokenReview and
/// SubjectAccessReview): its base URL and credential, plus the headers that name frontdoor
/// (request-header mode: X-Remote-User with the proxy client cert). Debug never prints the
/// credential.
#[derive(Clone)]
pub struct ApiserverClient {
    pub base: Kubeconfig,
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for ApiserverClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiserverClient").field("server", &self.base.server).finish_non_exhaustive()
    }
}

impl ApiserverClient {
    /// An endpoint POSTing to `path` on this apiserver.
    pub fn endpoint(&self, path: &str, timeout: Duration) -> anyhow::Result<Endpoint> {
        let mut kc = self.base.clone();
        kc.server = format!("{}{path}", self.base.server.trim_end_matches('/'));
        let mut e = kc.endpoint(timeout)?;
        e.headers = self.headers.clone();
        Ok(e)
    }
}

/// A webhook: its URL, bearer token and client.
#[derive(Clone)]
pub struct Endpoint {
    pub url: String,
    pub token: Option<String>,
    /// Sent with every call (the identity headers of a request-header caller).
    pub headers: Vec<(String, String)>,
    /// A tokenFile, re-read at most every minute (a rotated projected token is picked up).
    token_file: Option<std::sync::Arc<TokenFile>>,
    client: Client,
}

/// How long a token read from a tokenFile is used before the file is read again (client-go's
/// cachingTokenSource keeps it a minute).
const TOKEN_FILE_TTL: Duration = Duration::from_secs(60);

struct TokenFile {
    path: PathBuf,
    cached: std::sync::Mutex<(std::time::Instant, String)>,
}

impl TokenFile {
    fn token(&self) -> String {
        let mut c = self.cached.lock().unwrap_or_else(|e| e.into_inner());
        if c.0.elapsed() >= TOKEN_FILE_TTL {
            // an unreadable file keeps the last token, as client-go does
            if let Ok(t) = crate::reload::read_to_string(&self.path) {
                c.1 = t.trim().to_string();
            }
            c.0 = std::time::Instant::now();
        }
        c.1.clone()
    }
}

impl Endpoint {
    /// POSTs a JSON body to the webhook.
    pub async fn post_json(&self, body: impl Into<Bytes>) -> Result<http_client::Response, http_client::Error> {
        let token = match &self.token_file {
            Some(f) => Some(f.token()),
            None => self.token.clone(),
        };
        self.client.post_json(&self.url, token.as_deref(), &self.headers, body).await
    }
}

/// `<field>-data` (base64) or `<field>` (a path, relative to the kubeconfig's directory).
fn data_or_file(
    base: &Path,
    file: &Option<PathBuf>,
    data: &Option<String>,
    field: &str,
) -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(d) = data {
        return base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map(Some)
            .map_err(|e| anyhow!("{field}-data: {e}"));
    }
    match file {
        Some(p) => {
            let p = base.join(p);
            Ok(Some(crate::reload::read(&p).with_context(|| format!("{field} {}", p.display()))?))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KC: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: a\n  cluster: {server: 'https://127.0.0.1:1/a'}\n- name: b\n  cluster: {server: 'https://127.0.0.1:1/b', insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {tokenFile: tok}\n- name: v\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: b, user: u}\n- name: d\n  context: {cluster: a, user: v}\ncurrent-context: c\n";

    #[test]
    fn current_context_picks_cluster_and_user() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "from-file\n").unwrap();
        let kc = Kubeconfig::parse(KC, dir.path()).unwrap();
        assert_eq!(kc.server, "https://127.0.0.1:1/b");
        assert!(kc.insecure_skip_tls_verify);
        assert_eq!(kc.token.as_deref(), Some("from-file"));
        assert_eq!(kc.token_file.as_deref(), Some(dir.path().join("tok").as_path()));
        let kc = Kubeconfig::parse(&KC.replace("current-context: c", "current-context: d"), dir.path()).unwrap();
        assert_eq!((kc.server.as_str(), kc.token.as_deref()), ("https://127.0.0.1:1/a", Some("t")));
        // no current-context: the first context
        let kc = Kubeconfig::parse(&KC.replace("current-context: c\n", ""), dir.path()).unwrap();
        assert_eq!(kc.server, "https://127.0.0.1:1/b");
    }

    #[test]
    fn token_files_are_read_again_after_a_minute() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tok");
        std::fs::write(&p, "first\n").unwrap();
        let long_ago = std::time::Instant::now().checked_sub(TOKEN_FILE_TTL * 2).unwrap();
        let f = TokenFile { path: p.clone(), cached: std::sync::Mutex::new((long_ago, "first".into())) };
        std::fs::write(&p, "rotated\n").unwrap();
        assert_eq!(f.token(), "rotated");
        std::fs::write(&p, "again").unwrap();
        assert_eq!(f.token(), "rotated", "kept for a minute");
        std::fs::remove_file(&p).unwrap();
        *f.cached.lock().unwrap() = (long_ago, "rotated".into());
        assert_eq!(f.token(), "rotated", "an unreadable file keeps the last token");
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wh.kubeconfig");
        let err = |text: &str| {
            std::fs::write(&p, text).unwrap();
            Kubeconfig::load(&p).unwrap_err().to_string()
        };
        let e = err("clusters: []\n");
        assert!(e.starts_with(&p.display().to_string()) && e.ends_with("no cluster"), "{e}");
        assert!(err("clusters:\n- name: a\n  cluster: {}\n").contains("cluster \"a\" has no server"));
        assert!(err("clusters:\n- name: a\n  cluster: {server: 'ftp://x'}\n").contains("not an http(s) URL"));
        assert!(err(": : :").starts_with(&p.display().to_string()));
        assert!(err("clusters:\n- name: a\n  cluster: {server: 'https://x', certificate-authority: nope.crt}\n")
            .contains("nope.crt"));
        assert!(err("clusters:\n- name: a\n  cluster: {server: 'https://x', certificate-authority-data: '%%'}\n")
            .contains("certificate-authority-data"));
        assert!(Kubeconfig::load(&dir.path().join("missing")).unwrap_err().to_string().contains("missing"));
    }
}
