//! Legacy discovery documents for the groups the store serves (`/api/v1`, `/apis`,
//! `/apis/<group>`, `/apis/<group>/<version>`), so kubectl can map kinds to resources.
//! The router's discovery (aggregation) may take these over; they are built only from
//! `gw.local_resources()`.

use crate::api::ApiResource;
use crate::context::RequestContext;
use crate::filters::response::send;
use crate::filters::Reply;
use crate::server::Gateway;
use pingora::proxy::Session;
use serde_json::{json, Value};

fn resource_list(group_version: &str, resources: &[&ApiResource]) -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

fn groups(resources: &[ApiResource]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for r in resources.iter().filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, vs)) if !vs.contains(&r.version) => vs.push(r.version.clone()),
            Some(_) => {}
            None => out.push((r.group.clone(), vec![r.version.clone()])),
        }
    }
    out
}

fn api_group(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": vs, "preferredVersion": vs[0]})
}

/// The discovery document for `path`, if it is one of the store's.
pub fn document(resources: &[ApiResource], path: &str) -> Option<Value> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", v] => {
            let rs: Vec<&ApiResource> = resources
                .iter()
                .filter(|r| r.group.is_empty() && r.version == *v)
                .collect();
            (!rs.is_empty()).then(|| resource_list(v, &rs))
        }
        ["apis"] => {
            let gs: Vec<Value> = groups(resources)
                .iter()
                .map(|(g, vs)| api_group(g, vs))
                .collect();
            Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs}))
        }
        ["apis", g] => groups(resources)
            .iter()
            .find(|(name, _)| name == g)
            .map(|(g, vs)| api_group(g, vs)),
        ["apis", g, v] => {
            let rs: Vec<&ApiResource> = resources
                .iter()
                .filter(|r| r.group == *g && r.version == *v)
                .collect();
            (!rs.is_empty()).then(|| resource_list(&format!("{g}/{v}"), &rs))
        }
        _ => None,
    }
}

/// Answers a discovery GET for the store's groups; None when `path` is not one.
pub async fn serve(
    gw: &Gateway,
    session: &mut Session,
    ctx: &mut RequestContext,
) -> Option<pingora::Result<()>> {
    let info = ctx.request_info.clone();
    if info.is_resource_request || !(info.verb == "get" || info.verb == "head") {
        return None;
    }
    let resources = gw.local_resources();
    let doc = document(&resources, &info.path)
        .or_else(|| super::openapi::document(&resources, &info.path))?;
    Some(send(gw, session, ctx, Reply::json(200, &doc)).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents() {
        let rs: Vec<ApiResource> = crate::store::resources::defaults()
            .iter()
            .flat_map(|d| d.api_resources())
            .collect();
        let core = document(&rs, "/api/v1").unwrap();
        assert!(core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "configmaps" && r["shortNames"][0] == "cm"));
        let apis = document(&rs, "/apis").unwrap();
        assert!(apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "rbac.authorization.k8s.io"));
        assert_eq!(
            document(&rs, "/apis/coordination.k8s.io/v1").unwrap()["resources"][0]["kind"],
            "Lease"
        );
        assert!(document(&rs, "/apis/nope/v1").is_none());
    }
}
