//! Authorization: Attributes in, Decision out.

use crate::authn::UserInfo;
use crate::request_info::RequestInfo;

/// What is being asked, as k8s.io/apiserver's `authorizer.Attributes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    pub user: UserInfo,
    pub verb: String,
    pub namespace: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    pub resource_request: bool,
    pub path: String,
}

impl Attributes {
    pub fn from_request(user: &UserInfo, info: &RequestInfo) -> Self {
        Attributes {
            user: user.clone(),
            verb: info.verb.clone(),
            namespace: info.namespace.clone(),
            api_group: info.api_group.clone(),
            api_version: info.api_version.clone(),
            resource: info.resource.clone(),
            subresource: info.subresource.clone(),
            name: info.name.clone(),
            resource_request: info.is_resource_request,
            path: info.path.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    NoOpinion,
}

impl Decision {
    /// The audit annotation value kube writes for `authorization.k8s.io/decision`.
    pub fn audit_value(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            _ => "forbid",
        }
    }
}

/// One authorizer in the chain. `reason` explains the decision for audit and 403 messages.
#[async_trait::async_trait]
pub trait Authorizer: Send + Sync {
    async fn authorize(&self, attrs: &Attributes) -> (Decision, String);
}

pub struct AlwaysAllow;
pub struct AlwaysDeny;

#[async_trait::async_trait]
impl Authorizer for AlwaysAllow {
    async fn authorize(&self, _: &Attributes) -> (Decision, String) {
        (Decision::Allow, String::new())
    }
}

#[async_trait::async_trait]
impl Authorizer for AlwaysDeny {
    async fn authorize(&self, _: &Attributes) -> (Decision, String) {
        (Decision::Deny, "Everything is forbidden.".into())
    }
}

/// Authorization flags (kube-apiserver's names).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AuthzArgs {}

/// The compiled authorizer chain.
pub struct Authorization {
    chain: Vec<Box<dyn Authorizer>>,
}

impl Authorization {
    pub fn new(_args: &crate::config::ServeArgs) -> anyhow::Result<Self> {
        Ok(Authorization { chain: vec![Box::new(AlwaysAllow)] })
    }

    /// Runs the chain: `system:masters` first, then the first Allow or Deny decides.
    pub async fn decide(&self, attrs: &Attributes) -> (Decision, String) {
        if attrs.user.is_system_master() {
            return (Decision::Allow, String::new());
        }
        for a in &self.chain {
            let (d, reason) = a.authorize(attrs).await;
            if d != Decision::NoOpinion {
                return (d, reason);
            }
        }
        (Decision::NoOpinion, String::new())
    }
}

/// The authorization filter: records the decision, or ends the request with kube's 403.
pub async fn authorize(gw: &crate::server::Gateway, ctx: &mut crate::context::RequestContext) -> Result<(), crate::api::Status> {
    let Some(user) = ctx.effective_user() else {
        return Err(crate::api::Status::unauthorized());
    };
    let attrs = Attributes::from_request(user, &ctx.request_info);
    let (decision, reason) = gw.authz.decide(&attrs).await;
    ctx.decision = Some((decision, reason.clone()));
    if decision == Decision::Allow {
        return Ok(());
    }
    Err(forbidden(&attrs, &reason))
}

/// kube's 403 Status for a request the chain did not allow.
pub fn forbidden(a: &Attributes, reason: &str) -> crate::api::Status {
    let who = format!("User \"{}\"", a.user.username);
    let mut msg = if !a.resource_request {
        format!("{who} cannot {} path \"{}\"", a.verb, a.path)
    } else {
        let res = if a.subresource.is_empty() { a.resource.clone() } else { format!("{}/{}", a.resource, a.subresource) };
        let scope = if a.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace \"{}\"", a.namespace)
        };
        format!("{who} cannot {} resource \"{res}\" in API group \"{}\" {scope}", a.verb, a.api_group)
    };
    if !reason.is_empty() {
        msg.push_str(": ");
        msg.push_str(reason);
    }
    if a.resource_request {
        crate::api::Status::forbidden(&a.api_group, &a.resource, &a.name, &msg)
    } else {
        crate::api::Status::forbidden("", "", "", &msg)
    }
}
