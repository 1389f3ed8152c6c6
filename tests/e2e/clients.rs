//! Client libraries other than kubectl against the real binary: the Python `kubernetes`
//! client from PyPI (`.ci/setup` installs it) lists, creates, patches, deletes and watches.

use crate::common::{stderr, stdout, Frontdoor};
use std::process::Command;

#[test]
fn python_kubernetes_client() {
    let fd = Frontdoor::start(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/clients/python_client.py");
    let o = Command::new("python3").arg(script).arg(fd.kubeconfig()).arg("default").output().expect("python3 runs");
    assert!(o.status.success(), "the Python client failed:\n{}\n{}\n{}", stdout(&o), stderr(&o), fd.logs());
    let out = stdout(&o);
    assert!(out.contains("watched ADDED:from-python MODIFIED:from-python DELETED:from-python"), "{out}");
}
