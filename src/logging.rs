//! The process log, with kube-apiserver's flags: `--logging-format text|json` and klog's `-v`
//! verbosity. At `-v 3` and above every request gets one line (kube's httplog logs requests at
//! V(3)); below, only what the server does. `FRONTDOOR_LOG` (an env-filter) overrides the level.
//! A request line carries the audit ID, verb, URI, user and code, never a credential; pingora's
//! own debug lines, which quote request heads (tokens) and proxied bodies (secrets), are never
//! written, whatever `FRONTDOOR_LOG` asks for.

use clap::{Args, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct LoggingArgs {
    /// Sets the log format. Permitted formats: "json", "text".
    #[arg(long, value_enum, default_value = "text")]
    pub logging_format: Format,
    /// Number for the log level verbosity (klog's): 3 and above log every request.
    #[arg(short = 'v', long = "v", default_value_t = 0, value_name = "LEVEL")]
    pub verbosity: u8,
    /// frontdoor: a request that takes longer is logged with the time each stage took, in
    /// kube's `Trace[id]: ...` form (kube's LogIfLong). 0: never.
    #[arg(long, default_value = "500ms", value_parser = crate::api::duration::parse_duration)]
    pub request_trace_threshold: std::time::Duration,
}

impl Default for LoggingArgs {
    fn default() -> Self {
        LoggingArgs {
            logging_format: Format::Text,
            verbosity: 0,
            request_trace_threshold: std::time::Duration::from_millis(500),
        }
    }
}

/// The env-filter a verbosity stands for.
pub fn filter_for(verbosity: u8) -> &'static str {
    match verbosity {
        0..=2 => "info,pingora=warn",
        3..=4 => "info,frontdoor::filters::request_log=debug,pingora=warn",
        _ => "debug,pingora=info",
    }
}

/// Whether an event may be written at all: pingora's debug and trace events may not (its
/// proxy logs a failed request's raw head, `Authorization` included, and every proxied body
/// at debug).
fn may_write(target: &str, level: &tracing::Level) -> bool {
    !(target.starts_with("pingora") && *level > tracing::Level::INFO)
}

/// Installs the process's subscriber: the format chosen, to stderr.
pub fn init(args: &LoggingArgs, default_filter: &str) {
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};
    let filter = tracing_subscriber::EnvFilter::try_from_env("FRONTDOOR_LOG").unwrap_or_else(|_| default_filter.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let cap = tracing_subscriber::filter::filter_fn(|m| may_write(m.target(), m.level()));
    // `init` also bridges the `log` crate, which pingora logs through
    match args.logging_format {
        Format::Text => builder.finish().with(cap).init(),
        Format::Json => builder.json().flatten_event(true).with_current_span(false).finish().with(cap).init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_three_logs_requests() {
        assert!(!filter_for(2).contains("request_log"));
        assert!(filter_for(3).contains("request_log=debug"));
        let a: LoggingArgs = crate::flags::parse_args(&["--logging-format", "json", "-v", "4"]).unwrap();
        assert_eq!((a.logging_format, a.verbosity), (Format::Json, 4));
        assert!(crate::flags::parse_args::<LoggingArgs>(&["--logging-format", "xml"]).is_err());
    }

    #[test]
    fn pingoras_debug_lines_are_never_written() {
        use tracing::Level;
        for target in ["pingora_proxy::proxy_h1", "pingora_core::protocols::http::v1::server", "pingora"] {
            assert!(!may_write(target, &Level::DEBUG) && !may_write(target, &Level::TRACE), "{target}");
            assert!(may_write(target, &Level::INFO) && may_write(target, &Level::ERROR), "{target}");
        }
        assert!(may_write("frontdoor::filters::request_log", &Level::DEBUG));
    }
}
