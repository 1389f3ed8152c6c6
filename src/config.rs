//! The `serve` settings: kube-apiserver's flag names where the meaning is the same, and a
//! `--config` YAML file holding the same settings by flag name (flags override it).

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "frontdoor",
    version,
    about = "A front-door gateway for Kubernetes-style APIs",
    next_line_help = true,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway. With no flags it runs on embedded defaults: development certs under
    /// --cert-dir (generated if missing), policies from ./policies, 127.0.0.1:6443.
    // a flag given twice takes its last value, as kube-apiserver's (pflag) flags do
    #[command(args_override_self = true)]
    Serve(Box<ServeArgs>),
    /// Manage development certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Validate every policy file in a directory as `serve` would load it (for CI).
    CheckPolicy(crate::policy_check::CheckPolicyArgs),
    /// Ask the policy files, as `kubectl auth can-i` asks a running frontdoor.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// Print the version.
    Version,
}

#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// Check whether an action is allowed by the policy files (`kubectl auth can-i`'s arguments).
    CanI(Box<crate::policy_check::CanIArgs>),
}

#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Write a development PKI with kubeadm's file names.
    Init(crate::certs::InitArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// A YAML file holding these settings by flag name (e.g. `secure-port: 6443`); flags given
    /// on the command line override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The IP address on which to listen for the --secure-port port.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_address: IpAddr,

    /// The port on which to serve HTTPS with authentication and authorization.
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,

    /// File containing the default x509 certificate for HTTPS (CA cert, if any, concatenated
    /// after server cert). Without it, development certs are generated under --cert-dir.
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// File containing the default x509 private key matching --tls-cert-file.
    #[arg(long, value_name = "FILE")]
    pub tls_private_key_file: Option<PathBuf>,

    /// If set, any request presenting a client certificate signed by one of the authorities in
    /// the client-ca-file is authenticated with an identity corresponding to the CommonName of
    /// the client certificate. A certificate that does not verify fails the TLS handshake.
    #[arg(long, value_name = "FILE")]
    pub client_ca_file: Option<PathBuf>,

    /// A duration that is the default timeout for non-long-running requests (Go duration: 60s, 1m).
    #[arg(long, default_value = "60s", value_parser = crate::api::duration::parse_duration)]
    pub request_timeout: Duration,

    /// frontdoor: how long a connection may take from accept to the end of its TLS handshake
    /// (Go duration); a connection that has not finished by then is closed. Go's net/http bounds
    /// the handshake the same way (kube-apiserver's bound is its 32s ReadHeaderTimeout). 0: no limit.
    #[arg(long, default_value = "10s", value_parser = crate::api::duration::parse_duration)]
    pub tls_handshake_timeout: Duration,

    /// List of allowed origins for CORS, comma separated. An allowed origin can be a regular
    /// expression to support subdomain matching. If empty, CORS is not enabled.
    #[arg(long, value_delimiter = ',', value_name = "REGEXES")]
    pub cors_allowed_origins: Vec<String>,

    /// Time to delay the termination. During that time the server keeps serving requests
    /// normally while /readyz returns failure, so load balancers stop routing to it.
    #[arg(long, default_value = "0s", value_parser = crate::api::duration::parse_duration)]
    pub shutdown_delay_duration: Duration,

    /// How long in-flight requests may take to drain after the shutdown delay before exit.
    #[arg(long, default_value = "60s", value_parser = crate::api::duration::parse_duration)]
    pub shutdown_drain_timeout: Duration,

    /// Directory for frontdoor's own state (the embedded store).
    #[arg(long, default_value = "data", value_name = "DIR")]
    pub data_dir: PathBuf,

    /// Directory for the development certs generated on embedded defaults.
    #[arg(long, default_value = "certs", value_name = "DIR")]
    pub cert_dir: PathBuf,

    /// Directory of default policy files, used for any policy flag that is not given.
    #[arg(long, default_value = "policies", value_name = "DIR")]
    pub policy_dir: PathBuf,

    /// An extra plain-HTTP listener serving only /metrics, for scrapers (e.g. 127.0.0.1:9090).
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_bind_address: Option<SocketAddr>,

    /// Worker threads for the request runtime (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub worker_threads: usize,

    /// Enable profiling via web interface host:port/debug/pprof/.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub profiling: bool,

    #[command(flatten)]
    pub logging: crate::logging::LoggingArgs,
    #[command(flatten)]
    pub tracing: crate::otel::TracingArgs,
    #[command(flatten)]
    pub authn: crate::authn::AuthnArgs,
    #[command(flatten)]
    pub authz: crate::authz::AuthzArgs,
    #[command(flatten)]
    pub audit: crate::audit::AuditArgs,
    #[command(flatten)]
    pub flowcontrol: crate::flowcontrol::FlowControlArgs,
    #[command(flatten)]
    pub proxy: crate::router::ProxyArgs,
    #[command(flatten)]
    pub store: crate::store::StoreArgs,
}

impl ServeArgs {
    /// Whether the gateway runs on its embedded development defaults (no serving cert given).
    pub fn embedded_defaults(&self) -> bool {
        self.tls_cert_file.is_none()
    }

