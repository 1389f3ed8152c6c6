//! OpenTelemetry tracing (`--tracing-config-file`) end to end: the real frontdoor exports its
//! spans over OTLP gRPC to a collector, and the aggregated backend receives a `traceparent`
//! of the request's trace.

use crate::aggregation::{setup, FLUNDERS};
use crate::common::otlp::{attr, hex, Collector};
use std::process::Command;

const SERVER: i32 = 2;
const CLIENT: i32 = 3;

fn config(dir: &std::path::Path, body: &str) -> String {
    let f = dir.join("tracing.yaml");
    std::fs::write(&f, format!("apiVersion: apiserver.config.k8s.io/v1\nkind: TracingConfiguration\n{body}")).unwrap();
    f.to_str().unwrap().to_string()
}

/// (trace id, span id, flags) of a traceparent header.
fn parse(traceparent: &str) -> (String, String, String) {
    let p: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(p.len(), 4, "{traceparent}");
    assert_eq!(p[0], "00");
    (p[1].to_string(), p[2].to_string(), p[3].to_string())
}

#[test]
fn spans_follow_the_request_to_the_backend() {
    let collector = Collector::start();
    let dir = tempfile::tempdir().unwrap();
    let file =
        config(dir.path(), &format!("endpoint: 127.0.0.1:{}\nsamplingRatePerMillion: 1000000\n", collector.port));
    let s = setup(&["--tracing-config-file", &file]);
    let admin = s.fd.admin_client();
    let backend_traceparent = || s.be.last(FLUNDERS).unwrap().all("traceparent");

    // a sampled parent from a system:masters user: the request's span is its child, and the
    // backend gets the trace with the proxy's client span as parent
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let r = admin
        .get(s.fd.url(FLUNDERS))
        .header("traceparent", format!("00-{trace}-{parent}-01"))
        .header("User-Agent", "otel-e2e/1.0")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = backend_traceparent();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (t, proxied_span, flags) = parse(&seen[0]);
    assert_eq!((t.as_str(), flags.as_str()), (trace, "01"));
    assert_ne!(proxied_span, parent, "the client's span id is not forwarded as is");

    let spans = collector.trace(trace, 2);
    let server = spans.iter().find(|s| s.kind == SERVER).unwrap_or_else(|| panic!("no server span: {spans:?}"));
    let client = spans.iter().find(|s| s.kind == CLIENT).unwrap_or_else(|| panic!("no client span: {spans:?}"));
    assert_eq!(server.name, "GET /apis/wardle.example.com/v1alpha1/namespaces/{:namespace}/flunders");
    assert_eq!(hex(&server.parent_span_id), parent);
    assert_eq!(attr(server, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(attr(server, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(attr(server, "http.target").as_deref(), Some(FLUNDERS));
    assert_eq!(attr(server, "url.path").as_deref(), Some(FLUNDERS));
    assert_eq!(attr(server, "user_agent.original").as_deref(), Some("otel-e2e/1.0"));
    assert_eq!(attr(server, "audit-id").map(|a| a.len()), Some(36), "the audit ID (a UUID)");
    assert!(server.end_time_unix_nano > server.start_time_unix_nano);
    assert_eq!(client.name, "HTTP GET");
    assert_eq!(hex(&client.parent_span_id), hex(&server.span_id));
    assert_eq!(hex(&client.span_id), proxied_span, "the backend's parent is the client span");
    assert_eq!(attr(client, "http.response.status_code").as_deref(), Some("200"));
    let service: Vec<String> =
        collector.spans().into_iter().filter(|(_, s)| hex(&s.trace_id) == trace).map(|(svc, _)| svc).collect();
    assert!(service.iter().all(|s| s.contains("frontdoor")), "{service:?}");

    // an unsampled parent stays unsampled (parent-based), yet the backend gets its trace
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    let r = admin.get(s.fd.url(FLUNDERS)).header("traceparent", format!("00-{unsampled}-b7ad6b7169203331-00")).send();
    assert_eq!(r.unwrap().status(), 200);
    let (t, span, flags) = parse(&backend_traceparent()[0]);
    assert_eq!((t.as_str(), flags.as_str()), (unsampled, "00"));
    assert_ne!(span, "b7ad6b7169203331");

    // anyone else's trace context is not trusted: a new trace, linked to theirs
    let foreign = "11111111111111111111111111111111";
    let r =
        s.fd.anonymous_client()
            .get(s.fd.url("/version"))
            .header("traceparent", format!("00-{foreign}-2222222222222222-01"))
            .send()
            .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let linked = loop {
        let linked = collector
            .spans()
            .into_iter()
            .map(|(_, s)| s)
            .find(|s| s.links.iter().any(|l| hex(&l.trace_id) == foreign && hex(&l.span_id) == "2222222222222222"));
        if linked.is_some() || std::time::Instant::now() > deadline {
            break linked.expect("a span linked to the anonymous client's context");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(linked.name, "GET");
    assert_ne!(hex(&linked.trace_id), foreign);
    assert!(linked.parent_span_id.is_empty(), "a new root");
    assert!(collector.trace(foreign, 1).is_empty());
    assert!(collector.trace(unsampled, 1).is_empty(), "the unsampled request is not exported");
}

#[test]
fn without_tracing_the_traceparent_passes_through() {
    let s = setup(&[]);
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = s.fd.admin_client().get(s.fd.url(FLUNDERS)).header("traceparent", tp).header("tracestate", "k=v").send();
    assert_eq!(r.unwrap().status(), 200);
    let seen = s.be.last(FLUNDERS).unwrap();
    assert_eq!(seen.all("traceparent"), [tp]);
    assert_eq!(seen.all("tracestate"), ["k=v"]);
}

#[test]
fn a_bad_tracing_config_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |file: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_frontdoor"))
            .current_dir(dir.path())
            .args(["serve", "--secure-port", "0", "--tracing-config-file", file])
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let e = serve(&config(dir.path(), "samplingRatePerMillion: 1000001\n"));
    assert!(
        e.contains("failed to validate tracing configuration: samplingRatePerMillion: Invalid value: 1000001: sampling rate per million must be less than or equal to one million"),
        "{e}"
    );
    let e = serve(&config(dir.path(), "endpoint: http://collector:4317\n"));
    assert!(e.contains("unsupported scheme: http.  Options are none, dns, unix, or unix-abstract."), "{e}");
    let e = serve("missing.yaml");
    assert!(e.contains("tracing-config-file missing.yaml does not exist"), "{e}");
}
