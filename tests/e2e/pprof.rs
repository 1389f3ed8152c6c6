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
    // load while profiling, so there is something to sample; on a machine busy with other
    // tests a short profile can catch no sample, so up to three are taken
    let mut samples = 0;
    for _attempt in 0..3 {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let loader = {
            let (c, url, done) = (fd.admin_client(), fd.url("/api/v1/namespaces/default/configmaps"), done.clone());
            std::thread::spawn(move || {
                let mut ok = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    ok += c.get(&url).send().is_ok_and(|r| r.status() == 200) as usize;
                }
                ok
            })
        };
        let r = admin.get(fd.url("/debug/pprof/profile?seconds=2")).send().unwrap();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let served = loader.join().unwrap();
        assert_eq!(r.status(), 200);
        assert!(served > 0, "the load reached frontdoor");
        let body = r.bytes().unwrap();
        let p = pprof::protos::Profile::decode(body.as_ref()).expect("a pprof protobuf");
        assert!(!p.sample_type.is_empty());
        assert!((p.duration_nanos as f64 / 1e9 - 2.0).abs() < 1.0, "duration {} ns", p.duration_nanos);
        let strings: Vec<&str> = p.string_table.iter().map(String::as_str).collect();
        assert!(strings.contains(&"cpu") || strings.contains(&"samples"), "{:?}", &strings[..strings.len().min(10)]);
        samples = p.sample.len();
        if samples > 0 {
            break;
        }
    }
    assert!(samples > 0, "no profile caught a sample");

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

#[test]
fn heap_profile_is_unknown_as_go_says_of_a_profile_it_lacks() {
    let fd = Frontdoor::start(&[]);
    let r = fd.admin_client().get(fd.url("/debug/pprof/heap")).send().unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-go-pprof"], "1");
    let body = r.text().unwrap();
    assert!(body.starts_with("Unknown profile\n") && body.contains("mimalloc"), "{body}");
    let anon = fd.anonymous_client().get(fd.url("/debug/pprof/heap")).send().unwrap();
    assert_eq!(anon.status(), 403, "authorized before anything is said");
}
