//! kube's `TracingConfiguration` (`--tracing-config-file`, k8s.io/apiserver
//! `apiserver.config.k8s.io/{v1,v1beta1,v1alpha1}`), read and validated as kube-apiserver does
//! (k8s.io/apiserver/pkg/server/options/tracing.go, k8s.io/component-base/tracing/api/v1),
//! with kube's error texts.

use serde::Deserialize;
use std::path::Path;

/// OTLP gRPC's default collector address (otlptracegrpc's, kube's default).
pub const DEFAULT_ENDPOINT: &str = "localhost:4317";
const MAX_SAMPLING_RATE_PER_MILLION: i64 = 1_000_000;
const GROUP: &str = "apiserver.config.k8s.io";
const VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha1"];

/// The file's settings, as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TracingConfiguration {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    /// The collector's gRPC target (`host:port`, `dns://[authority]/host:port`, ...).
    pub endpoint: Option<String>,
    /// Spans per million requests without a sampled parent; 0 (the default) traces only
    /// requests whose incoming parent span is sampled.
    pub sampling_rate_per_million: Option<i64>,
}

impl TracingConfiguration {
    /// kube's `ReadTracingConfiguration` and `ValidateTracingConfiguration`, as `ApplyTo`
    /// reports them.
    pub fn load(path: &Path) -> anyhow::Result<TracingConfiguration> {
        if !path.exists() {
            anyhow::bail!("tracing-config-file {} does not exist", path.display());
        }
        let data = crate::api::documents::read_text(path).map(String::into_bytes).map_err(|e| {
            anyhow::anyhow!(
                "failed to read tracing config: unable to read tracing configuration from {:?}: {e}",
                path.display().to_string()
            )
        })?;
        let config = Self::decode(&data).map_err(|e| {
            anyhow::anyhow!("failed to read tracing config: unable to decode tracing configuration data: {e}")
        })?;
        let errs = config.validate();
        if !errs.is_empty() {
            anyhow::bail!("failed to validate tracing configuration: {}", aggregate(&errs));
        }
        Ok(config)
    }

    /// Decodes JSON or YAML strictly (kube's codec has `EnableStrict`): the group and kind
    /// must be kube's, and an unknown field is an error.
    pub fn decode(data: &[u8]) -> Result<TracingConfiguration, String> {
        let config: TracingConfiguration = serde_yaml::from_slice(data).map_err(|e| {
            let e = e.to_string();
            match e.strip_prefix("unknown field ") {
                Some(rest) => {
                    let name = rest.split(',').next().unwrap_or(rest).trim_matches('`');
                    format!("strict decoding error: unknown field {name:?}")
                }
                None => e,
            }
        })?;
        if config.kind.is_empty() {
            return Err(format!("Object 'Kind' is missing in '{}'", String::from_utf8_lossy(data).trim()));
        }
        let version = config.api_version.strip_prefix(GROUP).and_then(|v| v.strip_prefix('/'));
        if config.kind != "TracingConfiguration" || !version.is_some_and(|v| VERSIONS.contains(&v)) {
            return Err(format!("no kind {:?} is registered for version {:?}", config.kind, config.api_version));
        }
        Ok(config)
    }

