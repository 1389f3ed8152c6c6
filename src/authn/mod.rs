//! Authentication: every request leaves this stage with a UserInfo or a 401 Status.
//!
//! kube-apiserver's union, in its order, the first authenticator that recognises the
//! credential deciding: the authenticating proxy (request headers from a verified front
//! proxy), x509 client certificates, then bearer tokens (static token file, service-account
//! JWTs, JWT issuers from the authentication config, the TokenReview webhook) behind a
//! token cache, from `Authorization` or else a WebSocket's subprotocol (`websocket`).
//! Anonymous only when no credential was presented; a presented but invalid credential is
//! always a 401. Every authenticated user gets `system:authenticated`.

pub mod anonymous;
#[cfg(test)]
mod bad_input_tests;
pub mod cache;
pub mod jwt;
pub mod keys;
pub mod metrics;
pub mod requestheader;
pub mod review;
pub mod serviceaccount;
pub mod token_file;
pub mod token_issuer;
pub mod user;
pub mod webhook;
pub mod websocket;
pub mod x509;

pub use user::UserInfo;

use crate::api::Status;
use crate::context::RequestContext;
use crate::tls::{CaRole, ClientCas, PeerIdentity};
use arc_swap::{ArcSwap, ArcSwapOption};
use cache::{TokenCache, TokenResult};
use pingora::http::RequestHeader;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long token results are cached: kube-apiserver's 10s for successes. Failures are
/// cached as long (kube: 0) so a flood of bad tokens costs a hash each, not a signature
/// check; any reload of a token source clears the cache, and transient errors (webhook
/// unreachable, JWKS not yet fetched) are never cached.
pub const TOKEN_SUCCESS_TTL: Duration = Duration::from_secs(10);
pub const TOKEN_FAILURE_TTL: Duration = Duration::from_secs(10);

