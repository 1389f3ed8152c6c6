//! A small OTLP gRPC collector (opentelemetry-proto's tonic service): records every span
//! exported to it, for the tracing tests.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<Vec<(String, Span)>>>);

#[tonic::async_trait]
impl TraceService for Recorder {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                spans.extend(ss.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

pub struct Collector {
    pub port: u16,
    spans: Recorder,
    _rt: tokio::runtime::Runtime,
}

impl Collector {
    pub fn start() -> Collector {
        let port = super::free_port();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let spans = Recorder::default();
        let service = TraceServiceServer::new(spans.clone());
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        rt.spawn(tonic::transport::Server::builder().add_service(service).serve(addr));
        super::wait_until("the collector listens", Duration::from_secs(10), || {
            std::net::TcpStream::connect(addr).is_ok()
        });
        Collector { port, spans, _rt: rt }
    }

    /// Every span received so far, with its resource's service.name.
    pub fn spans(&self) -> Vec<(String, Span)> {
        self.spans.0.lock().unwrap().clone()
    }

    /// The spans of trace `trace_id` (hex) once `n` have arrived (the exporter batches every 5 s).
    pub fn trace(&self, trace_id: &str, n: usize) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found: Vec<Span> =
                self.spans().into_iter().map(|(_, s)| s).filter(|s| hex(&s.trace_id) == trace_id).collect();
            if found.len() >= n || Instant::now() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A string or integer attribute of a span, as text.
pub fn attr(span: &Span, key: &str) -> Option<String> {
    let v = span.attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()?;
    Some(match v {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    })
}
