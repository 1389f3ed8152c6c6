//! The `serve` settings: kube-apiserver's flag names where the meaning is the same, and a
//! `--config` YAML file holding the same settings by flag name (flags override it).

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "frontdoor", version, about = "A front-door gateway for Kubernetes-style APIs")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway. With no flags it runs on embedded defaults: development certs under
    /// --cert-dir (generated if missing), policies from ./policies, 127.0.0.1:6443.
    Serve(Box<ServeArgs>),
    /// Manage development certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Print the version.
    Version,
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
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// List of allowed origins for CORS, comma separated. An allowed origin can be a regular
    /// expression to support subdomain matching. If empty, CORS is not enabled.
    #[arg(long, value_delimiter = ',', value_name = "REGEXES")]
    pub cors_allowed_origins: Vec<String>,

    /// Time to delay the termination. During that time the server keeps serving requests
    /// normally while /readyz returns failure, so load balancers stop routing to it.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay_duration: Duration,

    /// How long in-flight requests may take to drain after the shutdown delay before exit.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
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
}

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
            let from_file = config_file_args(file, serve_cmd)?;
            // file settings first, so that command-line flags (later) override them
            let pos = argv.iter().position(|a| a == "serve").unwrap_or(1);
            let mut merged = argv[..=pos].to_vec();
            merged.extend(from_file);
            merged.extend(argv[pos + 1..].iter().cloned());
            let matches = cmd.try_get_matches_from(&merged).map_err(|e| {
                format!("{}(settings from --config {})", e.render(), file.display())
            })?;
            return Cli::from_arg_matches(&matches).map_err(|e| e.to_string());
        }
    }
    Cli::from_arg_matches(&matches).map_err(|e| e.to_string())
}

/// Turns a YAML mapping of flag names to values into `--flag=value` arguments, refusing
/// any key that is not a `serve` flag.
fn config_file_args(file: &Path, serve: &clap::Command) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("error: cannot read --config {}: {e}", file.display()))?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|e| format!("error: --config {}: {e}", file.display()))?;
    let map = match doc {
        serde_yaml::Value::Mapping(m) => m,
        serde_yaml::Value::Null => return Ok(Vec::new()),
        _ => return Err(format!("error: --config {}: expected a mapping of flag names to values", file.display())),
    };
    let known: Vec<String> = serve.get_arguments().filter_map(|a| a.get_long().map(str::to_string)).collect();
    let mut out = Vec::new();
    for (k, v) in map {
        let key = match k {
            serde_yaml::Value::String(s) => s,
            other => return Err(format!("error: --config {}: key {other:?} is not a flag name", file.display())),
        };
        if key == "config" || !known.contains(&key) {
            return Err(format!("error: --config {}: unknown setting {key:?} (not a `frontdoor serve` flag)", file.display()));
        }
        let values = match v {
            serde_yaml::Value::Sequence(items) => items.into_iter().map(|i| scalar(&key, i, file)).collect::<Result<Vec<_>, _>>()?,
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
        _ => Err(format!("error: --config {}: setting {key:?} must be a string, number, boolean or a list of them", file.display())),
    }
}

/// Parses a Go duration (`300ms`, `1.5s`, `2m30s`, `1h`, `0`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_end == 0 {
            return Err(format!("invalid duration {s:?}"));
        }
        let n: f64 = rest[..num_end].parse().map_err(|_| format!("invalid duration {s:?}"))?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("missing unit in duration {s:?}")),
            u => return Err(format!("unknown unit {u:?} in duration {s:?}")),
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5x").is_err());
    }

    fn serve(argv: &[&str]) -> Result<ServeArgs, String> {
        let argv = argv.iter().map(|s| s.to_string()).collect();
        match parse_from(argv)?.command {
            Command::Serve(a) => Ok(*a),
            _ => Err("not serve".into()),
        }
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

        std::fs::write(&f, "no-such-flag: 1\n").unwrap();
        let err = serve(&["frontdoor", "serve", "--config", f.to_str().unwrap()]).unwrap_err();
        assert!(err.contains("no-such-flag"), "{err}");
    }

    #[test]
    fn unknown_and_malformed_flags_are_named() {
        let err = serve(&["frontdoor", "serve", "--bogus"]).unwrap_err();
        assert!(err.contains("--bogus"), "{err}");
        let err = serve(&["frontdoor", "serve", "--request-timeout", "soon"]).unwrap_err();
        assert!(err.contains("request-timeout"), "{err}");
    }
}
