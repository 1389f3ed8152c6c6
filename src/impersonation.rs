//! Impersonation, as k8s.io/apiserver's `WithImpersonation`: `Impersonate-User`,
//! `Impersonate-Group` (repeatable), `Impersonate-Uid`, `Impersonate-Extra-<key>`, each
//! checked with the `impersonate` verb against the authorizer (users, groups,
//! serviceaccounts in their namespace, `authentication.k8s.io` uids and `userextras/<key>`).
//! Groups, extras and uid only together with a user. The impersonation headers never
//! travel further; the original user stays in `ctx.user`, the new one goes to
//! `ctx.impersonated`.

use crate::authn::requestheader::unescape_extra_key;
use crate::authn::serviceaccount::{make_group_names, make_username, split_username};
use crate::authn::user::{ALL_AUTHENTICATED, ALL_UNAUTHENTICATED, ANONYMOUS};
use crate::authn::UserInfo;
use crate::authz::{Attributes, Authorizer, Decision};
use crate::context::RequestContext;
use crate::filters::response::internal_error;
use crate::filters::Reply;
use http::HeaderName;
use pingora::http::RequestHeader;
use std::borrow::Cow;
use std::collections::BTreeMap;

// prebuilt names: a lookup by `&str` parses the name on every request
pub static USER: HeaderName = HeaderName::from_static("impersonate-user");
pub static GROUP: HeaderName = HeaderName::from_static("impersonate-group");
pub static UID: HeaderName = HeaderName::from_static("impersonate-uid");
pub const EXTRA_PREFIX: &str = "impersonate-extra-";

/// One thing asked to be impersonated: kube's `v1.ObjectReference` use in the filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub api_version: &'static str,
    pub field_path: String,
}

impl Request {
    fn new(kind: &'static str, name: &str) -> Self {
        Request { kind, namespace: String::new(), name: name.into(), api_version: "", field_path: String::new() }
    }

    /// Go's `%v` of an ObjectReference (fields space-separated in declaration order).
    fn go_string(&self) -> String {
        format!(
            "{{{} {} {} {} {} {} {}}}",
            self.kind, self.namespace, self.name, "", self.api_version, "", self.field_path
        )
    }
}

/// The impersonation requests in the headers, in kube's order; an error when groups,
/// extras or a uid come without a user.
pub fn build_requests(req: &RequestHeader) -> Result<Vec<Request>, String> {
    let h = &req.headers;
    // a request that asks for nothing (most) costs one pass over its names, not four lookups
    if !h.keys().any(|k| k.as_str().starts_with("impersonate-")) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    // every value as Go reads it: a value that is not ASCII is still asked for, never ignored
    // (that ran the request as the caller)
    let text = crate::api::headers::value_text;
    let user = h.get(&USER).map(text).unwrap_or_default();
    let has_user = !user.is_empty();
    if has_user {
        match split_username(&user) {
            Some((ns, name)) => out.push(Request { namespace: ns.into(), ..Request::new("ServiceAccount", name) }),
            None => out.push(Request::new("User", &user)),
        }
    }
    let mut has_groups = false;
    for g in h.get_all(&GROUP) {
        has_groups = true;
        out.push(Request::new("Group", &text(g)));
    }
    let mut has_extra = false;
    let mut extra_names: Vec<&str> = h.keys().map(|k| k.as_str()).filter(|k| k.starts_with(EXTRA_PREFIX)).collect();
    extra_names.sort();
    extra_names.dedup();
    for name in extra_names {
        has_extra = true;
        let key = unescape_extra_key(&name[EXTRA_PREFIX.len()..].to_ascii_lowercase());
        for v in h.get_all(name) {
            out.push(Request {
                api_version: "authentication.k8s.io/v1",
                field_path: key.clone(),
                ..Request::new("UserExtra", &text(v))
            });
        }
    }
    let uid = h.get(&UID).map(text).unwrap_or_default();
    let has_uid = !uid.is_empty();
    if has_uid {
        out.push(Request { api_version: "authentication.k8s.io/v1", ..Request::new("UID", &uid) });
    }
    if (has_groups || has_extra || has_uid) && !has_user {
        let list: Vec<String> = out.iter().map(Request::go_string).collect();
        return Err(format!("requested [{}] without impersonating a user", list.join(" ")));
    }
    Ok(out)
}

