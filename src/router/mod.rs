//! The router: which handler serves a request that passed the chain. Local paths
//! (health, version, metrics, discovery) and the store's resources are served by frontdoor;
//! API groups owned by a backend apiserver are proxied (aggregation).

pub mod discovery;
pub mod local;
pub mod proxy;

use crate::context::{RequestContext, Route};
use crate::server::Gateway;

/// Proxy and aggregation flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProxyArgs {}

/// An aggregated backend apiserver.
#[derive(Debug)]
pub struct Backend {
    pub group: String,
    pub version: String,
}

pub struct Router {}

impl Router {
    pub fn new(_args: &crate::config::ServeArgs) -> anyhow::Result<Self> {
        Ok(Router {})
    }

    /// Decides the route; everything not owned by a backend is local.
    pub fn route(&self, _gw: &Gateway, _ctx: &RequestContext) -> Route {
        Route::Local
    }
}
