//! The native object store. This is the slot the router calls for local resources; until
//! it lands no resource is served locally.

/// Store flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct StoreArgs {}

pub struct Store {}

impl Store {
    pub fn open(_args: &crate::config::ServeArgs) -> anyhow::Result<Self> {
        Ok(Store {})
    }

    /// The resources the store serves, for discovery.
    pub fn resources(&self) -> Vec<crate::api::ApiResource> {
        Vec::new()
    }

    /// Whether this group/version/resource is served from the store.
    pub fn serves(&self, _group: &str, _version: &str, _resource: &str) -> bool {
        false
    }
}

pub mod rest {
    use crate::api::Status;
    use crate::context::RequestContext;
    use crate::filters::response::send;
    use crate::server::Gateway;
    use pingora::proxy::Session;

    /// Serves a resource request from the store.
    pub async fn serve(gw: &Gateway, session: &mut Session, ctx: &mut RequestContext) -> pingora::Result<()> {
        send(gw, session, ctx, Status::path_not_found().into()).await
    }
}