/// kube's default `--service-account-issuer` (frontdoor's when none is given).
pub const DEFAULT_SA_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Authentication flags (kube-apiserver's names).
#[derive(clap::Args, Debug, Clone)]
pub struct AuthnArgs {
    /// Enables anonymous requests to the secure port. Anonymous requests get the username
    /// system:anonymous and the group system:unauthenticated.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub anonymous_auth: bool,

    /// Root certificate bundle to use to verify client certificates on incoming requests
    /// before trusting usernames in headers specified by --requestheader-username-headers.
    #[arg(long, value_name = "FILE")]
    pub requestheader_client_ca_file: Option<PathBuf>,

    /// List of client certificate common names to allow to provide usernames in headers
    /// specified by --requestheader-username-headers. If empty, any client certificate
    /// validated by the authorities in --requestheader-client-ca-file is allowed.
    #[arg(long, value_delimiter = ',')]
    pub requestheader_allowed_names: Vec<String>,

    /// List of request headers to inspect for usernames. X-Remote-User is common.
    #[arg(long, value_delimiter = ',')]
    pub requestheader_username_headers: Vec<String>,

    /// List of request headers to inspect for UIDs. X-Remote-Uid is suggested.
    #[arg(long, value_delimiter = ',')]
    pub requestheader_uid_headers: Vec<String>,

    /// List of request headers to inspect for groups. X-Remote-Group is suggested.
    #[arg(long, value_delimiter = ',')]
    pub requestheader_group_headers: Vec<String>,

    /// List of request header prefixes to inspect. X-Remote-Extra- is suggested.
    #[arg(long, value_delimiter = ',')]
    pub requestheader_extra_headers_prefix: Vec<String>,

    /// If set, the file that will be used to secure the secure port of the API server via
    /// token authentication (CSV: token,user,uid,"group1,group2").
    #[arg(long, value_name = "FILE")]
    pub token_auth_file: Option<PathBuf>,

    /// File containing PEM-encoded x509 RSA or ECDSA public keys, used to verify
    /// ServiceAccount tokens. May be specified multiple times.
    #[arg(long, value_name = "FILE")]
    pub service_account_key_file: Vec<PathBuf>,

    /// Identifier of the service account token issuer (the `iss` claim). May be specified
    /// multiple times; the first is the one new tokens would carry.
    #[arg(long)]
    pub service_account_issuer: Vec<String>,

    /// If true, validate ServiceAccount tokens exist in the store as part of authentication
    /// (a token outlives neither its service account nor a recreation of it, nor a legacy token its Secret).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub service_account_lookup: bool,

    /// Path to the file that contains the current private key of the service account token
    /// issuer. The issuer will sign issued ID tokens with this private key (the TokenRequest
    /// API, `kubectl create token`). Default on embedded defaults: sa.key in --cert-dir.
    #[arg(long, value_name = "FILE")]
    pub service_account_signing_key_file: Option<PathBuf>,

    /// Identifiers of the API. The service account token authenticator will validate that
    /// tokens used against the API are bound to at least one of these audiences. Defaults
    /// to the first --service-account-issuer.
    #[arg(long, value_delimiter = ',')]
    pub api_audiences: Vec<String>,

    /// File with an apiserver.config.k8s.io AuthenticationConfiguration (JWT issuers).
    #[arg(long, value_name = "FILE")]
    pub authentication_config: Option<PathBuf>,

    /// File with webhook configuration for token authentication in kubeconfig format. The
    /// API server will query the remote service to determine authentication for bearer tokens.
    #[arg(long, value_name = "FILE")]
    pub authentication_token_webhook_config_file: Option<PathBuf>,

    /// The duration to cache responses from the webhook token authenticator.
    #[arg(long, default_value = "2m", value_parser = crate::api::duration::parse_duration)]
    pub authentication_token_webhook_cache_ttl: Duration,

    /// The API version of the authentication.k8s.io TokenReview to send to and expect from the webhook.
    #[arg(long, default_value = "v1beta1")]
    pub authentication_token_webhook_version: String,

    /// The upstream apiserver (`--upstream-apiserver`), as frontdoor calls it itself: a
    /// bearer token no local authenticator recognises is reviewed there (TokenReview), so its
    /// service-account tokens work through the front door (filled by the server).
    #[arg(skip)]
    pub upstream: Option<crate::kubeconfig::ApiserverClient>,
}

impl Default for AuthnArgs {
    fn default() -> Self {
        AuthnArgs {
            anonymous_auth: true,
            requestheader_client_ca_file: None,
            requestheader_allowed_names: Vec::new(),
            requestheader_username_headers: Vec::new(),
            requestheader_uid_headers: Vec::new(),
            requestheader_group_headers: Vec::new(),
            requestheader_extra_headers_prefix: Vec::new(),
            token_auth_file: None,
            service_account_key_file: Vec::new(),
            service_account_issuer: Vec::new(),
            service_account_signing_key_file: None,
            service_account_lookup: true,
            api_audiences: Vec::new(),
            authentication_config: None,
            authentication_token_webhook_config_file: None,
            authentication_token_webhook_cache_ttl: Duration::from_secs(120),
            authentication_token_webhook_version: "v1beta1".into(),
            upstream: None,
        }
    }
}

/// On embedded defaults: the dev PKI's service-account key and front-proxy CA (with
/// kubeadm's header names), and `tokens.csv` from --policy-dir when present.
pub fn embedded_defaults(a: &mut AuthnArgs, cert_dir: &Path, policy_dir: &Path) {
    if a.service_account_key_file.is_empty() {
        a.service_account_key_file = vec![cert_dir.join("sa.pub")];
        if a.service_account_signing_key_file.is_none() {
            a.service_account_signing_key_file = Some(cert_dir.join("sa.key"));
        }
    }
    if a.service_account_issuer.is_empty() {
        a.service_account_issuer = vec![DEFAULT_SA_ISSUER.into()];
    }
    if a.requestheader_client_ca_file.is_none() {
        a.requestheader_client_ca_file = Some(cert_dir.join("front-proxy-ca.crt"));
        if a.requestheader_allowed_names.is_empty() {
            a.requestheader_allowed_names = vec!["front-proxy-client".into()];
        }
    }
    let fill = |v: &mut Vec<String>, d: &str| {
        if v.is_empty() {
            *v = vec![d.to_string()];
        }
    };
    fill(&mut a.requestheader_username_headers, "X-Remote-User");
    fill(&mut a.requestheader_uid_headers, "X-Remote-Uid");
    fill(&mut a.requestheader_group_headers, "X-Remote-Group");
    fill(&mut a.requestheader_extra_headers_prefix, "X-Remote-Extra-");
    if a.token_auth_file.is_none() {
        let p = policy_dir.join("tokens.csv");
        if p.exists() {
            a.token_auth_file = Some(p);
        }
    }
}

/// The compiled authenticators; token sources swap whole on reload.
#[derive(Clone)]
pub struct Authentication {
    inner: Arc<Inner>,
}

struct Inner {
    /// The TLS layer's client CAs (set by `new`): the x509 authenticator is there only when a
    /// client CA is (`--client-ca-file`), as in kube.
    client_cas: std::sync::OnceLock<Arc<ClientCas>>,
    anonymous: bool,
    requestheader: requestheader::RequestHeaderAuth,
    requestheader_enabled: bool,
    token_file: ArcSwapOption<token_file::TokenFile>,
    service_accounts: ArcSwapOption<serviceaccount::ServiceAccounts>,
    jwt: ArcSwap<Vec<Arc<jwt::JwtIssuer>>>,
    webhook: Option<webhook::Webhook>,
    /// TokenReview at the upstream apiserver, after every local authenticator.
    upstream: Option<webhook::Webhook>,
    api_audiences: Vec<String>,
    token_issuer: Option<token_issuer::TokenIssuer>,
    /// Finds a service account's uid (`--service-account-lookup`); set once the store is up.
    object_uid: ArcSwapOption<Box<ObjectUid>>,
    cache: TokenCache,
}

/// What the TokenRequest API (in the store) needs of authentication: the signer and the
/// audiences, not the authenticators.
#[derive(Clone)]
pub struct TokenIssuing(Authentication);

impl TokenIssuing {
    pub fn issuer(&self) -> Option<&token_issuer::TokenIssuer> {
        self.0.token_issuer()
    }

    pub fn api_audiences(&self) -> &[String] {
        self.0.api_audiences()
    }
}

/// A stored core object (`serviceaccounts` or `secrets`, namespace, name), if it exists.
pub type ObjectUid = dyn Fn(&str, &str, &str) -> Option<CoreObject> + Send + Sync;

/// What token validation reads of a stored service account or Secret.
#[derive(Debug, Clone, Default)]
pub struct CoreObject {
    pub uid: String,
    /// When its deletion began (`metadata.deletionTimestamp`: a finalizer may hold it on).
    pub deleting_since: Option<chrono::DateTime<chrono::Utc>>,
    /// A Secret's `data.token`, as its SHA-256: what a legacy token must be, without the
    /// token itself held past the lookup.
    pub token_sha256: Option<[u8; 32]>,
    /// A Secret labelled `kubernetes.io/legacy-token-invalid-since` (by kube's legacy token
    /// cleaner, or by hand) ends the legacy token it holds.
    pub invalid_since: bool,
}

impl CoreObject {
    pub fn of(v: &serde_json::Value) -> Self {
        use base64::Engine;
        use sha2::Digest;
        let meta = &v["metadata"];
        let since = meta["deletionTimestamp"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        let token = v["data"]["token"].as_str().and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok());
        CoreObject {
            uid: meta["uid"].as_str().unwrap_or_default().to_string(),
            deleting_since: since.map(|t| t.with_timezone(&chrono::Utc)),
            token_sha256: token.map(|t| sha2::Sha256::digest(t).into()),
            invalid_since: meta["labels"][serviceaccount::INVALID_SINCE_LABEL].as_str().is_some_and(|l| !l.is_empty()),
        }
    }

    /// kube's validator: an object whose deletion began more than the JWT leeway (60 s) ago is
    /// gone for its tokens, whatever finalizer still holds it.
    fn deleted(&self) -> bool {
        const LEEWAY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);
        self.deleting_since.is_some_and(|t| t < chrono::Utc::now() - LEEWAY)
    }
}