    /// A file in --policy-dir, when it exists: the default for a policy flag left unset.
    pub fn default_policy(&self, name: &str) -> Option<PathBuf> {
        let p = self.policy_dir.join(name);
        p.exists().then_some(p)
    }

    /// The dev cert directory's file `name`.
    pub fn dev_cert(&self, name: &str) -> PathBuf {
        self.cert_dir.join(name)
    }

    /// kube's options `Complete()`: fills every default that one flag group takes from
    /// another (the dev PKI under --cert-dir on embedded defaults, policy files in
    /// --policy-dir), so that each stage is then built from its own group alone.
    pub fn complete(&mut self) {
        let dev_serving = self.embedded_defaults() || self.tls_cert_file == Some(self.dev_cert("apiserver.crt"));
        if self.embedded_defaults() {
            self.tls_cert_file = Some(self.dev_cert("apiserver.crt"));
            self.tls_private_key_file = Some(self.dev_cert("apiserver.key"));
            if self.client_ca_file.is_none() {
                self.client_ca_file = Some(self.dev_cert("ca.crt"));
            }
            crate::authn::embedded_defaults(&mut self.authn, &self.cert_dir, &self.policy_dir);
        }
        if dev_serving && self.store.root_ca_file.is_none() {
            self.store.root_ca_file = Some(self.dev_cert("ca.crt"));
        }
        let p = &mut self.proxy;
        if dev_serving && p.proxy_client_cert_file.is_none() && p.proxy_client_key_file.is_none() {
            p.proxy_client_cert_file = Some(self.cert_dir.join("front-proxy-client.crt"));
            p.proxy_client_key_file = Some(self.cert_dir.join("front-proxy-client.key"));
        }
        if self.proxy.upstream.enabled() && self.store.builtins.is_none() {
            let modes = &self.authz.authorization_mode;
            let rbac = match &self.authz.authorization_config {
                // the configuration's types; one that does not read fails the start later anyway
                Some(f) => crate::authz::chain::types_in_config(f).map_or(true, |t| t.iter().any(|t| t == "RBAC")),
                None => modes.is_empty() || modes.iter().any(|m| m == "RBAC"),
            };
            self.store.builtins = Some(crate::store::resources::Builtins { rbac });
        }
        let dir = &self.policy_dir;
        let default = |flag: &mut Option<PathBuf>, name: &str| {
            if flag.is_none() {
                *flag = Some(dir.join(name)).filter(|p| p.exists());
            }
        };
        default(&mut self.proxy.apiservices_file, "apiservices.yaml");
        default(&mut self.audit.audit_policy_file, "audit-policy.yaml");
        default(&mut self.authz.default_abac_policy_file, "abac.jsonl");
        if self.flowcontrol.flowcontrol_config.is_empty() {
            self.flowcontrol.flowcontrol_config = self.default_policy("flowcontrol").into_iter().collect();
        }
        if self.authz.rbac_policy.is_empty() {
            self.authz.rbac_policy = self.default_policy("rbac").into_iter().collect();
        }
    }
}

pub use crate::flags::parse_args;

/// Parses argv, merging a `--config` file under the command-line flags.
pub fn parse_cli() -> Result<Cli, String> {
    let argv: Vec<String> = std::env::args().collect();
    parse_from(argv)
}

pub fn parse_from(argv: Vec<String>) -> Result<Cli, String> {
    let cmd = Cli::command();
    let matches = cmd.clone().try_get_matches_from(&argv).map_err(|e| e.render().to_string())?;
    if let Some(("serve", sub)) = matches.subcommand() {
        if let Some(file) = sub.get_one::<PathBuf>("config") {
            let serve_cmd = cmd.find_subcommand("serve").expect("serve subcommand");
            let from_file = config_file_args(file, serve_cmd, sub)?;
            // file settings first, so that command-line flags (later) override them
            let pos = argv.iter().position(|a| a == "serve").unwrap_or(1);
            let mut merged = argv[..=pos].to_vec();
            merged.extend(from_file);
            merged.extend(argv[pos + 1..].iter().cloned());
            let matches = cmd
                .try_get_matches_from(&merged)
                .map_err(|e| format!("{}(settings from --config {})", e.render(), file.display()))?;
            return Cli::from_arg_matches(&matches).map_err(|e| e.to_string());
        }
    }
    Cli::from_arg_matches(&matches).map_err(|e| e.to_string())
}