    /// component-base's `ValidateTracingConfiguration`: each error as kube's `field.Error`.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if let Some(rate) = self.sampling_rate_per_million {
            let invalid = |msg: &str| format!("samplingRatePerMillion: Invalid value: {rate}: {msg}");
            if rate < 0 {
                errs.push(invalid("sampling rate must be positive"));
            }
            if rate > MAX_SAMPLING_RATE_PER_MILLION {
                errs.push(invalid("sampling rate per million must be less than or equal to one million"));
            }
        }
        if let Some(endpoint) = &self.endpoint {
            let endpoint = if endpoint.contains("//") { endpoint.clone() } else { format!("dns://{endpoint}") };
            match url::Url::parse(&endpoint) {
                Err(e) => errs.push(format!("endpoint: Invalid value: {endpoint:?}: parse {endpoint:?}: {e}")),
                Ok(u) if !matches!(u.scheme(), "dns" | "unix" | "unix-abstract") => errs.push(format!(
                    "endpoint: Invalid value: {endpoint:?}: unsupported scheme: {}.  Options are none, dns, unix, or unix-abstract.  See https://github.com/grpc/grpc/blob/master/doc/naming.md",
                    u.scheme()
                )),
                Ok(_) => {}
            }
        }
        errs
    }

    /// The sampling rate as a ratio (0: only requests with a sampled parent).
    pub fn sampling_ratio(&self) -> f64 {
        self.sampling_rate_per_million.unwrap_or(0).clamp(0, MAX_SAMPLING_RATE_PER_MILLION) as f64 / 1e6
    }

    /// Where to dial the collector, from the gRPC target (gRPC's naming: `host:port`,
    /// `dns:[//authority/]host:port`, `unix:path`, `unix:///absolute-path`,
    /// `unix-abstract:name`).
    pub fn dial_target(&self) -> Result<Target, String> {
        let endpoint = self.endpoint.as_deref().unwrap_or(DEFAULT_ENDPOINT);
        let Some((scheme, rest)) =
            endpoint.split_once(':').filter(|(s, _)| matches!(*s, "dns" | "unix" | "unix-abstract"))
        else {
            return Ok(Target::Tcp(format!("http://{endpoint}")));
        };
        let empty = || format!("endpoint {endpoint:?}: no address");
        match scheme {
            // the authority is the DNS server to ask, left to the system resolver here
            "dns" => {
                let target = match rest.strip_prefix("//") {
                    Some(r) => r.split_once('/').map_or(r, |(_, t)| t),
                    None => rest,
                };
                Some(target).filter(|t| !t.is_empty()).map(|t| Target::Tcp(format!("http://{t}"))).ok_or_else(empty)
            }
            "unix" => {
                let path = rest.strip_prefix("//").unwrap_or(rest);
                Some(path).filter(|p| !p.is_empty()).map(|p| Target::Unix(p.into())).ok_or_else(empty)
            }
            // grpc-go's: the URL's path (`unix-abstract:///name` is the name `/name`), or the
            // opaque part (`unix-abstract:name`, which kube's validation refuses)
            _ => {
                let name = match rest.strip_prefix("//") {
                    Some(r) => r.find('/').map_or("", |i| &r[i..]),
                    None => rest,
                };
                Some(name).filter(|n| !n.is_empty()).map(|n| Target::UnixAbstract(n.to_string())).ok_or_else(empty)
            }
        }
    }
}

/// A collector's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `http://host:port`, as tonic dials it.
    Tcp(String),
    Unix(std::path::PathBuf),
    /// A Linux abstract socket's name.
    UnixAbstract(String),
}

