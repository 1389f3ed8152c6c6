//! Flow control: max-in-flight limits (and priority & fairness later). This is the slot
//! the chain calls; until it lands every request is admitted.

use crate::context::RequestContext;
use crate::filters::Reply;
use crate::server::Gateway;

/// In-flight flags (kube-apiserver's names).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FlowControlArgs {}

pub struct FlowControl {}

/// A seat held by a request; released on drop.
#[derive(Debug)]
pub struct Permit {}

impl FlowControl {
    pub fn new(_args: &crate::config::ServeArgs) -> anyhow::Result<Self> {
        Ok(FlowControl {})
    }
}

/// Admits the request (keeping its permit in the context) or answers 429.
pub fn admit(_gw: &Gateway, _ctx: &mut RequestContext) -> Result<(), Reply> {
    Ok(())
}