/// Why a request did not authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Nothing recognised and anonymous is off (`failure`).
    NoCredential,
    /// A credential was presented and is invalid (`error`); the reason is for logs only.
    Invalid(String),
}

impl Authentication {
    /// Builds the authenticators, installs the requestheader CA into the TLS layer and
    /// starts the reload watchers.
    pub fn new(a: &AuthnArgs, client_cas: &Arc<ClientCas>) -> anyhow::Result<Self> {
        metrics::register();
        let authn = Self::from_args(a)?;
        let _ = authn.inner.client_cas.set(client_cas.clone());
        if let Some(ca) = a.requestheader_client_ca_file.clone() {
            client_cas.set(CaRole::RequestHeaderCa, Some(&ca))?;
            let cas = client_cas.clone();
            crate::reload::watch("requestheader-client-ca", vec![ca.clone()], move || {
                cas.set(CaRole::RequestHeaderCa, Some(&ca))
            });
        }
        authn.watch(a);
        Ok(authn)
    }

    /// Builds the authenticators from flags alone (no watchers, no TLS changes).
    pub fn from_args(a: &AuthnArgs) -> anyhow::Result<Self> {
        let token_file = match &a.token_auth_file {
            Some(p) => Some(Arc::new(token_file::TokenFile::load(p)?)),
            None => None,
        };
        let service_accounts = if a.service_account_key_file.is_empty() {
            None
        } else {
            Some(Arc::new(serviceaccount::ServiceAccounts::load(
                &a.service_account_key_file,
                &a.service_account_issuer,
                &a.api_audiences,
            )?))
        };
        let jwt = match &a.authentication_config {
            Some(p) => jwt::load_config(p, &a.service_account_issuer)?,
            None => Vec::new(),
        };
        let webhook = match &a.authentication_token_webhook_config_file {
            Some(p) => Some(webhook::Webhook::load(
                p,
                a.authentication_token_webhook_cache_ttl,
                &a.authentication_token_webhook_version,
            )?),
            None => None,
        };
        let upstream = match &a.upstream {
            Some(c) => Some(webhook::Webhook::for_apiserver(c, a.authentication_token_webhook_cache_ttl)?),
            None => None,
        };
        let token_issuer = match &a.service_account_signing_key_file {
            Some(f) => {
                let Some(iss) = a.service_account_issuer.first() else {
                    anyhow::bail!("--service-account-signing-key-file needs --service-account-issuer");
                };
                Some(token_issuer::TokenIssuer::load(f, iss)?)
            }
            None => None,
        };
        let api_audiences = if a.api_audiences.is_empty() {
            a.service_account_issuer.iter().take(1).cloned().collect()
        } else {
            a.api_audiences.clone()
        };
        Ok(Authentication {
            inner: Arc::new(Inner {
                anonymous: a.anonymous_auth,
                requestheader: requestheader::RequestHeaderAuth {
                    username_headers: a.requestheader_username_headers.clone(),
                    uid_headers: a.requestheader_uid_headers.clone(),
                    group_headers: a.requestheader_group_headers.clone(),
                    extra_prefixes: a.requestheader_extra_headers_prefix.clone(),
                    allowed_names: a.requestheader_allowed_names.clone(),
                },
                requestheader_enabled: a.requestheader_client_ca_file.is_some(),
                client_cas: std::sync::OnceLock::new(),
                token_file: ArcSwapOption::new(token_file),
                service_accounts: ArcSwapOption::new(service_accounts),
                jwt: ArcSwap::from_pointee(jwt),
                webhook,
                upstream,
                api_audiences,
                token_issuer,
                object_uid: ArcSwapOption::empty(),
                cache: TokenCache::new(TOKEN_SUCCESS_TTL, TOKEN_FAILURE_TTL, true),
            }),
        })
    }

