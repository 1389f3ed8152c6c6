//! Metrics really scraped: Debian's Prometheus, configured from deploy/prometheus/prometheus.yml
//! (which `promtool check config` accepts), scrapes frontdoor's --metrics-bind-address listener,
//! and kube's `apiserver_request_total` comes back through Prometheus's query API.

use crate::common::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/prometheus.yml");

fn need(tool: &str) -> String {
    let path = format!("/usr/bin/{tool}");
    assert!(std::path::Path::new(&path).exists(), "{tool} is missing: .ci/setup installs Debian's prometheus");
    path
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn promtool_accepts_the_shipped_config() {
    let o = Command::new(need("promtool")).args(["check", "config", SHIPPED]).output().unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
}

/// A frontdoor with a metrics listener that served some requests, and Debian's Prometheus
/// scraping it every second with the shipped config.
struct Scraped {
    fd: Frontdoor,
    _prometheus: Killed,
    _dir: tempfile::TempDir,
    web_port: u16,
    http: reqwest::blocking::Client,
}

impl Scraped {
    fn start() -> Scraped {
        let metrics_port = free_port();
        let fd = Frontdoor::start(&["--metrics-bind-address", &format!("127.0.0.1:{metrics_port}")]);
        // some traffic to count
        let admin = fd.admin_client();
        for _ in 0..5 {
            assert_eq!(admin.get(fd.url("/api/v1/namespaces/default/configmaps")).send().unwrap().status(), 200);
        }
        // the shipped config, pointed at this frontdoor and scraping every second
        let dir = tempfile::tempdir().unwrap();
        let config = std::fs::read_to_string(SHIPPED)
            .unwrap()
            .replace("127.0.0.1:9090", &format!("127.0.0.1:{metrics_port}"))
            .replace("scrape_interval: 15s", "scrape_interval: 1s");
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let web_port = free_port();
        let prometheus = Killed(
            Command::new(need("prometheus"))
                .arg(format!("--config.file={}", config_file.display()))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{web_port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        let s = Scraped { fd, _prometheus: prometheus, _dir: dir, web_port, http };
        // two scrapes, so rates have two points
        wait_until("two scrapes of frontdoor", Duration::from_secs(60), || {
            s.query("count_over_time(up{job=\"frontdoor\"}[1m])")["data"]["result"][0]["value"][1]
                .as_str()
                .is_some_and(|n| n.parse::<f64>().unwrap_or(0.0) >= 2.0)
        });
        s
    }

    /// An instant query through Prometheus's API (Null when it cannot be asked).
    fn query(&self, expr: &str) -> serde_json::Value {
        let url = reqwest::Url::parse_with_params(
            &format!("http://127.0.0.1:{}/api/v1/query", self.web_port),
            &[("query", expr)],
        )
        .unwrap();
        self.http.get(url).send().and_then(|r| r.json()).unwrap_or_default()
    }
}

#[test]
fn prometheus_scrapes_apiserver_request_total() {
    let s = Scraped::start();
    let v = s.query("sum(apiserver_request_total{job=\"frontdoor\",resource=\"configmaps\",verb=\"LIST\"})");
    let found: f64 = v["data"]["result"][0]["value"][1].as_str().and_then(|n| n.parse().ok()).unwrap_or(0.0);
    assert!(found >= 5.0, "{v}\n{}", s.fd.logs());
    // the target is up, as Prometheus sees it
    let up = s.query("up{job=\"frontdoor\"}");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
}

/// The Grafana dashboard in deploy/grafana: every panel's query evaluates in a Prometheus that
/// scrapes frontdoor, and the panels for what every frontdoor has (requests, latency, in-flight,
/// authentication, authorization, reloads, stored objects) have data.
#[test]
fn grafana_panels_evaluate_against_scraped_metrics() {
    let s = Scraped::start();
    let query = |expr: &str| s.query(expr);
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/frontdoor.json")).unwrap(),
    )
    .unwrap();
    let must_have_data = [
        "Requests by verb and code",
        "Request latency p50 / p99 by verb",
        "In-flight requests",
        "Authentication attempts by result",
        "Authorization decisions by result",
        "Policy reloads by policy and result",
        "Stored objects by resource",
    ];
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 12, "{} panels", panels.len());
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let r = query(expr);
            assert_eq!(r["status"], "success", "{title}: {expr}: {r}");
            if must_have_data.contains(&title) {
                assert!(!r["data"]["result"].as_array().unwrap().is_empty(), "{title}: {expr} has no data: {r}");
            }
        }
    }
}
