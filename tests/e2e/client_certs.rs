//! A client certificate authenticates each request as kube verifies it, against the client CAs
//! and the time of that request, not once for its connection: on a connection that stays open,
//! a CA removed from `--client-ca-file`, or the `notAfter` of the certificate or of an
//! intermediate it presented passing, ends its authentication (401, never anonymous), while a
//! certificate whose CA is still trusted goes on.

use crate::common::{wait_until, Frontdoor};
use crate::raw;
use crate::reload_load::new_ca;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A `system:masters` client certificate for `cn` from `ca` (valid `for_secs` from now, if
/// given): (cert, key) PEM.
fn client_cert(ca: &rcgen::Certificate, ca_key: &KeyPair, cn: &str, for_secs: Option<u64>) -> (String, String) {
    let (cert, key) = signed(ca, ca_key, cn, for_secs, false);
    (cert.pem(), key.serialize_pem())
}

/// A certificate for `cn` from `ca`: a `system:masters` client's, or (`intermediate`) a CA's.
fn signed(
    ca: &rcgen::Certificate,
    ca_key: &KeyPair,
    cn: &str,
    for_secs: Option<u64>,
    intermediate: bool,
) -> (rcgen::Certificate, KeyPair) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    if intermediate {
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    } else {
        p.distinguished_name.push(DnType::OrganizationName, "system:masters");
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    if let Some(secs) = for_secs {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        p.not_before = epoch + (now - Duration::from_secs(60));
        p.not_after = epoch + (now + Duration::from_secs(secs));
    }
    let key = KeyPair::generate().unwrap();
    (p.signed_by(&key, ca, ca_key).unwrap(), key)
}

/// A SelfSubjectReview on the open connection `tls`: the status and the username it names
/// (0 when the connection is gone).
fn whoami(tls: &mut raw::Tls) -> (u16, String) {
    let body = r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#;
    let req = format!(
        "POST /apis/authentication.k8s.io/v1/selfsubjectreviews HTTP/1.1\r\nHost: a\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if tls.write_all(req.as_bytes()).and_then(|_| tls.flush()).is_err() {
        return (0, String::new());
    }
    let r = raw::read_response(tls, Duration::from_secs(10));
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
    (r.status, v["status"]["userInfo"]["username"].as_str().unwrap_or_default().to_string())
}

#[test]
fn a_removed_ca_or_an_expired_certificate_ends_an_open_connections_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    crate::aggregation::certs_init(&certs);
    let bundle = dir.path().join("client-bundle.crt");
    let dev_ca = std::fs::read_to_string(certs.join("ca.crt")).unwrap();
    let (other_pem, other, other_key) = new_ca("other-ca");
    std::fs::write(&bundle, format!("{dev_ca}{other_pem}")).unwrap();
    let bundle_arg = bundle.display().to_string();
    let fd = Frontdoor::start_in(dir, &["--client-ca-file", &bundle_arg]);
    let dev = {
        let pem = std::fs::read_to_string(certs.join("ca.crt")).unwrap();
        let key = KeyPair::from_pem(&std::fs::read_to_string(certs.join("ca.key")).unwrap()).unwrap();
        (CertificateParams::from_ca_cert_pem(&pem).unwrap().self_signed(&key).unwrap(), key)
    };
    let open = |(crt, key): &(String, String)| {
        raw::connect(fd.port, raw::tls_config(&certs.join("ca.crt"), Some((crt, key)), &[b"http/1.1"])).unwrap()
    };
    let mut revoked = open(&client_cert(&other, &other_key, "revokee", None));
    let mut kept = open(&client_cert(&dev.0, &dev.1, "keeper", None));
    // valid for 8 s from now: room for its first request on a busy machine
    let made = std::time::Instant::now();
    let mut expiring = open(&client_cert(&dev.0, &dev.1, "shortlived", Some(8)));
    // a long-lived leaf under an intermediate that expires as soon, the chain presented whole
    let (inter, inter_key) = signed(&dev.0, &dev.1, "short intermediate", Some(8), true);
    let (leaf, leaf_key) = signed(&inter, &inter_key, "chained", None, false);
    let mut chained = open(&(format!("{}{}", leaf.pem(), inter.pem()), leaf_key.serialize_pem()));
    assert_eq!(whoami(&mut revoked), (201, "revokee".to_string()));
    assert_eq!(whoami(&mut kept), (201, "keeper".to_string()));
    assert_eq!(whoami(&mut expiring), (201, "shortlived".to_string()));
    assert_eq!(whoami(&mut chained), (201, "chained".to_string()));

    // the other CA leaves the bundle: its certificate's open connection is 401 from then on
    let tmp = bundle.with_extension("tmp");
    std::fs::write(&tmp, &dev_ca).unwrap();
    std::fs::rename(&tmp, &bundle).unwrap();
    wait_until("the client CA reloaded", Duration::from_secs(20), || {
        fd.logs().lines().any(|l| l.contains("reloaded") && l.contains(r#""client-ca""#))
    });
    assert_eq!(whoami(&mut revoked).0, 401);
    assert_eq!(whoami(&mut kept), (201, "keeper".to_string()));
    // (verified again under the new bundle while its intermediate is still valid: what ends
    // it below is the validity alone)
    assert_eq!(whoami(&mut chained), (201, "chained".to_string()));
    // and a new connection with it fails its handshake, as before
    let again = client_cert(&other, &other_key, "revokee", None);
    let config = raw::tls_config(&certs.join("ca.crt"), Some((&again.0, &again.1)), &[b"http/1.1"]);
    assert!(raw::connect(fd.port, config).map_or(true, |mut t| whoami(&mut t).0 != 201));

    // past its notAfter, a certificate authenticates nothing more on its open connection
    std::thread::sleep(Duration::from_secs(10).saturating_sub(made.elapsed()));
    assert_eq!(whoami(&mut expiring).0, 401);
    assert_eq!(whoami(&mut chained).0, 401, "an intermediate past its notAfter ends the chain");
    assert_eq!(whoami(&mut kept), (201, "keeper".to_string()));
    // (the log line can trail the response: stderr is read as it comes)
    fd.wait_for_log("certificate has expired or is not yet valid");
}
