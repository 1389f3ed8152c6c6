//! x509 client certificates verified against `--client-ca-file` (the TLS layer verified
//! the chain): the user is the CN, the groups are the Os. An empty CN is not recognised.

use super::user::UserInfo;
use crate::tls::{CaRole, PeerIdentity};

pub fn authenticate(peer: Option<&PeerIdentity>) -> Option<UserInfo> {
    let p = peer.filter(|p| p.verified_by.contains(&CaRole::ClientCa))?;
    if p.common_name.is_empty() {
        return None;
    }
    Some(UserInfo::new(p.common_name.clone(), p.organizations.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cn_and_o() {
        let p = PeerIdentity {
            common_name: "bob".into(),
            organizations: vec!["dev".into()],
            verified_by: vec![CaRole::ClientCa],
        };
        let u = authenticate(Some(&p)).unwrap();
        assert_eq!((u.username.as_str(), u.groups.clone()), ("bob", vec!["dev".to_string()]));
        let proxy = PeerIdentity { verified_by: vec![CaRole::RequestHeaderCa], ..p.clone() };
        assert!(authenticate(Some(&proxy)).is_none(), "a front-proxy cert is not a user cert");
        let empty = PeerIdentity { common_name: String::new(), ..p };
        assert!(authenticate(Some(&empty)).is_none());
        assert!(authenticate(None).is_none());
    }
}