    fn watch(&self, a: &AuthnArgs) {
        if let Some(p) = a.token_auth_file.clone() {
            let inner = self.inner.clone();
            crate::reload::watch("token-auth-file", vec![p.clone()], move || {
                inner.token_file.store(Some(Arc::new(token_file::TokenFile::load(&p)?)));
                inner.cache.clear();
                Ok(())
            });
        }
        if !a.service_account_key_file.is_empty() {
            let inner = self.inner.clone();
            let (files, issuers, auds) =
                (a.service_account_key_file.clone(), a.service_account_issuer.clone(), a.api_audiences.clone());
            crate::reload::watch("service-account-key-file", files.clone(), move || {
                inner
                    .service_accounts
                    .store(Some(Arc::new(serviceaccount::ServiceAccounts::load(&files, &issuers, &auds)?)));
                inner.cache.clear();
                Ok(())
            });
        }
        if let Some(p) = a.authentication_config.clone() {
            let inner = self.inner.clone();
            let disallowed = a.service_account_issuer.clone();
            let mut paths = vec![p.clone()];
            paths.extend(self.inner.jwt.load().iter().filter_map(|i| i.jwks_file().map(|f| f.to_path_buf())));
            crate::reload::watch("authentication-config", paths, move || {
                let result = jwt::load_config(&p, &disallowed).map(|issuers| {
                    inner.jwt.store(Arc::new(issuers));
                    inner.cache.clear();
                });
                metrics::CONFIG_RELOADS.record(&result);
                result
            });
        }
    }

    /// Where service-account tokens are checked against their service account (kube's
    /// `--service-account-lookup`); without it, a valid signature is enough.
    pub fn set_service_account_lookup(&self, lookup: Box<ObjectUid>) {
        self.inner.object_uid.store(Some(Arc::new(lookup)));
    }

    /// kube's lookup: the token's service account must still exist with the uid it names, and
    /// so must the Secret it is bound to, if any (kube's validator). A legacy token is checked
    /// as kube's legacy validator checks it ([`serviceaccount::check_legacy`]).
    fn check_service_account(&self, token: &str, user: &UserInfo, claims: &serde_json::Value) -> Result<(), String> {
        let Some(lookup) = self.inner.object_uid.load_full() else { return Ok(()) };
        let Some((ns, name)) = serviceaccount::split_username(&user.username) else { return Ok(()) };
        // a bound token carries kube's `kubernetes.io` claims; a legacy one a Secret's name
        if claims.get("kubernetes.io").is_none() {
            return serviceaccount::check_legacy(&**lookup, token, ns, name, &user.uid, claims);
        }
        match lookup("serviceaccounts", ns, name).filter(|o| !o.deleted()) {
            None => return Err(format!("invalid bearer token, service account {ns}/{name} has been deleted")),
            Some(CoreObject { uid, .. }) if uid != user.uid => {
                return Err(format!(
                    "invalid bearer token, service account UID ({uid}) does not match claim ({})",
                    user.uid
                ));
            }
            Some(_) => {}
        }
        let Some(secret) = claims.pointer("/kubernetes.io/secret") else { return Ok(()) };
        let (s_name, s_uid) = (secret["name"].as_str().unwrap_or(""), secret["uid"].as_str().unwrap_or(""));
        match lookup("secrets", ns, s_name).filter(|o| !o.deleted()) {
            None => Err("invalid bearer token, service account token has been invalidated".into()),
            Some(CoreObject { uid, .. }) if uid != s_uid => Err(format!(
                "invalid bearer token, secret UID ({uid}) does not match service account secret ref claim ({s_uid})"
            )),
            Some(_) => Ok(()),
        }
    }

    /// The narrow handle the TokenRequest API gets.
    pub fn token_issuing(&self) -> TokenIssuing {
        TokenIssuing(self.clone())
    }

