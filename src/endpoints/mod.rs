//! Endpoints frontdoor serves itself that are not API resources.

pub mod health;
pub mod pprof;
pub mod version;
