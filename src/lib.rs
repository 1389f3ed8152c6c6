//! frontdoor: a front-door gateway for Kubernetes-style APIs. See DESIGN.md and README.md.

pub mod api;
pub mod audit;
pub mod authn;
pub mod authz;
pub mod buffered;
pub mod certs;
pub mod config;
pub mod connection;
pub mod context;
pub mod endpoints;
pub mod filters;
pub mod flags;
pub mod flowcontrol;
pub mod http_client;
pub mod impersonation;
pub mod kubeconfig;
pub mod logging;
pub mod metrics;
pub mod otel;
pub mod policy_check;
pub mod reload;
pub mod request_info;
pub mod router;
pub mod server;
pub mod store;
pub mod tls;