    /// The TokenRequest signer, when a signing key is configured.
    pub fn token_issuer(&self) -> Option<&token_issuer::TokenIssuer> {
        self.inner.token_issuer.as_ref()
    }

    /// The audiences the API accepts (`--api-audiences`, else the first issuer): what a
    /// TokenRequest without audiences gets.
    pub fn api_audiences(&self) -> &[String] {
        &self.inner.api_audiences
    }

    fn has_token_authenticators(&self) -> bool {
        let i = &self.inner;
        i.token_file.load().is_some()
            || i.service_accounts.load().is_some()
            || !i.jwt.load().is_empty()
            || i.webhook.is_some()
            || i.upstream.is_some()
    }

    /// Authenticates a bearer token through the cached token union.
    pub async fn authenticate_token(&self, token: &str) -> TokenResult {
        let api = &self.inner.api_audiences;
        if let Some(r) = self.inner.cache.get(api, token) {
            return r;
        }
        let mut answer = self.authenticate_token_for(token, api).await;
        // kept with the authenticated group the request adds: a request shares the cached user
        answer.result = answer.result.map(|user| user.map(UserInfo::authenticated));
        if !answer.transient {
            self.inner.cache.put(api, token, &answer.result);
        }
        answer.result
    }

    /// The token union without the cache, for the API's audiences (what the cache keeps).
    pub async fn authenticate_token_uncached(&self, token: &str) -> TokenResult {
        self.authenticate_token_for(token, &self.inner.api_audiences).await.result
    }

    /// The token union without the cache, for `audiences` (the API's, or a TokenReview's, as
    /// kube puts them in the request's context): the first authenticator that recognises the
    /// token decides; errors are aggregated as kube's union does. A service-account token and
    /// the webhook are checked against `audiences`; the audience-agnostic authenticators (the
    /// token file, JWT issuers) answer only when `audiences` meet the API's (kube's
    /// `WrapAudienceAgnosticToken`).
    async fn authenticate_token_for(&self, token: &str, audiences: &[String]) -> TokenAnswer {
        let i = &self.inner;
        let api = &i.api_audiences;
        let met: Vec<String> = if api.is_empty() {
            audiences.to_vec()
        } else {
            audiences.iter().filter(|a| api.contains(a)).cloned().collect()
        };
        let agnostic = audiences.is_empty() || api.is_empty() || !met.is_empty();
        let answer = |result: TokenResult, audiences: Vec<String>| TokenAnswer { result, transient: false, audiences };
        let mut errs: Vec<String> = Vec::new();
        let mut transient = false;
        if let Some(f) = i.token_file.load().as_ref().filter(|_| agnostic) {
            if let Ok(Some(u)) = f.authenticate(token) {
                return answer(Ok(Some(u)), met);
            }
        }
        if let Some(t) = keys::peek(token) {
            let iss = t.claims.get("iss").and_then(|v| v.as_str()).unwrap_or_default().to_string();
            if let Some(sa) = i.service_accounts.load().as_ref() {
                match sa.authenticate_for(token, &t, audiences) {
                    Ok(Some(u)) => {
                        let bound: Vec<String> = keys::audiences(&t.claims)
                            .unwrap_or_default()
                            .into_iter()
                            .filter(|a| audiences.contains(a))
                            .collect();
                        return match self.check_service_account(token, &u, &t.claims) {
                            Ok(()) => answer(Ok(Some(u)), bound),
                            Err(e) => answer(Err(e), Vec::new()),
                        };
                    }
                    Ok(None) => {}
                    Err(e) => errs.push(e),
                }
            }
            let issuers = i.jwt.load();
            for issuer in issuers.iter().filter(|j| j.url == iss && agnostic) {
                // boxed, as the webhooks' below: each is ~1.4 KB of state that a request
                // authenticated otherwise (a token file's, a service account's) would carry
                match Box::pin(issuer.authenticate(token, &t)).await {
                    Ok(Some(u)) => return answer(Ok(Some(u)), met),
                    Ok(None) => {}
                    Err(e) => {
                        transient |= e.contains("no key with kid");
                        errs.push(e);
                    }
                }
            }
        }
        for w in [&i.webhook, &i.upstream].into_iter().flatten() {
            match Box::pin(w.authenticate(token, audiences, api)).await {
                (Ok(Some(u)), met) => return answer(Ok(Some(u)), met),
                (Ok(None), _) => {}
                (Err(e), _) => {
                    transient = true;
                    errs.push(e);
                }
            }
        }
        let result = match errs.len() {
            0 => Ok(None),
            1 => Err(errs.remove(0)),
            _ => Err(format!("[{}]", errs.join(", "))),
        };
        TokenAnswer { result, transient, audiences: Vec::new() }
    }