/// The authorizer attributes for one impersonation request.
pub fn attributes<'a>(requestor: &'a UserInfo, r: &'a Request) -> Attributes<'a> {
    let (group, version) = match r.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", r.api_version),
    };
    let (resource, subresource) = match r.kind {
        "ServiceAccount" => ("serviceaccounts", ""),
        "User" => ("users", ""),
        "Group" => ("groups", ""),
        "UserExtra" => ("userextras", r.field_path.as_str()),
        _ => ("uids", ""),
    };
    Attributes {
        user: Cow::Borrowed(requestor),
        verb: "impersonate".into(),
        namespace: Cow::Borrowed(&r.namespace),
        api_group: group.into(),
        api_version: version.into(),
        resource: resource.into(),
        subresource: subresource.into(),
        name: Cow::Borrowed(&r.name),
        resource_request: true,
        path: Cow::Borrowed(""),
    }
}

/// The impersonated user once every request is allowed (kube's group rules included).
pub fn impersonated_user(requests: &[Request], groups_specified: bool) -> UserInfo {
    let mut username = String::new();
    let mut groups = Vec::new();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut uid = String::new();
    for r in requests {
        match r.kind {
            "ServiceAccount" => {
                username = make_username(&r.namespace, &r.name);
                if !groups_specified {
                    groups = make_group_names(&r.namespace);
                }
            }
            "User" => username = r.name.clone(),
            "Group" => groups.push(r.name.clone()),
            "UserExtra" => extra.entry(r.field_path.clone()).or_default().push(r.name.clone()),
            _ => uid = r.name.clone(),
        }
    }
    if username != ANONYMOUS {
        if !groups.iter().any(|g| g == ALL_AUTHENTICATED || g == ALL_UNAUTHENTICATED) {
            groups.push(ALL_AUTHENTICATED.into());
        }
    } else if !groups.iter().any(|g| g == ALL_UNAUTHENTICATED) {
        groups.push(ALL_UNAUTHENTICATED.into());
    }
    UserInfo { username, uid, groups, extra }
}

/// Removes every impersonation header.
pub fn strip(req: &mut RequestHeader) {
    let names: Vec<String> =
        req.headers.keys().map(|k| k.as_str().to_string()).filter(|k| k.starts_with("impersonate-")).collect();
    for n in names {
        req.remove_header(&n);
    }
}

/// The impersonation stage: asks the authorizer (a handle given at construction) whether the
/// requesting user may act as the one it names.
pub struct Impersonation {
    authorizer: std::sync::Arc<dyn Authorizer>,
}

impl Impersonation {
    pub fn new(authorizer: std::sync::Arc<dyn Authorizer>) -> Self {
        Impersonation { authorizer }
    }

