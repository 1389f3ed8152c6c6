//! x509 client certificates verified against `--client-ca-file` (the TLS layer verified
//! the chain): the user is the CN, the groups are the Os. An empty CN is not recognised.

use super::user::UserInfo;
use crate::tls::{CaRole, ClientCas, PeerIdentity};
use std::sync::Arc;

/// A certificate the client CA does not verify now (one the TLS layer took for the
/// request-header CA, one whose CA was removed since, one past its validity) is an error, as
/// kube's x509 authenticator fails to verify it: the request is then 401 unless another
/// authenticator names its user, never anonymous.
pub fn authenticate(peer: Option<&PeerIdentity>, cas: Option<&ClientCas>) -> Result<Option<Arc<UserInfo>>, String> {
    let Some(p) = peer else { return Ok(None) };
    let failed = |why: &str| format!("verifying certificate CN={} failed: {why}", p.common_name());
    let roles = p.verified_by(cas).map_err(|e| failed(&e))?;
    if !roles.contains(&CaRole::ClientCa) {
        return Err(failed("x509: certificate signed by unknown authority"));
    }
    if p.common_name().is_empty() {
        return Ok(None);
    }
    Ok(Some(p.user.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cn_and_o() {
        let p = PeerIdentity::new("bob".into(), vec!["dev".into()], [CaRole::ClientCa].into());
        let u = authenticate(Some(&p), None).unwrap().unwrap();
        let groups = vec!["dev".to_string(), "system:authenticated".to_string()];
        assert_eq!((u.username.as_str(), u.groups.clone()), ("bob", groups));
        assert!(Arc::ptr_eq(&u, &p.user), "the connection's user, shared by its requests");
        let proxy = PeerIdentity::new("bob".into(), vec!["dev".into()], [CaRole::RequestHeaderCa].into());
        assert!(authenticate(Some(&proxy), None).is_err(), "a front-proxy cert is not a user cert, and fails");
        let empty = PeerIdentity::new(String::new(), vec!["dev".into()], [CaRole::ClientCa].into());
        assert_eq!(authenticate(Some(&empty), None), Ok(None));
        assert_eq!(authenticate(None, None), Ok(None));
    }
}