/// kube's `ErrorList.ToAggregate()` text: one error as is, several in brackets.
fn aggregate(errs: &[String]) -> String {
    match errs {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(body: &str) -> String {
        format!("apiVersion: apiserver.config.k8s.io/v1\nkind: TracingConfiguration\n{body}")
    }

    #[test]
    fn every_served_version_decodes() {
        for v in ["v1", "v1beta1", "v1alpha1"] {
            let c = TracingConfiguration::decode(
                format!(
                    "apiVersion: apiserver.config.k8s.io/{v}\nkind: TracingConfiguration\nsamplingRatePerMillion: 42\n"
                )
                .as_bytes(),
            )
            .unwrap();
            assert_eq!(c.sampling_rate_per_million, Some(42));
            assert_eq!(c.sampling_ratio(), 42e-6);
        }
        let json =
            br#"{"apiVersion":"apiserver.config.k8s.io/v1","kind":"TracingConfiguration","endpoint":"otel:4317"}"#;
        assert_eq!(
            TracingConfiguration::decode(json).unwrap().dial_target(),
            Ok(Target::Tcp("http://otel:4317".into()))
        );
    }

    #[test]
    fn wrong_kind_version_or_field_is_refused() {
        let e = TracingConfiguration::decode(b"apiVersion: apiserver.config.k8s.io/v2\nkind: TracingConfiguration\n")
            .unwrap_err();
        assert!(
            e.contains(r#"no kind "TracingConfiguration" is registered for version "apiserver.config.k8s.io/v2""#),
            "{e}"
        );
        let e = TracingConfiguration::decode(b"endpoint: x:1\n").unwrap_err();
        assert!(e.starts_with("Object 'Kind' is missing"), "{e}");
        let e = TracingConfiguration::decode(doc("samplingRate: 5\n").as_bytes()).unwrap_err();
        assert_eq!(e, r#"strict decoding error: unknown field "samplingRate""#);
    }

    #[test]
    fn validation_has_kubes_texts() {
        let c = |body: &str| TracingConfiguration::decode(doc(body).as_bytes()).unwrap().validate();
        assert!(c("samplingRatePerMillion: 1000000\nendpoint: localhost:4317\n").is_empty());
        assert_eq!(
            c("samplingRatePerMillion: 1000001\n"),
            ["samplingRatePerMillion: Invalid value: 1000001: sampling rate per million must be less than or equal to one million"]
        );
        assert_eq!(
            c("samplingRatePerMillion: -1\n"),
            ["samplingRatePerMillion: Invalid value: -1: sampling rate must be positive"]
        );
        let e = c("endpoint: http://collector:4317\n");
        assert_eq!(
            e,
            [
                r#"endpoint: Invalid value: "http://collector:4317": unsupported scheme: http.  Options are none, dns, unix, or unix-abstract.  See https://github.com/grpc/grpc/blob/master/doc/naming.md"#
            ]
        );
        assert!(c("endpoint: unix:///run/otel.sock\n").is_empty(), "kube accepts unix targets");
        assert!(c("endpoint: unix-abstract:///otel\n").is_empty());
        // without "//" kube parses dns://unix:..., whose port is not a number
        assert!(
            c("endpoint: unix:otel.sock\n")[0].starts_with(r#"endpoint: Invalid value: "dns://unix:otel.sock": parse"#)
        );
        assert_eq!(aggregate(&["a".into(), "b".into()]), "[a, b]");
    }

    #[test]
    fn load_reports_as_kube_apiserver() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.yaml");
        let e = TracingConfiguration::load(&missing).unwrap_err().to_string();
        assert_eq!(e, format!("tracing-config-file {} does not exist", missing.display()));
        let f = dir.path().join("t.yaml");
        std::fs::write(&f, doc("samplingRatePerMillion: 2000000\n")).unwrap();
        let e = TracingConfiguration::load(&f).unwrap_err().to_string();
        assert_eq!(e, "failed to validate tracing configuration: samplingRatePerMillion: Invalid value: 2000000: sampling rate per million must be less than or equal to one million");
        std::fs::write(&f, "kind: Policy\napiVersion: audit.k8s.io/v1\n").unwrap();
        let e = TracingConfiguration::load(&f).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "failed to read tracing config: unable to decode tracing configuration data: no kind \"Policy\""
            ),
            "{e}"
        );
    }

    #[test]
    fn dial_targets() {
        let t = |e: &str| TracingConfiguration { endpoint: Some(e.into()), ..Default::default() }.dial_target();
        let tcp = |a: &str| Ok(Target::Tcp(a.into()));
        assert_eq!(TracingConfiguration::default().dial_target(), tcp("http://localhost:4317"));
        assert_eq!(t("collector:4317"), tcp("http://collector:4317"));
        assert_eq!(t("dns:///collector:4317"), tcp("http://collector:4317"));
        assert_eq!(t("dns://8.8.8.8/collector:4317"), tcp("http://collector:4317"));
        assert_eq!(t("dns:collector:4317"), tcp("http://collector:4317"));
        assert_eq!(t("unix:///run/otel.sock"), Ok(Target::Unix("/run/otel.sock".into())));
        assert_eq!(t("unix:otel.sock"), Ok(Target::Unix("otel.sock".into())));
        assert_eq!(t("unix-abstract:otel"), Ok(Target::UnixAbstract("otel".into())));
        assert_eq!(t("unix-abstract:///otel"), Ok(Target::UnixAbstract("/otel".into())));
        assert!(t("unix:").is_err());
    }
}
