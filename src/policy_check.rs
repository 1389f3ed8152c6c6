//! Policy checks without a server, for CI pipelines that review policy changes:
//! `frontdoor check-policy` loads every policy file with the loader the server uses, and
//! `frontdoor auth can-i` answers from the files as `kubectl auth can-i --as` would against a
//! running frontdoor.

use crate::authn::user::{UserInfo, ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS};
use crate::authz::{Attributes, Authorization, AuthzArgs, Decision};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Args, Debug, Clone)]
pub struct CheckPolicyArgs {
    /// Directory of policy files, laid out as `serve --policy-dir` reads it (tokens.csv,
    /// rbac/, abac.jsonl, audit-policy.yaml, apiservices.yaml, authentication-config.yaml,
    /// authorization-config.yaml).
    #[arg(long, default_value = "policies", value_name = "DIR")]
    pub policy_dir: PathBuf,
}

/// One file's verdict.
#[derive(Debug, PartialEq, Eq)]
pub struct Checked {
    pub file: PathBuf,
    pub error: Option<String>,
}

/// Loads every policy file under `dir` as the server would; the files checked and how each went.
pub fn check_dir(dir: &Path) -> anyhow::Result<Vec<Checked>> {
    if !dir.is_dir() {
        anyhow::bail!("--policy-dir {}: not a directory", dir.display());
    }
    let mut out = Vec::new();
    let mut check = |file: PathBuf, result: anyhow::Result<()>| {
        out.push(Checked { file, error: result.err().map(|e| format!("{e:#}")) });
    };
    let existing = |name: &str| Some(dir.join(name)).filter(|p| p.exists());
    if let Some(f) = existing("tokens.csv") {
        let r = crate::authn::token_file::TokenFile::load(&f).map(drop);
        check(f, r);
    }
    if let Some(f) = existing("authentication-config.yaml") {
        // (as `serve` loads it on its default service-account issuer)
        let r = crate::authn::jwt::load_config(&f, &[crate::authn::DEFAULT_SA_ISSUER.to_string()]).map(drop);
        check(f, r);
    }
    if let Some(rbac) = existing("rbac") {
        // the files and the loader RBAC's own startup uses, one file at a time, then whether
        // they define an object twice between them
        let mut objects = Vec::new();
        for f in crate::api::documents::files(std::slice::from_ref(&rbac))? {
            let r = crate::authz::rbac::load::load_file(&f);
            if let Ok(o) = &r {
                objects.extend(o.iter().map(|o| (f.clone(), o.clone())));
            }
            check(f, r.map(drop));
        }
        if let Err(e) = crate::authz::rbac::load::check_unique(&objects) {
            check(rbac, Err(e));
        }
    }
    if let Some(f) = existing("abac.jsonl") {
        let r = crate::authz::abac::AbacAuthorizer::new(f.clone()).map(drop);
        check(f, r);
    }
    if let Some(f) = existing("authorization-config.yaml") {
        let args = AuthzArgs { authorization_config: Some(f.clone()), ..authz_defaults(dir) };
        let r = Authorization::new(&args).map(drop);
        check(f, r);
    }
    if let Some(f) = existing("audit-policy.yaml") {
        let r = crate::audit::policy::Policy::load(&f).map(drop);
        check(f, r);
    }
    if let Some(f) = existing("apiservices.yaml") {
        let r = crate::router::apiservice::load(std::slice::from_ref(&f)).map(drop);
        check(f, r);
    }
    Ok(out)
}

/// Runs `check-policy`: one line per file, exit status 1 when any failed.
pub fn check_policy(args: &CheckPolicyArgs) -> anyhow::Result<bool> {
    let checked = check_dir(&args.policy_dir)?;
    if checked.is_empty() {
        println!("no policy files in {}", args.policy_dir.display());
    }
    let mut ok = true;
    for c in &checked {
        match &c.error {
            None => println!("ok    {}", c.file.display()),
            Some(e) => {
                ok = false;
                println!("error {}: {e}", c.file.display());
            }
        }
    }
    Ok(ok)
}

