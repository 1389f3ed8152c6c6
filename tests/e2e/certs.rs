//! `frontdoor certs init --user NAME --group G`: a client certificate from the running dev PKI's
//! client CA and a kubeconfig that kubectl uses at once, as that user.

use crate::common::*;
use std::process::Command;

#[test]
fn certs_init_issues_a_user_kubeconfig_that_kubectl_uses() {
    let fd = Frontdoor::start(&[]);
    let certs = fd.certs();
    let server = format!("https://127.0.0.1:{}", fd.port);
    let o = Command::new(env!("CARGO_BIN_EXE_frontdoor"))
        .args(["certs", "init", "--dir", certs.to_str().unwrap(), "--server", &server])
        .args(["--user", "alice@example.com", "--group", "devs"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = stdout(&o);
    assert!(printed.contains("kind: Config") && printed.contains(&server), "{printed}");
    let kc = certs.join("alice-example.com.kubeconfig");
    assert_eq!(std::fs::read_to_string(&kc).unwrap(), printed, "the printed kubeconfig is the one written");

    let who = kubectl(&kc, &["auth", "whoami", "-o", "json"]);
    assert!(who.status.success(), "{}", stderr(&who));
    let v: serde_json::Value = serde_json::from_str(&stdout(&who)).unwrap();
    assert_eq!(v["status"]["userInfo"]["username"], "alice@example.com");
    let groups: Vec<&str> =
        v["status"]["userInfo"]["groups"].as_array().unwrap().iter().map(|g| g.as_str().unwrap()).collect();
    assert_eq!(groups, vec!["devs", "system:authenticated"]);
    // the dev CA was kept: the admin kubeconfig still works
    fd.kubectl_ok(&["get", "--raw", "/readyz"]);
}
