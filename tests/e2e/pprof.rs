//! `/debug/pprof/profile` as kube-apiserver serves it: a CPU profile in pprof's protobuf format,
//! for cluster-admin only, and not at all with `--profiling=false`.

use crate::common::*;
use pprof::protos::Message;
use std::time::Duration;

#[test]
fn cpu_profile_decodes_and_is_authorized() {
    let fd = Frontdoor::start(&[]);
    let admin = client_builder(&fd.certs())
        .identity({
            let mut pem = std::fs::read(fd.certs().join("admin.crt")).unwrap();
            pem.extend(std::fs::read(fd.certs().join("admin.key")).unwrap());
            reqwest::Identity::from_pem(&pem).unwrap()
        })
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    // load while profiling, so there is something to sample
    let url = fd.url("/api/v1/namespaces/default/configmaps");
    let loader = {
        let c = fd.admin_client();
        std::thread::spawn(move || {
            let end = std::time::Instant::now() + Duration::from_secs(2);
            while std::time::Instant::now() < end {
                let _ = c.get(&url).send();
            }
        })
    };
    let r = admin.get(fd.url("/debug/pprof/profile?seconds=2")).send().unwrap();
    loader.join().unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().unwrap();
    let p = pprof::protos::Profile::decode(body.as_ref()).expect("a pprof protobuf");
    assert!(!p.sample_type.is_empty() && !p.sample.is_empty(), "{} samples", p.sample.len());
    assert!((p.duration_nanos as f64 / 1e9 - 2.0).abs() < 1.0, "duration {} ns", p.duration_nanos);
    let strings: Vec<&str> = p.string_table.iter().map(String::as_str).collect();
    assert!(strings.contains(&"cpu") || strings.contains(&"samples"), "{:?}", &strings[..strings.len().min(10)]);

    assert_eq!(admin.get(fd.url("/debug/pprof/profile?seconds=x")).send().unwrap().status(), 400);
    let anon = fd.anonymous_client().get(fd.url("/debug/pprof/profile?seconds=1")).send().unwrap();
    assert_eq!(anon.status(), 403, "only who may get nonResourceURLs /debug/*");
}

#[test]
fn profiling_off_serves_nothing() {
    let fd = Frontdoor::start(&["--profiling=false"]);
    let r = fd.admin_client().get(fd.url("/debug/pprof/profile?seconds=1")).send().unwrap();
    assert_eq!(r.status(), 404);
}
