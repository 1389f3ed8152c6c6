//! x509 client certificates verified against `--client-ca-file` (the TLS layer verified
//! the chain): the user is the CN, the groups are the Os. An empty CN is not recognised.

use super::user::UserInfo;
use crate::tls::{CaRole, PeerIdentity};

/// A certificate the client CA did not sign (one the TLS layer took for the request-header
/// CA) is an error, as kube's x509 authenticator fails to verify it: the request is then 401
/// unless another authenticator names its user, never anonymous.
pub fn authenticate(peer: Option<&PeerIdentity>) -> Result<Option<UserInfo>, String> {
    let Some(p) = peer else { return Ok(None) };
    if !p.verified_by.contains(&CaRole::ClientCa) {
        return Err(format!(
            "verifying certificate CN={} failed: x509: certificate signed by unknown authority",
            p.common_name
        ));
    }
    if p.common_name.is_empty() {
        return Ok(None);
    }
    Ok(Some(UserInfo::new(p.common_name.clone(), p.organizations.clone())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cn_and_o() {
        let p = PeerIdentity {
            common_name: "bob".into(),
            organizations: vec!["dev".into()],
            verified_by: [CaRole::ClientCa].into(),
        };
        let u = authenticate(Some(&p)).unwrap().unwrap();
        assert_eq!((u.username.as_str(), u.groups.clone()), ("bob", vec!["dev".to_string()]));
        let proxy = PeerIdentity { verified_by: [CaRole::RequestHeaderCa].into(), ..p.clone() };
        assert!(authenticate(Some(&proxy)).is_err(), "a front-proxy cert is not a user cert, and fails");
        let empty = PeerIdentity { common_name: String::new(), ..p };
        assert_eq!(authenticate(Some(&empty)), Ok(None));
        assert_eq!(authenticate(None), Ok(None));
    }
}
