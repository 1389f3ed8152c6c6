//! The handler chain's filters, one module each, in kube-apiserver's order
//! (k8s.io/apiserver `DefaultBuildHandlerChain`). The chain itself is in `server.rs`.

pub mod cors;
pub mod detach;
pub mod framing;
pub mod panic_recovery;
pub mod request_body;
pub mod request_log;
pub mod request_received;
pub mod response;
pub mod shutdown;
pub mod timeout;
pub mod trace;

pub use response::Reply;