    /// The whole union for one request. Identity headers are always stripped; the
    /// `Authorization` header is removed once a request authenticated.
    pub async fn authenticate_request(
        &self,
        peer: Option<&PeerIdentity>,
        req: &mut RequestHeader,
    ) -> Result<(Arc<UserInfo>, &'static str), Failure> {
        let i = &self.inner;
        let mut errs: Vec<String> = Vec::new();
        let mut found: Option<(Arc<UserInfo>, &'static str)> = None;
        let cas = i.client_cas.get().map(Arc::as_ref);
        if i.requestheader_enabled {
            match i.requestheader.authenticate(peer, cas, req) {
                Ok(Some(u)) => found = Some((Arc::new(u), "requestheader")),
                Ok(None) => {}
                Err(e) => errs.push(e),
            }
        }
        i.requestheader.strip(req);
        if found.is_none() {
            let x509 = cas.is_none_or(|c| c.has(CaRole::ClientCa));
            match x509::authenticate(peer.filter(|_| x509), cas) {
                Ok(u) => found = u.map(|u| (u, "x509")),
                Err(e) => errs.push(e),
            }
        }
        if found.is_none() {
            if let Some(token) = bearer_token(req).filter(|_| self.has_token_authenticators()) {
                match self.authenticate_token(&token).await {
                    Ok(Some(u)) => found = Some((u, "token")),
                    Ok(None) => errs.push("invalid bearer token".into()),
                    Err(e) => errs.push(e),
                }
            }
        }
        // a WebSocket's token as a subprotocol, after `Authorization`'s (kube's order)
        if let Some(protocol) = websocket::read(req) {
            websocket::strip(req, &protocol);
            if found.is_none() && self.has_token_authenticators() {
                match protocol.token {
                    Ok(token) if token.is_empty() => {}
                    Ok(token) => match self.authenticate_token(&token).await {
                        Ok(Some(u)) => found = Some((u, "websocket")),
                        Ok(None) => errs.push("invalid bearer token".into()),
                        Err(e) => errs.push(e),
                    },
                    Err(e) => errs.push(e),
                }
            }
        }
        if let Some((u, how)) = found {
            req.remove_header(&http::header::AUTHORIZATION);
            return Ok((UserInfo::authenticated(u), how));
        }
        if !errs.is_empty() {
            return Err(Failure::Invalid(if errs.len() == 1 {
                errs.remove(0)
            } else {
                format!("[{}]", errs.join(", "))
            }));
        }
        if i.anonymous {
            return Ok((anonymous::user(), "anonymous"));
        }
        Err(Failure::NoCredential)
    }

    /// A TokenReview: the user a token authenticates as, the audiences, or an error.
    /// Without audiences, the token is reviewed as the API sees it (cached); with them, for
    /// them (kube's TokenReview puts them in the authenticators' context): a token bound to
    /// another audience than the API's is authenticated when the review asks for it.
    pub async fn review_token(&self, token: &str, audiences: &[String]) -> (Option<UserInfo>, Vec<String>, String) {
        let (result, auds) = if audiences.is_empty() {
            (self.authenticate_token(token).await, self.inner.api_audiences.clone())
        } else {
            let answer = self.authenticate_token_for(token, audiences).await;
            (answer.result, answer.audiences)
        };
        match result {
            Ok(Some(u)) => (Some((*u).clone().with_authenticated_group()), auds, String::new()),
            // kube's bearer-token authenticator turns "not recognised" into this error
            Ok(None) => (None, Vec::new(), "invalid bearer token".into()),
            Err(e) => (None, Vec::new(), e),
        }
    }
}

/// What the token union says of a token: the user (or an error), whether that may be cached,
/// and the audiences the token was authenticated for.
struct TokenAnswer {
    result: TokenResult,
    transient: bool,
    audiences: Vec<String>,
}

/// kube's bearer-token extraction: `Authorization: Bearer <token>`, scheme case-insensitive;
/// anything else (no header, another scheme, an empty token) is no bearer credential.
pub fn bearer_token(req: &RequestHeader) -> Option<Cow<'_, str>> {
    let raw = req.headers.get(http::header::AUTHORIZATION)?;
    // borrowed from the header unless it is not UTF-8 (then lossily decoded, as before)
    match String::from_utf8_lossy(raw.as_bytes()) {
        Cow::Borrowed(auth) => bearer_of(auth).map(Cow::Borrowed),
        Cow::Owned(auth) => bearer_of(&auth).map(|t| Cow::Owned(t.to_string())),
    }
}

fn bearer_of(auth: &str) -> Option<&str> {
    let mut parts = auth.trim().splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return None;
    }
    Some(token)
}

