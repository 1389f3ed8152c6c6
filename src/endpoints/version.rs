//! `/version` in kube's version.Info shape. The Kubernetes version is the API level
//! frontdoor speaks; frontdoor's own version rides in gitVersion's build metadata.

use serde::Serialize;

/// The Kubernetes minor version whose API and wire behaviour frontdoor follows.
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "31";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    pub major: &'static str,
    pub minor: &'static str,
    pub git_version: String,
    pub git_commit: &'static str,
    pub git_tree_state: &'static str,
    pub build_date: &'static str,
    pub go_version: &'static str,
    pub compiler: &'static str,
    pub platform: String,
}

pub fn info() -> Info {
    Info {
        major: KUBE_MAJOR,
        minor: KUBE_MINOR,
        git_version: format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0+frontdoor-{}", env!("CARGO_PKG_VERSION")),
        git_commit: option_env!("FRONTDOOR_GIT_COMMIT").unwrap_or(""),
        git_tree_state: "",
        build_date: option_env!("FRONTDOOR_BUILD_DATE").unwrap_or("1970-01-01T00:00:00Z"),
        go_version: "n/a (rust)",
        compiler: "rustc",
        platform: format!("{}/{}", std::env::consts::OS, go_arch()),
    }
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