/// Turns a YAML mapping of flag names to values into `--flag=value` arguments, refusing
/// any key that is not a `serve` flag. Settings also given on the command line are left out,
/// so the flag replaces them (clap refuses a single-valued flag given twice).
fn config_file_args(file: &Path, serve: &clap::Command, given: &clap::ArgMatches) -> Result<Vec<String>, String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("error: cannot read --config {}: {e}", file.display()))?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("error: --config {}: {e}", file.display()))?;
    let map = match doc {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => return Ok(Vec::new()),
        _ => return Err(format!("error: --config {}: expected a mapping of flag names to values", file.display())),
    };
    let known: Vec<(String, &clap::Id)> =
        serve.get_arguments().filter_map(|a| a.get_long().map(|l| (l.to_string(), a.get_id()))).collect();
    let mut out = Vec::new();
    for (k, v) in map {
        let key = match k {
            serde_yaml::Value::String(s) => s,
            other => return Err(format!("error: --config {}: key {other:?} is not a flag name", file.display())),
        };
        let Some((_, id)) = known.iter().find(|(long, _)| *long == key && key != "config") else {
            return Err(format!(
                "error: --config {}: unknown setting {key:?} (not a `frontdoor serve` flag)",
                file.display()
            ));
        };
        if given.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine) {
            continue;
        }
        let values = match v {
            serde_yaml::Value::Sequence(items) => {
                items.into_iter().map(|i| scalar(&key, i, file)).collect::<Result<Vec<_>, _>>()?
            }
            other => vec![scalar(&key, other, file)?],
        };
        for value in values {
            out.push(format!("--{key}={value}"));
        }
    }
    Ok(out)
}

fn scalar(key: &str, v: serde_yaml::Value, file: &Path) -> Result<String, String> {
    match v {
        serde_yaml::Value::String(s) => Ok(s),
        serde_yaml::Value::Number(n) => Ok(n.to_string()),
        serde_yaml::Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!(
            "error: --config {}: setting {key:?} must be a string, number, boolean or a list of them",
            file.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(argv: &[&str]) -> Result<ServeArgs, String> {
        let argv = argv.iter().map(|s| s.to_string()).collect();
        match parse_from(argv)?.command {
            Command::Serve(a) => Ok(*a),
            _ => Err("not serve".into()),
        }
    }

    #[test]
    fn upstream_mode_keeps_rbac_where_the_authorizer_reads_it() {
        let builtins = |extra: &[&str]| {
            let mut argv = vec!["frontdoor", "serve", "--policy-dir", "/nonexistent"];
            argv.extend_from_slice(extra);
            let mut a = serve(&argv).unwrap();
            a.complete();
            a.store.builtins
        };
        use crate::store::resources::Builtins;
        assert_eq!(builtins(&[]), None, "no upstream: every built-in stays");
        let up = ["--upstream-apiserver", "https://10.0.0.1:6443"];
        assert_eq!(builtins(&up), Some(Builtins { rbac: true }));
        assert_eq!(
            builtins(&[&up[..], &["--authorization-mode", "Upstream"]].concat()),
            Some(Builtins { rbac: false })
        );
        assert_eq!(
            builtins(&[&up[..], &["--authorization-mode", "RBAC,Upstream"]].concat()),
            Some(Builtins { rbac: true })
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("authz.yaml");
        std::fs::write(&f, "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthorizationConfiguration\nauthorizers:\n- type: Upstream\n").unwrap();
        let cfg = ["--authorization-config", f.to_str().unwrap()];
        assert_eq!(crate::authz::chain::types_in_config(&f).unwrap(), vec!["Upstream"]);
        assert_eq!(builtins(&[&up[..], &cfg[..]].concat()), Some(Builtins { rbac: false }));
    }

    #[test]
    fn config_file_is_overridden_by_flags() {
        let dir = std::env::temp_dir().join(format!("fd-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.yaml");
        std::fs::write(&f, "secure-port: 7443\nrequest-timeout: 5s\ncors-allowed-origins: [a, b]\n").unwrap();
        let a = serve(&["frontdoor", "serve", "--config", f.to_str().unwrap(), "--secure-port", "8443"]).unwrap();
        assert_eq!(a.secure_port, 8443);
        assert_eq!(a.request_timeout, Duration::from_secs(5));
        assert_eq!(a.cors_allowed_origins, vec!["a", "b"]);
        let a = serve(&["frontdoor", "serve", "--config", f.to_str().unwrap(), "--cors-allowed-origins=c"]).unwrap();
        assert_eq!(a.cors_allowed_origins, vec!["c"], "a list flag replaces the file's list");
        assert_eq!(a.secure_port, 7443);

        std::fs::write(&f, "no-such-flag: 1\n").unwrap();
        let err = serve(&["frontdoor", "serve", "--config", f.to_str().unwrap()]).unwrap_err();
        assert!(err.contains("no-such-flag"), "{err}");
    }

    #[test]
    fn a_repeated_flag_takes_its_last_value_and_lists_accumulate() {
        let a = serve(&["frontdoor", "serve", "--request-timeout", "2s", "--request-timeout", "30s"]).unwrap();
        assert_eq!(a.request_timeout, Duration::from_secs(30));
        let a = serve(&["frontdoor", "serve", "--cors-allowed-origins", "a", "--cors-allowed-origins", "b,c"]).unwrap();
        assert_eq!(a.cors_allowed_origins, vec!["a", "b", "c"]);
    }

    #[test]
    fn unknown_and_malformed_flags_are_named() {
        let err = serve(&["frontdoor", "serve", "--bogus"]).unwrap_err();
        assert!(err.contains("--bogus"), "{err}");
        let err = serve(&["frontdoor", "serve", "--request-timeout", "soon"]).unwrap_err();
        assert!(err.contains("request-timeout"), "{err}");
    }
}
