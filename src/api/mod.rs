//! Kubernetes API types frontdoor reads and writes on the wire.

pub mod decode;
pub mod documents;
pub mod duration;
pub mod field;
pub mod headers;
pub mod status;

pub use status::Status;
pub mod resource;

pub use resource::ApiResource;