#[derive(Args, Debug, Clone)]
pub struct CanIArgs {
    /// The verb (get, list, create, ..., or `*`).
    pub verb: String,
    /// A resource (`configmaps`, `cm`, `widgets.example.com`), `resource/name`, or a
    /// non-resource URL (`/healthz`).
    pub resource: String,
    /// The subresource (as kubectl's --subresource).
    #[arg(long, default_value = "")]
    pub subresource: String,
    /// The user to check for (as kubectl's --as).
    #[arg(long = "as", value_name = "USER", default_value = ANONYMOUS)]
    pub as_user: String,
    /// A group of the user; repeatable (as kubectl's --as-group).
    #[arg(long = "as-group", value_name = "GROUP")]
    pub as_group: Vec<String>,
    /// The namespace of the request.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Check in every namespace (cluster-wide).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Answer with the exit status only.
    #[arg(short, long)]
    pub quiet: bool,
    /// Directory of policy files, as `serve --policy-dir` reads it.
    #[arg(long, default_value = "policies", value_name = "DIR")]
    pub policy_dir: PathBuf,
    #[command(flatten)]
    pub authz: AuthzArgs,
}

/// The authorization flags with their --policy-dir defaults filled, as `serve` fills them.
fn authz_defaults(dir: &Path) -> AuthzArgs {
    let mut a = crate::flags::parse_args::<AuthzArgs>(&[]).expect("the defaults parse");
    complete_authz(&mut a, dir);
    a
}

fn complete_authz(a: &mut AuthzArgs, dir: &Path) {
    if a.rbac_policy.is_empty() {
        a.rbac_policy = Some(dir.join("rbac")).filter(|p| p.exists()).into_iter().collect();
    }
    if a.default_abac_policy_file.is_none() {
        a.default_abac_policy_file = Some(dir.join("abac.jsonl")).filter(|p| p.exists());
    }
}

/// The user a request impersonating `name` and `groups` acts as (kube's impersonation adds
/// the authenticated group, or the unauthenticated one for anonymous).
fn impersonated(name: &str, groups: &[String]) -> UserInfo {
    let mut groups = groups.to_vec();
    let all = if name == ANONYMOUS { ALL_UNAUTHENTICATED } else { ALL_AUTHENTICATED };
    if !groups.iter().any(|g| g == all) {
        groups.push(all.to_string());
    }
    UserInfo::new(name, groups)
}

/// The attributes of `kubectl auth can-i VERB RESOURCE[/NAME]`: a resource resolved as
/// kubectl's discovery of frontdoor would (`resource[.group]`, singular, short name), over the
/// store's built-in resources; any other needs `resource.group`.
pub fn attributes(a: &CanIArgs) -> Attributes<'_> {
    let user = std::borrow::Cow::Owned(impersonated(&a.as_user, &a.as_group));
    if a.resource.starts_with('/') {
        return Attributes {
            user,
            verb: a.verb.as_str().into(),
            path: a.resource.as_str().into(),
            ..Default::default()
        };
    }
    let (res, name) = a.resource.split_once('/').unwrap_or((&a.resource, ""));
    let defs = crate::store::resources::load(None).unwrap_or_default();
    let (name_part, group_part) = res.split_once('.').unwrap_or((res, ""));
    let found = defs.iter().find(|d| {
        (d.resource == name_part || d.singular == name_part || d.short_names.iter().any(|s| s == name_part))
            && (group_part.is_empty() || d.group == group_part)
    });
    let (group, resource) = match found {
        Some(d) => (d.group.clone(), d.resource.clone()),
        None => {
            if group_part.is_empty() {
                eprintln!("Warning: the server doesn't have a resource type '{name_part}'");
            }
            (group_part.to_string(), name_part.to_string())
        }
    };
    Attributes {
        user,
        verb: a.verb.as_str().into(),
        namespace: if a.all_namespaces { "".into() } else { a.namespace.as_str().into() },
        api_group: group.into(),
        resource: resource.into(),
        subresource: a.subresource.as_str().into(),
        name: name.into(),
        resource_request: true,
        ..Default::default()
    }
}

