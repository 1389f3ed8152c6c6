//! The policy parsers: the first byte picks one, the rest is the file's text. Each parsed
//! policy is also compiled and asked a few questions, as a reload would.
#![no_main]
use frontdoor::authn::user::UserInfo;
use frontdoor::authz::{abac, chain, rbac, Attributes};
use frontdoor::request_info::RequestInfo;
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;

fn user() -> UserInfo {
    UserInfo {
        username: "alice".into(),
        groups: vec!["system:authenticated".into(), "dev".into()],
        ..Default::default()
    }
}

fn attributes() -> Vec<Attributes<'static>> {
    [("GET", "/api/v1/namespaces/default/pods/p"), ("LIST", "/apis/apps/v1/deployments"), ("GET", "/healthz")]
        .iter()
        .map(|(m, p)| Attributes::from_request(&user(), &RequestInfo::resolve(m, p, None).unwrap()).into_owned())
        .collect()
}

fn scratch() -> &'static Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("frontdoor-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    match which % 8 {
        0 => {
            if let Ok(objects) = rbac::load::parse_manifests(text) {
                let policy = rbac::policy::Policy::compile(objects);
                for a in attributes() {
                    let _ = policy.authorize(&a);
                }
                let _ = policy.rules_for(&user(), "default");
            }
        }
        1 => {
            if let Ok(specs) = abac::parse(text) {
                for a in attributes() {
                    let _ = specs.iter().any(|p| abac::matches(p, &a));
                }
            }
        }
        2 => {
            if let Ok(p) = frontdoor::audit::policy::Policy::parse(text) {
                for (m, path) in [("GET", "/api/v1/namespaces/default/secrets/s"), ("POST", "/version")] {
                    let info = RequestInfo::resolve(m, path, None).unwrap();
                    let u = user();
                    let _ = p.evaluate(&frontdoor::audit::policy::Attributes { user: Some(&u), info: &info });
                    let _ = p.evaluate(&frontdoor::audit::policy::Attributes { user: None, info: &info });
                }
            }
        }
        3 => {
            let _ = frontdoor::authn::jwt::parse_config(text, Path::new("/nonexistent"), &[]);
        }
        4 => {
            // AuthorizationConfiguration, read from a file as --authorization-config is; RBAC is
            // given (compiling kube's bootstrap roles per input would be all the fuzzer did)
            let file = scratch().join("authz.yaml");
            std::fs::write(&file, text).unwrap();
            let args = frontdoor::authz::AuthzArgs { authorization_config: Some(file), ..Default::default() };
            let mut shared = chain::Shared {
                rbac: Some(std::sync::Arc::new(rbac::RbacAuthorizer::from_objects(Vec::new()))),
                abac: None,
            };
            let _ = chain::build(&args, &mut shared);
        }
        5 => {
            if let Ok(docs) = frontdoor::router::apiservice::documents(text) {
                for d in docs {
                    let _ = frontdoor::router::apiservice::ApiService::from_value(d);
                }
            }
        }
        6 => {
            use frontdoor::flowcontrol::apf::{types::Objects, Apf};
            static APF: OnceLock<std::sync::Arc<Apf>> = OnceLock::new();
            let apf = APF.get_or_init(|| Apf::new(600, Vec::new()).unwrap());
            if Objects::parse(text, "fuzz").is_ok() {
                let docs = frontdoor::api::documents::parse(text).unwrap_or_default();
                for (resource, kind) in
                    [("flowschemas", "FlowSchema"), ("prioritylevelconfigurations", "PriorityLevelConfiguration")]
                {
                    let objects: Vec<_> =
                        docs.iter().filter(|d| d.value["kind"] == kind).map(|d| d.value.clone()).collect();
                    if !objects.is_empty() && apf.set_stored(resource, objects).is_ok() {
                        let info = RequestInfo::resolve("GET", "/api/v1/namespaces/default/pods", None).unwrap();
                        let _ = apf.snapshot().classify(&user(), &info).map(|d| d.distinguisher.len());
                    }
                }
            }
        }
        _ => {
            let _ = frontdoor::authn::token_file::TokenFile::parse(text, "fuzz");
            let _ = frontdoor::authn::webhook::Webhook::parse(
                text,
                Path::new("/nonexistent"),
                std::time::Duration::from_secs(1),
                "v1",
            );
        }
    }
});
