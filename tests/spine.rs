mod common;
use common::*;

#[test]
fn kubectl_readyz_version_and_unknown_path() {
    let fd = Frontdoor::start(&[]);
    let o = fd.kubectl(&["get", "--raw", "/readyz"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "ok");
    let o = fd.kubectl(&["get", "--raw", "/version"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["major"], "1");
    let o = fd.kubectl(&["get", "--raw", "/no/such/path"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("NotFound"), "{}", stderr(&o));
}