/// Runs `auth can-i`: prints `yes`, or `no` with the reason, as kubectl does; true when allowed.
pub async fn can_i(args: &CanIArgs) -> anyhow::Result<bool> {
    let mut authz = args.authz.clone();
    complete_authz(&mut authz, &args.policy_dir);
    let z = Authorization::new(&authz)?;
    let attrs = attributes(args);
    let (decision, reason, errors) = z.decide_or_error(&attrs).await;
    let allowed = decision == Decision::Allow;
    if !args.quiet {
        if allowed {
            println!("yes");
        } else {
            let mut line = "no".to_string();
            if !reason.is_empty() {
                line.push_str(&format!(" - {reason}"));
            }
            if !errors.is_empty() {
                line.push_str(&format!(" - {}", crate::authz::aggregate_errors(&errors)));
            }
            println!("{line}");
        }
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(argv: &[&str]) -> CanIArgs {
        crate::flags::parse_args(argv).unwrap()
    }

    #[test]
    fn resources_resolve_as_kubectl_resolves_them() {
        let c = args(&["get", "cm", "-n", "team-a", "--as", "alice", "--as-group", "dev"]);
        let a = attributes(&c);
        assert_eq!((&*a.api_group, &*a.resource, &*a.namespace), ("", "configmaps", "team-a"));
        assert_eq!(a.user.groups, vec!["dev", "system:authenticated"]);
        let c = args(&["get", "pods/p1", "--subresource", "log"]);
        let a = attributes(&c);
        assert_eq!((&*a.resource, &*a.subresource, &*a.name), ("pods", "log", "p1"));
        assert_eq!(a.user.groups, vec!["system:unauthenticated"], "anonymous when no --as");
        let c = args(&["create", "clusterrolebinding"]);
        let a = attributes(&c);
        assert_eq!((&*a.api_group, &*a.resource), ("rbac.authorization.k8s.io", "clusterrolebindings"));
        let c = args(&["list", "widgets.example.com", "-A"]);
        let a = attributes(&c);
        assert_eq!((&*a.api_group, &*a.resource, &*a.namespace), ("example.com", "widgets", ""));
        let c = args(&["get", "/healthz"]);
        let a = attributes(&c);
        assert!(!a.resource_request);
        assert_eq!(a.path, "/healthz");
    }

    #[test]
    fn check_dir_reports_each_bad_file_and_passes_the_shipped_policies() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let checked = check_dir(&shipped).unwrap();
        assert!(checked.len() >= 4, "{checked:?}");
        assert!(checked.iter().all(|c| c.error.is_none()), "{checked:?}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rbac")).unwrap();
        std::fs::write(
            dir.path().join("rbac/good.yaml"),
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: ok}\nrules: []\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("rbac/bad.yaml"),
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: x}\nrules: [{verbs: 5}]\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("audit-policy.yaml"),
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("tokens.csv"), "t1,alice,u1\n").unwrap();
        let checked = check_dir(dir.path()).unwrap();
        let verdict = |name: &str| checked.iter().find(|c| c.file.ends_with(name)).map(|c| c.error.is_none());
        assert_eq!(verdict("good.yaml"), Some(true));
        assert_eq!(verdict("bad.yaml"), Some(false));
        assert_eq!(verdict("audit-policy.yaml"), Some(false));
        assert_eq!(verdict("tokens.csv"), Some(true));
        let bad = checked.iter().find(|c| c.file.ends_with("bad.yaml")).unwrap();
        assert!(bad.error.as_deref().unwrap().contains("bad.yaml"), "names the file: {bad:?}");
    }
}
