//! End-to-end tests: the real `frontdoor` binary on loopback ports, with generated certs, real TLS
//! and real kubectl. One test binary for all of them, so a clean build links the crate once
//! instead of once per file (each link is a few hundred megabytes of disk).

mod backend;
mod common;
mod raw;

mod aggregation;
mod attacks;
mod audit;
mod authn;
mod authz;
mod backend_faults;
mod certs;
mod client_certs;
mod clients;
mod deploy;
mod differential;
mod durability;
mod flowcontrol;
mod handshake;
mod http1;
mod inflight;
mod logging;
mod otel;
mod policy_check;
mod pprof;
mod prometheus;
mod query_once;
mod rbac_writes;
mod reload_load;
mod spine;
mod store_api;
mod store_bodies;
mod store_crd;
mod store_etcd;
mod store_etcd_cluster;
mod store_events;
mod store_gc;
mod store_kubectl;
mod store_lists;
mod store_managed_fields;
mod store_namespaces;
mod store_protobuf;
mod store_schemas;
mod store_watch;
mod store_watch_load;
mod upstream;