    /// The impersonation filter.
    pub async fn impersonate(&self, req: &mut RequestHeader, ctx: &mut RequestContext) -> Result<(), Reply> {
        let requests = match build_requests(req) {
            Ok(r) => r,
            // kube's responsewriters.InternalError
            Err(e) => return Err(internal_error(ctx.incoming.request_uri(), &e).into()),
        };
        if requests.is_empty() {
            return Ok(());
        }
        let Some(requestor) = ctx.user.clone() else {
            return Err(internal_error(ctx.incoming.request_uri(), "no user found for request").into());
        };
        for r in &requests {
            let attrs = attributes(&requestor, r);
            let (decision, reason) = self.authorizer.authorize(&attrs).await;
            if decision != Decision::Allow {
                tracing::debug!(user = %requestor.username, kind = r.kind, "impersonation forbidden");
                return Err(crate::authz::forbidden(&attrs, &reason).into());
            }
        }
        let groups_specified = req.headers.get(&GROUP).is_some();
        let user = impersonated_user(&requests, groups_specified);
        strip(req);
        ctx.impersonated = Some(Box::new(user));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::api::headers::request_with as req;

    #[test]
    fn user_groups_extra_uid() {
        let r = req(&[
            ("Impersonate-User", "jane"),
            ("Impersonate-Group", "dev"),
            ("Impersonate-Group", "ops"),
            ("Impersonate-Extra-Acme.com%2Fscopes", "view"),
            ("Impersonate-Uid", "42"),
        ]);
        let reqs = build_requests(&r).unwrap();
        let kinds: Vec<&str> = reqs.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, ["User", "Group", "Group", "UserExtra", "UID"]);
        let me = UserInfo::new("me", vec![]);
        let a = attributes(&me, &reqs[3]);
        assert_eq!(
            (&*a.api_group, &*a.resource, &*a.subresource, &*a.name),
            ("authentication.k8s.io", "userextras", "acme.com/scopes", "view")
        );
        let u = impersonated_user(&reqs, true);
        assert_eq!(u.username, "jane");
        assert_eq!(u.uid, "42");
        assert_eq!(u.groups, vec!["dev", "ops", "system:authenticated"]);
        assert_eq!(u.extra["acme.com/scopes"], vec!["view"]);
    }

    #[test]
    fn service_accounts_and_anonymous() {
        let reqs = build_requests(&req(&[("Impersonate-User", "system:serviceaccount:ns:builder")])).unwrap();
        let me = UserInfo::new("me", vec![]);
        let a = attributes(&me, &reqs[0]);
        assert_eq!((&*a.resource, &*a.namespace, &*a.name), ("serviceaccounts", "ns", "builder"));
        let u = impersonated_user(&reqs, false);
        assert_eq!(u.groups, vec!["system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated"]);
        let reqs = build_requests(&req(&[("Impersonate-User", "system:anonymous")])).unwrap();
        assert_eq!(impersonated_user(&reqs, false).groups, vec!["system:unauthenticated"]);
        let reqs = build_requests(&req(&[("Impersonate-User", "x"), ("Impersonate-Group", "system:unauthenticated")]))
            .unwrap();
        assert_eq!(impersonated_user(&reqs, true).groups, vec!["system:unauthenticated"]);
    }

    /// A value that is not ASCII is asked for as Go reads it, never ignored: ignored, the
    /// request ran as the caller, with the caller's own rights.
    #[test]
    fn values_that_are_not_ascii_are_asked_for() {
        let reqs = build_requests(&req(&[("Impersonate-User", "josé"), ("Impersonate-Uid", "ü-1")])).unwrap();
        let asked: Vec<(&str, &str)> = reqs.iter().map(|r| (r.kind, r.name.as_str())).collect();
        assert_eq!(asked, [("User", "josé"), ("UID", "ü-1")]);
        let mut r = RequestHeader::build("GET", b"/api", None).unwrap();
        r.append_header("Impersonate-User", http::HeaderValue::from_bytes(b"\xffvil").unwrap()).unwrap();
        let reqs = build_requests(&r).unwrap();
        assert_eq!((reqs[0].kind, reqs[0].name.as_str()), ("User", "\u{fffd}vil"));
    }

    #[test]
    fn groups_need_a_user() {
        let e = build_requests(&req(&[("Impersonate-Group", "system:masters")])).unwrap_err();
        assert_eq!(e, "requested [{Group  system:masters    }] without impersonating a user");
        assert!(build_requests(&req(&[("Impersonate-Uid", "1")])).is_err());
        assert!(build_requests(&req(&[("Impersonate-Extra-a", "1")])).is_err());
        assert!(build_requests(&req(&[])).unwrap().is_empty());
    }

    #[test]
    fn forbidden_text() {
        let reqs = build_requests(&req(&[("Impersonate-User", "jane")])).unwrap();
        let s = crate::authz::forbidden(&attributes(&UserInfo::new("bob", vec![]), &reqs[0]), "");
        assert_eq!(s.message, "users \"jane\" is forbidden: User \"bob\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope");
    }
}