impl Authentication {
    /// The authentication filter: fills the context's user, or ends the request with 401.
    pub async fn authenticate(&self, req: &mut RequestHeader, ctx: &mut RequestContext) -> Result<(), Status> {
        let start = Instant::now();
        let result = self.authenticate_request(ctx.peer.as_deref(), req).await;
        let seconds = start.elapsed().as_secs_f64();
        match result {
            Ok((user, _)) => {
                metrics::record("success", Some(&user.username), seconds);
                ctx.user = Some(user);
                Ok(())
            }
            Err(Failure::Invalid(reason)) => {
                metrics::record("error", None, seconds);
                tracing::info!(audit_id = %ctx.incoming.audit_id(), reason = %reason, "Unable to authenticate the request");
                Err(Status::unauthorized())
            }
            Err(Failure::NoCredential) => {
                metrics::record("failure", None, seconds);
                Err(Status::unauthorized())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(auth: Option<&str>) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/api", None).unwrap();
        if let Some(a) = auth {
            r.insert_header("Authorization", a).unwrap();
        }
        r
    }

    fn authn(anonymous: bool) -> Authentication {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("tokens.csv");
        std::fs::write(&f, "s3cret,alice,u1,\"dev,ops\"\n").unwrap();
        let a = AuthnArgs { anonymous_auth: anonymous, token_auth_file: Some(f), ..Default::default() };
        Authentication::from_args(&a).unwrap()
    }

    /// kube's validator: a service account or bound Secret whose deletion began more than a
    /// minute ago ends its tokens, though a finalizer keeps the object.
    #[test]
    fn a_token_ends_a_minute_after_its_objects_deletion_began() {
        let a = authn(false);
        let user = UserInfo { username: "system:serviceaccount:d:ci".into(), uid: "sa-1".into(), ..Default::default() };
        let claims = serde_json::json!({"kubernetes.io": {"secret": {"name": "bound", "uid": "s-1"}}});
        let check = |sa_ago: Option<i64>, secret_ago: Option<i64>| {
            let at = |ago: Option<i64>| ago.map(|s| chrono::Utc::now() - chrono::TimeDelta::seconds(s));
            let (sa, secret) = (at(sa_ago), at(secret_ago));
            a.set_service_account_lookup(Box::new(move |resource, _, _| {
                Some(match resource {
                    "serviceaccounts" => CoreObject { uid: "sa-1".into(), deleting_since: sa, ..Default::default() },
                    _ => CoreObject { uid: "s-1".into(), deleting_since: secret, ..Default::default() },
                })
            }));
            a.check_service_account("token", &user, &claims)
        };
        assert_eq!(check(None, None), Ok(()));
        assert_eq!(check(Some(30), Some(30)), Ok(()), "within the leeway");
        let e = check(Some(61), None).unwrap_err();
        assert_eq!(e, "invalid bearer token, service account d/ci has been deleted");
        let e = check(None, Some(61)).unwrap_err();
        assert_eq!(e, "invalid bearer token, service account token has been invalidated");
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(&req(Some("Bearer abc"))).as_deref(), Some("abc"));
        assert_eq!(bearer_token(&req(Some("bearer abc extra"))).as_deref(), Some("abc"));
        assert_eq!(bearer_token(&req(Some("Basic abc"))), None);
        assert_eq!(bearer_token(&req(Some("Bearer"))), None);
        assert_eq!(bearer_token(&req(Some("Bearer  abc"))), None, "empty token (double space)");
        assert_eq!(bearer_token(&req(Some(""))), None);
        assert_eq!(bearer_token(&req(None)), None);
    }

    /// kube's WebSocket protocol authenticator, after `Authorization`: a token as a subprotocol
    /// authenticates, a bad one is a 401, and it never stays in the request.
    #[tokio::test]
    async fn a_websocket_token_in_a_subprotocol() {
        let a = authn(true);
        let ws = |auth: Option<&str>, protocols: &str| {
            let mut r = req(auth);
            r.insert_header("Connection", "Upgrade").unwrap();
            r.insert_header("Upgrade", "websocket").unwrap();
            r.insert_header("Sec-WebSocket-Protocol", protocols).unwrap();
            r
        };
        // "s3cret" and "nope", unpadded base64url
        let (good, bad) =
            ("base64url.bearer.authorization.k8s.io.czNjcmV0", "base64url.bearer.authorization.k8s.io.bm9wZQ");
        let mut r = ws(None, &format!("{good}, v4.channel.k8s.io"));
        let (u, how) = a.authenticate_request(None, &mut r).await.unwrap();
        assert_eq!((u.username.as_str(), how), ("alice", "websocket"));
        assert_eq!(r.headers.get("sec-websocket-protocol").unwrap(), "v4.channel.k8s.io");

        let mut r = ws(None, &format!("{bad}, v4.channel.k8s.io"));
        let e = a.authenticate_request(None, &mut r).await.unwrap_err();
        assert_eq!(e, Failure::Invalid("invalid bearer token".into()));
        let e = a.authenticate_request(None, &mut ws(None, good)).await.unwrap_err();
        assert_eq!(e, Failure::Invalid("missing additional subprotocol".into()));

        // `Authorization` comes first; the subprotocol's token goes all the same
        let mut r = ws(Some("Bearer s3cret"), &format!("{bad}, v4.channel.k8s.io"));
        let (u, how) = a.authenticate_request(None, &mut r).await.unwrap();
        assert_eq!((u.username.as_str(), how), ("alice", "token"));
        assert_eq!(r.headers.get("sec-websocket-protocol").unwrap(), "v4.channel.k8s.io");
        // without token authenticators, as in kube, a subprotocol is no credential, and goes
        let a = Authentication::from_args(&AuthnArgs { anonymous_auth: true, ..Default::default() }).unwrap();
        let mut r = ws(None, &format!("{good}, v4.channel.k8s.io"));
        let (u, _) = a.authenticate_request(None, &mut r).await.unwrap();
        assert_eq!(u.username, "system:anonymous");
        assert_eq!(r.headers.get("sec-websocket-protocol").unwrap(), "v4.channel.k8s.io");
    }

    #[tokio::test]
    async fn union_semantics() {
        let a = authn(true);
        let mut r = req(Some("Bearer s3cret"));
        let (u, how) = a.authenticate_request(None, &mut r).await.unwrap();
        assert_eq!((u.username.as_str(), how), ("alice", "token"));
        assert_eq!(u.groups, vec!["dev", "ops", "system:authenticated"]);
        assert!(r.headers.get("authorization").is_none(), "consumed");
        // the cache keeps the user as requests take it: the next request shares it, and its
        // TokenReview adds no second authenticated group
        let (again, _) = a.authenticate_request(None, &mut req(Some("Bearer s3cret"))).await.unwrap();
        assert!(Arc::ptr_eq(&u, &again), "a cached token's user is shared, not copied");
        let (reviewed, _, _) = a.review_token("s3cret", &[]).await;
        assert_eq!(reviewed.unwrap().groups, u.groups);

        // a presented bad token is a 401, never anonymous
        for bad in ["Bearer nope", "Bearer a.b.c", "Bearer eyJhbGciOiJub25lIn0.e30.", "Bearer \u{1F600}"] {
            let e = a.authenticate_request(None, &mut req(Some(bad))).await.unwrap_err();
            assert!(matches!(e, Failure::Invalid(_)), "{bad}: {e:?}");
        }
        // no credential, or one that is no bearer token: anonymous
        for none in [None, Some("Basic dXNlcjpwYXNz"), Some("garbage"), Some("")] {
            let (u, how) = a.authenticate_request(None, &mut req(none)).await.unwrap();
            assert_eq!((u.username.as_str(), how), ("system:anonymous", "anonymous"));
            assert_eq!(u.groups, vec!["system:unauthenticated"]);
        }
        let a = authn(false);
        assert_eq!(a.authenticate_request(None, &mut req(None)).await.unwrap_err(), Failure::NoCredential);
    }

    /// A front-proxy cert without a user is 401 where a client CA is set (kube's x509
    /// authenticator fails it), and anonymous where none is (kube has no x509 authenticator).
    #[tokio::test]
    async fn a_cert_the_client_ca_did_not_sign() {
        let a = authn(true);
        let proxy = PeerIdentity::new("front-proxy-client".into(), Vec::new(), [CaRole::RequestHeaderCa].into());
        let cas = Arc::new(ClientCas::default());
        let _ = a.inner.client_cas.set(cas.clone());
        let (u, how) = a.authenticate_request(Some(&proxy), &mut req(None)).await.unwrap();
        assert_eq!(
            (u.username.as_str(), how),
            ("system:anonymous", "anonymous"),
            "no client CA: no x509 authenticator"
        );
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        std::fs::write(dir.path().join("ca.crt"), p.self_signed(&key).unwrap().pem()).unwrap();
        cas.set(CaRole::ClientCa, Some(&dir.path().join("ca.crt"))).unwrap();
        let e = a.authenticate_request(Some(&proxy), &mut req(None)).await.unwrap_err();
        assert!(matches!(e, Failure::Invalid(ref m) if m.contains("signed by unknown authority")), "{e:?}");
    }

    #[tokio::test]
    async fn x509_before_token_and_spoofed_headers_ignored() {
        let a = AuthnArgs {
            requestheader_client_ca_file: Some("/nonexistent".into()),
            requestheader_username_headers: vec!["X-Remote-User".into()],
            ..Default::default()
        };
        let a = Authentication::from_args(&a).unwrap();
        let peer = PeerIdentity::new("bob".into(), Vec::new(), [CaRole::ClientCa].into());
        let mut r = req(None);
        r.insert_header("X-Remote-User", "system:admin").unwrap();
        r.insert_header("X-Remote-Group", "system:masters").unwrap();
        let (u, how) = a.authenticate_request(Some(&peer), &mut r).await.unwrap();
        assert_eq!((u.username.as_str(), how), ("bob", "x509"));
        assert!(r.headers.get("x-remote-user").is_none() && r.headers.get("x-remote-group").is_none());
        let (u, _) = a
            .authenticate_request(None, &mut {
                let mut r = req(None);
                r.insert_header("X-Remote-User", "system:admin").unwrap();
                r
            })
            .await
            .unwrap();
        assert_eq!(u.username, "system:anonymous");
    }
}
