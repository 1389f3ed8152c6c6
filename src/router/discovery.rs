//! Discovery: `/api`, `/apis`, `/apis/<group>`, `/apis/<group>/<version>`.

use crate::server::Gateway;
use serde_json::json;

/// `/api`: the core group's versions.
pub fn api_versions(_gw: &Gateway, server_address: &str) -> serde_json::Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `/apis`: every named group.
pub fn api_group_list(_gw: &Gateway) -> serde_json::Value {
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
}
