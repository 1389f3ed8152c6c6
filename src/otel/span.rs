//! A request's spans and their attributes: otelhttp's HTTP semantic conventions plus kube's own
//! (`http.target`, `audit-id`), and kube's span names (`GET /api/v1/namespaces/{:namespace}/pods`).

use crate::context::RequestContext;
use crate::request_info::RequestInfo;
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use pingora::http::RequestHeader;

/// The server span (in a context, the client span's parent) and the proxied request's client span.
pub struct RequestSpans {
    pub server: Context,
    pub client: Option<Context>,
}

impl RequestSpans {
    pub fn new(server: Context) -> RequestSpans {
        RequestSpans { server, client: None }
    }

    /// The server span's trace and span ids (hex), for logs and tests.
    pub fn ids(&self) -> (String, String) {
        let span = self.server.span();
        let sc = span.span_context();
        (sc.trace_id().to_string(), sc.span_id().to_string())
    }

    /// Ends both spans with the response's code: the server span is an error from 500 on
    /// (otelhttp's handler), the client span from 400 on (its transport).
    pub fn end(self, code: u16) {
        if let Some(client) = self.client {
            end(&client, code, 400);
        }
        end(&self.server, code, 500);
    }
}

fn end(cx: &Context, code: u16, error_from: u16) {
    let span = cx.span();
    if code != 0 {
        span.set_attribute(KeyValue::new("http.response.status_code", i64::from(code)));
        if code >= error_from {
            span.set_status(Status::error(""));
        }
    }
    span.end();
}

/// kube's `WithSpanNameFormatter`: the method for a non-resource request, else the method and
/// the route with the namespace and name left out.
pub fn server_name(method: &str, info: &RequestInfo) -> String {
    if !info.is_resource_request {
        return method.to_string();
    }
    let mut name = format!("{method} /{}", info.api_prefix());
    if !info.api_group().is_empty() {
        name.push('/');
        name.push_str(info.api_group());
    }
    name.push('/');
    name.push_str(info.api_version());
    if !info.namespace().is_empty() {
        name.push_str("/namespaces/{:namespace}");
    }
    name.push('/');
    name.push_str(info.resource());
    if !info.name().is_empty() {
        name.push_str("/{:name}");
    }
    if !info.subresource().is_empty() {
        name.push('/');
        name.push_str(info.subresource());
    }
    name
}

fn header<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

fn protocol_version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        _ => "1.1",
    }
}

/// `host[:port]` split as otelhttp reports `server.address` and `server.port`.
fn host_attributes(host: &str, out: &mut Vec<KeyValue>) {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, _)) if !n.ends_with(']') && n.contains(':') => (host, None),
        Some((n, p)) => (n, p.parse::<i64>().ok()),
        None => (host, None),
    };
    out.push(KeyValue::new("server.address", name.trim_start_matches('[').trim_end_matches(']').to_string()));
    if let Some(p) = port {
        out.push(KeyValue::new("server.port", p));
    }
}

/// What the server span is created with.
pub fn server_attributes(req: &RequestHeader, ctx: &RequestContext) -> Vec<KeyValue> {
    let mut a = vec![
        KeyValue::new("http.request.method", req.method.to_string()),
        KeyValue::new("url.scheme", "https"),
        KeyValue::new("url.path", req.uri.path().to_string()),
        KeyValue::new("network.protocol.version", protocol_version(req.version)),
        // kube's own: the request URI and the audit ID (its first 64 characters)
        KeyValue::new("http.target", ctx.incoming.request_uri().to_string()),
        KeyValue::new("audit-id", ctx.incoming.audit_id().chars().take(64).collect::<String>()),
    ];
    if let Some(q) = req.uri.query() {
        a.push(KeyValue::new("url.query", q.to_string()));
    }
    if let Some(host) = header(req, "host").or(req.uri.host()) {
        host_attributes(host, &mut a);
    }
    let incoming = &ctx.incoming;
    if !incoming.user_agent().is_empty() {
        a.push(KeyValue::new("user_agent.original", incoming.user_agent().to_string()));
    }
    if let Some(client) = incoming.source_ips().first() {
        a.push(KeyValue::new("client.address", client.to_string()));
    }
    if let Some(peer) = incoming.source_ips().last() {
        a.push(KeyValue::new("network.peer.address", peer.to_string()));
    }
    a
}

/// What the client span of a proxied request is created with (the request as it goes out).
pub fn client_attributes(upstream: &RequestHeader) -> Vec<KeyValue> {
    let mut a = vec![
        KeyValue::new("http.request.method", upstream.method.to_string()),
        KeyValue::new("network.protocol.version", protocol_version(upstream.version)),
    ];
    let host = header(upstream, "host").unwrap_or_default();
    let target = upstream.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    a.push(KeyValue::new("url.full", format!("https://{host}{target}")));
    host_attributes(host, &mut a);
    a
}

/// Ends the request's spans, if it has any (when the request is logged).
pub fn finish(ctx: &mut RequestContext, code: u16) {
    if let Some(spans) = ctx.spans.take() {
        spans.end(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(method: &str, path: &str) -> String {
        server_name(method, &RequestInfo::resolve(method, path, None).unwrap())
    }

    #[test]
    fn span_names_are_kubes() {
        assert_eq!(
            name("GET", "/api/v1/namespaces/default/pods/p1/log"),
            "GET /api/v1/namespaces/{:namespace}/pods/{:name}/log"
        );
        assert_eq!(name("GET", "/apis/apps/v1/deployments"), "GET /apis/apps/v1/deployments");
        assert_eq!(
            name("POST", "/apis/wardle.example.com/v1alpha1/namespaces/x/flunders"),
            "POST /apis/wardle.example.com/v1alpha1/namespaces/{:namespace}/flunders"
        );
        assert_eq!(name("GET", "/healthz"), "GET");
        assert_eq!(name("GET", "/apis"), "GET");
    }

    #[test]
    fn host_splits_as_otelhttp() {
        let attrs = |h: &str| {
            let mut v = Vec::new();
            host_attributes(h, &mut v);
            v.into_iter().map(|kv| format!("{}={}", kv.key, kv.value)).collect::<Vec<_>>()
        };
        assert_eq!(attrs("example.com:6443"), ["server.address=example.com", "server.port=6443"]);
        assert_eq!(attrs("example.com"), ["server.address=example.com"]);
        assert_eq!(attrs("[::1]:443"), ["server.address=::1", "server.port=443"]);
        assert_eq!(attrs("::1"), ["server.address=::1"]);
    }
}
