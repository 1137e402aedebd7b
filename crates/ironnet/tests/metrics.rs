//! Every component's metrics after a scripted workload, scraped over HTTP from `ironnet up --hypervisors 2` (the
//! real binary: the API server, controllers, apinetlet and metalnetlet in one process; dpservice, metalnet and
//! metalbond as the lab's processes), each page checked for the values the workload must have produced and by
//! `promtool check metrics`.
//!
//! Needs root (network namespaces, TAP devices), as `scripts/test` runs it.

#[allow(dead_code)]
#[path = "e2e/common.rs"]
mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{ServingProcess, repo_root};

/// One sample's labels and value.
type Samples = Vec<(BTreeMap<String, String>, f64)>;

/// The samples of `name` on a Prometheus text page.
fn samples(page: &str, name: &str) -> Samples {
    let mut out = Vec::new();
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once("} ") {
                Some((labels, value)) => (labels, value),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(value) => ("", value),
                None => continue,
            },
        };
        let mut map = BTreeMap::new();
        // Label values here never contain `",`; a full parser is not needed for these pages.
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            if let Some((k, v)) = pair.split_once("=\"") {
                map.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
            }
        }
        if let Ok(v) = value.trim().parse() {
            out.push((map, v));
        }
    }
    out
}

/// The sum of `name`'s samples whose labels include every pair of `labels`.
fn sum(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(page, name)
        .iter()
        .filter(|(l, _)| {
            labels
                .iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .sum()
}

/// The value of the one sample of `name` with exactly these labels among those given (`None` if absent).
fn value(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(page, name)
        .into_iter()
        .find(|(l, _)| {
            labels
                .iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
}

fn scrape(addr: SocketAddr, path: &str) -> ironnet_telemetry::scrape::Scraped {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(ironnet_telemetry::scrape::get(addr, path, None))
        .unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

fn promtool(page: &str, what: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Err(problems) = runtime.block_on(ironnet_telemetry::scrape::promtool_check(page)) {
        panic!("promtool check metrics on {what}: {problems}\n{page}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a bash script with kubectl on `up`'s kubeconfig and the built `ironnet` first in PATH.
fn sh(up: &ServingProcess, script: &str) -> Output {
    let bin_dir: PathBuf = Path::new(env!("CARGO_BIN_EXE_ironnet"))
        .parent()
        .unwrap()
        .to_owned();
    let home = up.dir().join("home");
    std::fs::create_dir_all(&home).unwrap();
    Command::new("timeout")
        .args(["300", "bash", "-c"])
        .arg(format!("set -euo pipefail\nset -x\n{script}"))
        .current_dir(repo_root())
        .env("KUBECONFIG", up.kubeconfig())
        .env("HOME", home)
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin_dir.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("bash runs")
}

fn sh_ok(up: &ServingProcess, script: &str) -> String {
    let out = sh(up, script);
    assert!(
        out.status.success(),
        "script failed ({}):\n{script}\n--- stdout\n{}\n--- stderr\n{}\n--- ironnet up log\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        up.log(),
        up.lab_logs()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `check` on fresh pages until it passes (values the workload causes arrive asynchronously: reconciles,
/// route announcements); on the deadline fails with its last complaint.
fn eventually(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match check() {
            Ok(()) => return,
            Err(why) if Instant::now() > deadline => panic!("{what}: {why}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

fn expect(cond: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(why()) }
}

/// The lab's per-process telemetry addresses from `ironnet up`'s startup message
/// (`    <name>: http://<addr>/metrics`).
fn lab_endpoints(log: &str) -> BTreeMap<String, SocketAddr> {
    log.lines()
        .filter_map(|l| {
            let (name, url) = l.trim().split_once(": http://")?;
            let addr = url.strip_suffix("/metrics")?.parse().ok()?;
            Some((name.to_owned(), addr))
        })
        .collect()
}

/// Deletes the test's VMs (network namespaces) however the test ends.
struct Vms<'a>(&'a ServingProcess);

impl Drop for Vms<'_> {
    fn drop(&mut self) {
        let _ = sh(
            self.0,
            "for vm in m-web-1 m-web-2; do ironnet vm delete $vm || true; done",
        );
    }
}

const WORKLOAD: &str = r#"
kubectl apply -f - <<'YAML'
apiVersion: networking.ironcore.dev/v1alpha1
kind: Network
metadata: {name: tenant}
spec: {}
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: NetworkInterface
metadata: {name: web-1}
spec: {networkRef: {name: tenant}, ipFamilies: [IPv4], ips: [{value: 10.0.0.1}]}
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: NetworkInterface
metadata: {name: web-2}
spec: {networkRef: {name: tenant}, ipFamilies: [IPv4], ips: [{value: 10.0.0.2}]}
---
apiVersion: networking.ironcore.dev/v1alpha1
kind: VirtualIP
metadata: {name: web-vip}
spec: {type: Public, ipFamily: IPv4}
YAML
# One create the server refuses (422: the name is not a DNS subdomain).
if kubectl create -f - <<'YAML'
apiVersion: networking.ironcore.dev/v1alpha1
kind: Network
metadata: {name: Not_Valid}
spec: {}
YAML
then echo "the invalid Network was accepted" >&2; exit 1; fi
kubectl wait network/tenant --for=jsonpath='{.status.state}'=Available --timeout=60s
kubectl wait virtualip/web-vip --for=jsonpath='{.status.ip}' --timeout=60s
ironnet vm create m-web-1 --node hv-1 --nic web-1
ironnet vm create m-web-2 --node hv-2 --nic web-2
kubectl wait networkinterface/web-1 networkinterface/web-2 --for=jsonpath='{.status.state}'=Available --timeout=60s
end=$((SECONDS + 60)); until ip netns exec m-web-1 ping -c 1 -W 1 10.0.0.2 >/dev/null; do ((SECONDS < end)); done
"#;

/// Pings web-1 sends to web-2 (answered), and to an address no route leads to (dropped by hv-1's dataplane).
const ANSWERED: f64 = 5.0;
const UNROUTED: f64 = 3.0;
const UNROUTED_ADDRESS: &str = "203.0.113.7";

#[test]
fn every_component_counts_a_scripted_workload() {
    let telemetry: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let prefix = format!("m{:x}", std::process::id() % 0xf_ffff);
    let addr = telemetry.to_string();
    let up = ServingProcess::start_lab(&[
        "--hypervisors",
        "2",
        "--lab-prefix",
        &prefix,
        "--metrics-bind-address",
        &addr,
        "--health-probe-bind-address",
        &addr,
    ]);
    let _vms = Vms(&up);
    assert!(
        up.log().contains(&format!("metrics: http://{addr}/metrics")),
        "the startup message names the metrics address:\n{}",
        up.log()
    );
    let ready = scrape(telemetry, "/readyz?verbose");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(
        ready.body.contains("[+]store ok") && ready.body.contains("[+]controllers-started ok"),
        "{}",
        ready.body
    );
    let lab = lab_endpoints(&up.log());
    for name in [
        "metalbond-1",
        "metalbond-2",
        "metalnet-hv-1",
        "metalnet-hv-2",
        "dpservice-1",
        "dpservice-2",
        "dpservice-g",
    ] {
        assert!(lab.contains_key(name), "{name} is listed in:\n{}", up.log());
    }

    let before = scrape(telemetry, "/metrics").body;
    let public_in_use = value(
        &before,
        "ironnet_allocation_pool_in_use",
        &[("pool", "192.0.2.0/24")],
    )
    .expect("the public IPv4 pool is shown");
    let public_free = value(
        &before,
        "ironnet_allocation_pool_free",
        &[("pool", "192.0.2.0/24")],
    )
    .unwrap();
    assert_eq!(public_in_use + public_free, 256.0, "{before}");
    assert_eq!(
        value(
            &before,
            "ironnet_allocation_pool_size",
            &[("pool", "192.0.2.0/24")]
        ),
        Some(256.0)
    );

    sh_ok(&up, WORKLOAD);
    let network_ids: f64 = sh_ok(
        &up,
        "kubectl get networkids.core.apinet.ironcore.dev --no-headers -o name | wc -l",
    )
    .trim()
    .parse()
    .unwrap();
    assert!(network_ids >= 1.0);

    // The API server, the controllers, apinetlet and metalnetlet: one page of `ironnet up`.
    let mut up_page = String::new();
    eventually("ironnet up's page", || {
        up_page = scrape(telemetry, "/metrics").body;
        let p = &up_page;
        let networks = [
            ("verb", "POST"),
            ("group", "networking.ironcore.dev"),
            ("resource", "networks"),
            ("scope", "namespace"),
        ];
        expect(
            value(
                p,
                "apiserver_request_total",
                &[networks.as_slice(), &[("code", "201")]].concat(),
            ) == Some(1.0),
            || "one Network created (201)".into(),
        )?;
        expect(
            value(
                p,
                "apiserver_request_total",
                &[networks.as_slice(), &[("code", "422")]].concat(),
            ) == Some(1.0),
            || "one Network refused (422)".into(),
        )?;
        expect(
            value(
                p,
                "apiserver_storage_objects",
                &[("resource", "networks.networking.ironcore.dev")],
            ) == Some(1.0),
            || "1 Network stored".into(),
        )?;
        expect(
            value(
                p,
                "apiserver_storage_objects",
                &[("resource", "networkinterfaces.networking.ironcore.dev")],
            ) == Some(2.0),
            || "2 NetworkInterfaces stored".into(),
        )?;
        expect(
            sum(
                p,
                "etcd_request_duration_seconds_count",
                &[
                    ("operation", "create"),
                    ("type", "networks.networking.ironcore.dev"),
                ],
            ) >= 1.0,
            || "the Network's create is timed".into(),
        )?;
        expect(
            sum(
                p,
                "apiserver_registered_watchers",
                &[("group", "networking.ironcore.dev"), ("kind", "Network")],
            ) >= 1.0,
            || "the controllers watch Networks".into(),
        )?;
        expect(
            value(p, "ironnet_allocation_pool_in_use", &[("pool", "vni")]) == Some(network_ids),
            || format!("{network_ids} VNIs in use"),
        )?;
        expect(
            value(p, "ironnet_allocation_pool_in_use", &[("pool", "192.0.2.0/24")])
                == Some(public_in_use + 1.0),
            || "the VirtualIP took one public IPv4 address".into(),
        )?;
        expect(
            value(p, "ironnet_allocation_pool_free", &[("pool", "192.0.2.0/24")]) == Some(public_free - 1.0),
            || "one public IPv4 address fewer is free".into(),
        )?;
        let reconciled = |controller: &dyn Fn(&str) -> bool| {
            samples(p, "controller_runtime_reconcile_total")
                .iter()
                .filter(|(l, _)| {
                    l.get("result").map(String::as_str) == Some("success")
                        && l.get("controller").is_some_and(|c| controller(c))
                })
                .map(|(_, v)| v)
                .sum::<f64>()
        };
        expect(reconciled(&|c| c.starts_with("apinetlet-")) >= 1.0, || {
            "apinetlet reconciled".into()
        })?;
        expect(reconciled(&|c| c.starts_with("metalnetlet-")) >= 1.0, || {
            "metalnetlet reconciled".into()
        })?;
        expect(
            reconciled(&|c| !c.starts_with("apinetlet-") && !c.starts_with("metalnetlet-")) >= 1.0,
            || "the controller-manager's controllers reconciled".into(),
        )
    });
    promtool(&up_page, "ironnet up's page");

    // The API server's own /metrics (RBAC-authorized) shows the same request counts.
    let own = sh_ok(&up, "kubectl get --raw /metrics");
    assert_eq!(
        value(
            &own,
            "apiserver_request_total",
            &[
                ("verb", "POST"),
                ("resource", "networks"),
                ("group", "networking.ironcore.dev"),
                ("code", "422")
            ]
        ),
        Some(1.0),
        "{own}"
    );
    promtool(&own, "the API server's /metrics");

    for hv in ["hv-1", "hv-2"] {
        let name = format!("metalnet-{hv}");
        let addr = lab[&name];
        let mut page = String::new();
        eventually(&name, || {
            page = scrape(addr, "/metrics").body;
            for controller in ["metalnet-network", "metalnet-networkinterface"] {
                expect(
                    sum(
                        &page,
                        "controller_runtime_reconcile_total",
                        &[("controller", controller), ("result", "success")],
                    ) >= 1.0,
                    || format!("{controller} reconciled"),
                )?;
                // Every reconcile started took its key from the work queue, whose depth is exported.
                expect(
                    sum(
                        &page,
                        "workqueue_queue_duration_seconds_count",
                        &[("name", controller)],
                    ) >= 1.0
                        && value(&page, "workqueue_depth", &[("name", controller)]).is_some(),
                    || format!("{controller}'s work queue timed and its depth exported"),
                )?;
            }
            // metalnet runs metalbond clients to both servers.
            expect(
                value(&page, "metalbond_peers", &[("state", "ESTABLISHED")]) == Some(2.0),
                || "2 metalbond sessions ESTABLISHED".into(),
            )
        });
        promtool(&page, &name);
        let ready = scrape(addr, "/readyz");
        assert_eq!(ready.status, 200, "{name}: {}", ready.body);
    }

    for name in ["metalbond-1", "metalbond-2"] {
        let addr = lab[name];
        let mut page = String::new();
        eventually(name, || {
            page = scrape(addr, "/metrics").body;
            // Two metalnets and the internet gateway peer with every server.
            expect(
                value(&page, "metalbond_peers", &[("state", "ESTABLISHED")]) == Some(3.0),
                || "3 peers ESTABLISHED".into(),
            )?;
            // web-1 and web-2 are announced into the tenant's VNI by their hypervisors.
            expect(
                samples(&page, "metalbond_routes").iter().any(|(_, v)| *v >= 2.0),
                || "a VNI with both interfaces' routes".into(),
            )?;
            expect(
                sum(&page, "metalbond_updates_received_total", &[("action", "add")]) >= 2.0,
                || "route additions received".into(),
            )
        });
        promtool(&page, name);
    }

    // The dataplane: web-1's pings to web-2 are counted on hv-1's ports, and pings to an address nothing routes
    // are counted as drops on the port they came in on.
    let dp = lab["dpservice-1"];
    let before = scrape(dp, "/metrics").body;
    sh_ok(
        &up,
        &format!(
            "ip netns exec m-web-1 ping -c {ANSWERED} -i 0.2 -W 2 10.0.0.2\n\
             ! ip netns exec m-web-1 ping -c {UNROUTED} -i 0.2 -W 1 {UNROUTED_ADDRESS}"
        ),
    );
    let mut page = String::new();
    eventually("dpservice-1", || {
        page = scrape(dp, "/metrics").body;
        let delta =
            |name: &str, labels: &[(&str, &str)]| sum(&page, name, labels) - sum(&before, name, labels);
        let ports: Vec<String> = samples(&page, "dpdk_ethdev_packets_total")
            .into_iter()
            .filter_map(|(l, _)| l.get("name").cloned())
            .collect();
        // web-1's port: the one that received both sets of pings (other ports see no more than stray frames).
        let vm_port = ports
            .iter()
            .max_by(|a, b| {
                let rx = |p: &str| {
                    delta(
                        "dpdk_ethdev_packets_total",
                        &[("name", p), ("stat", "rx_good_packets")],
                    )
                };
                rx(a).total_cmp(&rx(b))
            })
            .ok_or("no ports")?;
        let on_port = |stat: &str| delta("dpdk_ethdev_packets_total", &[("name", vm_port), ("stat", stat)]);
        expect(on_port("rx_good_packets") >= ANSWERED + UNROUTED, || {
            format!("{vm_port} received web-1's {ANSWERED} + {UNROUTED} pings")
        })?;
        expect(on_port("tx_good_packets") >= ANSWERED, || {
            format!("{vm_port} delivered web-2's {ANSWERED} replies")
        })?;
        expect(
            delta("dps_port_dropped_packets_total", &[("name", vm_port)]) >= UNROUTED,
            || format!("{vm_port} dropped the {UNROUTED} unrouted pings"),
        )?;
        expect(delta("dps_dropped_packets_total", &[]) >= UNROUTED, || {
            "drops by reason".into()
        })?;
        // The answered pings crossed the underlay: hv-1's uplink sent them.
        expect(
            ports.iter().filter(|p| *p != vm_port).any(|p| {
                delta(
                    "dpdk_ethdev_packets_total",
                    &[("name", p), ("stat", "tx_good_packets")],
                ) >= ANSWERED
            }),
            || "the uplink sent the pings to hv-2".into(),
        )
    });
    promtool(&page, "dpservice-1");
    for name in ["dpservice-2", "dpservice-g"] {
        let page = scrape(lab[name], "/metrics").body;
        promtool(&page, name);
    }
}

/// `ironnet apiserver` serves the API server's families (the same values as its own `/metrics`) and a store
/// readiness check on its telemetry endpoints; an apinet Network takes its VNI in admission.
#[test]
fn the_apiserver_command_serves_its_metrics_and_store_readiness() {
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let health: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let (m, h) = (metrics.to_string(), health.to_string());
    let server = ServingProcess::start(
        "apiserver",
        &[
            "--public-prefix",
            "192.0.2.0/28",
            "--min-vni",
            "300",
            "--max-vni",
            "363",
            "--metrics-bind-address",
            &m,
            "--health-probe-bind-address",
            &h,
        ],
    );
    sh_ok(
        &server,
        "kubectl apply -f - <<'YAML'\n\
         apiVersion: core.apinet.ironcore.dev/v1alpha1\n\
         kind: Network\n\
         metadata: {name: n1}\n\
         spec: {}\n\
         YAML\n",
    );
    let mut page = String::new();
    eventually("ironnet apiserver's page", || {
        page = scrape(metrics, "/metrics").body;
        expect(
            value(
                &page,
                "apiserver_request_total",
                &[
                    ("verb", "POST"),
                    ("resource", "networks"),
                    ("group", "core.apinet.ironcore.dev"),
                    ("code", "201"),
                ],
            ) == Some(1.0),
            || "the apinet Network's create".into(),
        )?;
        expect(
            value(&page, "ironnet_allocation_pool_in_use", &[("pool", "vni")]) == Some(1.0)
                && value(&page, "ironnet_allocation_pool_free", &[("pool", "vni")]) == Some(63.0),
            || "1 of 64 VNIs in use".into(),
        )?;
        expect(
            value(&page, "ironnet_allocation_pool_size", &[("pool", "192.0.2.0/28")]) == Some(16.0),
            || "the /28 holds 16 addresses".into(),
        )
    });
    promtool(&page, "ironnet apiserver's page");
    // The health listener serves only the probes; the metrics listener only /metrics.
    let ready = scrape(health, "/readyz?verbose");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(ready.body.contains("[+]store ok"), "{}", ready.body);
    assert_eq!(scrape(health, "/metrics").status, 404);
    assert_eq!(scrape(metrics, "/readyz").status, 404);
}
