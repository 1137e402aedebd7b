//! The topology page (`/ui`) in a real headless Chromium against a real `ironnet up` holding the README
//! walkthrough's objects, read through the DOM:
//!
//! - as an operator does it, through the real `kubectl proxy` (which signs the page's requests with the admin
//!   kubeconfig): every Network with its state, peerings and interfaces (node, IPs, public IP, state), the NAT
//!   gateway with its port sections and the load balancer with its targets, as the API reports them, and the
//!   API server's counters from `/metrics`; a Network and an interface added with kubectl appear within 2 s, and a
//!   deleted Network disappears once its finalizers are released, without reloading the page;
//! - directly against the HTTPS API server: without credentials the page asks for a token (the server's 401), a
//!   wrong token is refused the same way, a signed token of a user bound to the `view` role in `default` gets the
//!   403 across namespaces with the hint to pick one, and with `?namespace=default` sees that namespace, with
//!   `/metrics` and the NAT port sections reported as forbidden (403), the token kept in session storage only.
//!
//! One Chromium serves both parts. `IRONNET_UI_SCREENSHOT=docs/ui.png` saves the operator view's screenshot there
//! (how `docs/ui.png` was made); otherwise it goes to the test's temporary directory.

#[path = "ui/cdp.rs"]
mod cdp;
#[path = "e2e/common.rs"]
#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use cdp::Browser;
use common::{ServingProcess, ironnet_apiserver, ironnet_up, repo_root};

/// What the page shows, read from its DOM by [`SNAPSHOT`].
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
struct Page {
    synced: Option<String>,
    session: Option<String>,
    connection: String,
    connection_text: String,
    networks: Vec<NetworkCard>,
    edges: Vec<Edge>,
    counters: std::collections::BTreeMap<String, String>,
    metrics_error: Option<String>,
    login: bool,
    login_reason: String,
    problems: String,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
struct NetworkCard {
    key: String,
    state: String,
    vni: String,
    peerings: Vec<Peering>,
    incoming: Vec<String>,
    interfaces: Vec<InterfaceRow>,
    nats: Vec<Nat>,
    lbs: Vec<Lb>,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
struct Peering {
    name: String,
    peer: String,
    state: String,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
struct InterfaceRow {
    key: String,
    node: String,
    state: String,
    ips: String,
    public_ip: String,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
struct Nat {
    key: String,
    ips: String,
    targets: Vec<String>,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
struct Lb {
    key: String,
    ips: String,
    targets: Vec<String>,
}

#[derive(Debug, Deserialize, Clone, PartialEq)]
struct Edge {
    edge: String,
    state: String,
}

impl Page {
    fn network(&self, key: &str) -> Option<&NetworkCard> {
        self.networks.iter().find(|n| n.key == key)
    }

    fn counter(&self, name: &str) -> Option<f64> {
        self.counters.get(name).and_then(|v| v.parse().ok())
    }
}

/// Reads the page's DOM into a [`Page`] (only elements and their data-* attributes and text).
const SNAPSHOT: &str = r#"JSON.stringify({
  synced: document.body.dataset.synced || null,
  session: document.body.dataset.session || null,
  connection: document.getElementById('connection').dataset.state,
  connectionText: document.getElementById('connection').textContent,
  networks: [...document.querySelectorAll('article[data-network]')].map((n) => ({
    key: n.dataset.network,
    state: n.dataset.state,
    vni: (n.querySelector('.vni') || {}).textContent || '',
    peerings: [...n.querySelectorAll('li[data-peering]')].map((p) => ({ name: p.dataset.peering, peer: p.dataset.peer, state: p.dataset.state })),
    incoming: [...n.querySelectorAll('li[data-incoming-peering]')].map((p) => p.dataset.incomingPeering),
    interfaces: [...n.querySelectorAll('tr[data-interface]')].map((r) => ({
      key: r.dataset.interface, node: r.dataset.node, state: r.dataset.state,
      ips: r.querySelector('.ips').textContent, publicIp: r.querySelector('.public-ip').textContent })),
    nats: [...n.querySelectorAll('[data-natgateway]')].map((g) => ({
      key: g.dataset.natgateway, ips: g.querySelector('.nat-ips').textContent,
      targets: [...g.querySelectorAll('[data-nat-target]')].map((t) => t.dataset.natTarget) })),
    lbs: [...n.querySelectorAll('[data-loadbalancer]')].map((l) => ({
      key: l.dataset.loadbalancer, ips: l.querySelector('.lb-ips').textContent,
      targets: [...l.querySelectorAll('[data-target]')].map((t) => t.dataset.target) })),
  })),
  edges: [...document.querySelectorAll('[data-edge]')].map((e) => ({ edge: e.dataset.edge, state: e.dataset.state })),
  counters: Object.fromEntries([...document.querySelectorAll('[data-counter]')].map((r) => [r.dataset.counter, r.querySelector('.value').textContent])),
  metricsError: (document.querySelector('[data-metrics-error]') || { dataset: {} }).dataset.metricsError || null,
  login: !document.getElementById('login').hidden,
  loginReason: document.getElementById('login-reason').textContent,
  problems: document.getElementById('problems').textContent,
})"#;

async fn snapshot(browser: &mut Browser) -> Page {
    let json = browser.eval(SNAPSHOT).await;
    serde_json::from_str(json.as_str().expect("the snapshot is a string")).unwrap()
}

/// Polls the DOM every 25 ms until `ready` holds, failing after `within` with the last view. Returns the view and
/// how long it took.
async fn until(
    browser: &mut Browser,
    within: Duration,
    what: &str,
    ready: impl Fn(&Page) -> bool,
) -> (Page, Duration) {
    let start = Instant::now();
    loop {
        let page = snapshot(browser).await;
        if ready(&page) {
            return (page, start.elapsed());
        }
        assert!(
            start.elapsed() < within,
            "the page did not show {what} within {within:?}; it shows:\n{page:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn kubectl(up: &ServingProcess, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", up.kubeconfig())
        .env("HOME", up.dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The README walkthrough's blocks that create objects (its helpers, Networks and peerings, the VirtualIP and
/// NATGateway, the interfaces, the LoadBalancer and the NetworkPolicy), without the block that applies and deletes
/// every example and without the final deletions.
fn walkthrough_objects_script() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme
        .find("<!-- walkthrough:begin -->")
        .expect("README has the walkthrough");
    let mut blocks = Vec::new();
    let mut block: Option<String> = None;
    for line in readme[start..].lines() {
        match (&mut block, line.trim_end()) {
            (None, "```sh") => block = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                block = None;
            }
            (Some(b), l) => {
                b.push_str(l);
                b.push('\n');
            }
            (None, "<!-- walkthrough:end -->") => break,
            _ => {}
        }
    }
    let mut script = String::new();
    for b in blocks {
        if b.contains("kubectl delete networkpolicy") {
            break;
        }
        if !b.contains("EXAMPLES=") {
            script.push_str(&b);
        }
    }
    assert!(
        script.contains("kind: LoadBalancer"),
        "the walkthrough creates a LoadBalancer:\n{script}"
    );
    script
}

/// A `kubectl proxy` process, stopped when dropped (also when the test fails).
struct KubectlProxy(Child);

impl Drop for KubectlProxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `kubectl proxy --port=0` for the admin kubeconfig, and the address it serves on.
fn kubectl_proxy(up: &ServingProcess) -> (KubectlProxy, String) {
    let mut child = Command::new("kubectl")
        .args(["proxy", "--port=0"])
        .env("KUBECONFIG", up.kubeconfig())
        .env("HOME", up.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = KubectlProxy(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("Starting to serve on ")
        .unwrap_or_else(|| panic!("kubectl proxy said {line:?}"))
        .to_owned();
    (child, addr)
}

fn screenshot_path(up: &ServingProcess) -> std::path::PathBuf {
    match std::env::var_os("IRONNET_UI_SCREENSHOT") {
        Some(p) => repo_root().join(p),
        None => up.dir().join("ui.png"),
    }
}

#[test]
fn topology_page_shows_the_walkthrough_and_follows_changes_in_chromium() {
    let up = ironnet_up();
    let script = walkthrough_objects_script();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .current_dir(repo_root())
        .env("KUBECONFIG", up.kubeconfig())
        .env("HOME", up.dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "walkthrough objects: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        up.log()
    );
    let (proxy, proxy_addr) = kubectl_proxy(&up);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut browser = Browser::launch().await;
        operator_view_through_kubectl_proxy(&up, &mut browser, &proxy_addr).await;
        page_modules_in_the_browser(&mut browser).await;
        tenant_view_with_a_token(&up, &mut browser).await;
        browser.close().await;
    });
    drop(proxy);
}

async fn operator_view_through_kubectl_proxy(up: &ServingProcess, browser: &mut Browser, proxy: &str) {
    browser.navigate(&format!("http://{proxy}/ui/")).await;
    let jsonpath = |args: &[&str]| kubectl(up, args, None);
    let vip = jsonpath(&["get", "virtualip", "web-vip", "-o", "jsonpath={.status.ip}"]);
    let nat_ip = jsonpath(&["get", "natgateway", "outbound", "-o", "jsonpath={.status.ips[0]}"]);
    let lb_ip = jsonpath(&["get", "loadbalancer", "web", "-o", "jsonpath={.status.ips[0]}"]);
    let tenant_provider = jsonpath(&["get", "network", "tenant", "-o", "jsonpath={.spec.providerID}"]);
    let tenant_vni = tenant_provider.split('/').nth(4).unwrap().to_owned();
    assert!(!vip.is_empty() && !nat_ip.is_empty() && !lb_ip.is_empty());

    // Every Network and every interface the API lists, and each fact of the walkthrough.
    let api_networks: BTreeSet<String> = jsonpath(&[
        "get",
        "networks",
        "-A",
        "-o",
        "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {end}",
    ])
    .split_whitespace()
    .map(str::to_owned)
    .collect();
    let api_interfaces: BTreeSet<String> = jsonpath(&[
        "get",
        "networkinterfaces",
        "-A",
        "-o",
        "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {end}",
    ])
    .split_whitespace()
    .map(str::to_owned)
    .collect();
    assert_eq!(api_networks.len(), 4, "{api_networks:?}");
    let (page, took) = until(
        browser,
        Duration::from_secs(30),
        "the walkthrough's topology",
        |p| {
            let shown: BTreeSet<String> = p.networks.iter().map(|n| n.key.clone()).collect();
            let nics: BTreeSet<String> = p
                .networks
                .iter()
                .flat_map(|n| n.interfaces.iter().map(|i| i.key.clone()))
                .collect();
            p.connection == "live"
                && p.synced.as_deref() == Some("true")
                && shown == api_networks
                && nics == api_interfaces
                && p.network("default/tenant").is_some_and(|t| {
                    t.lbs.first().is_some_and(|lb| lb.targets == ["web-1"])
                        && t.nats.first().is_some_and(|n| n.targets == ["web-2"])
                        && t.interfaces.iter().all(|i| i.state == "Available")
                })
                && p.counter("requests").is_some()
        },
    )
    .await;
    println!("walkthrough topology shown {took:?} after the page loaded");
    let tenant = page.network("default/tenant").unwrap();
    assert_eq!(tenant.state, "Available");
    assert_eq!(tenant.vni, format!("VNI {tenant_vni}"));
    assert_eq!(
        tenant.interfaces,
        [
            InterfaceRow {
                key: "default/web-1".into(),
                node: "node-1".into(),
                state: "Available".into(),
                ips: "10.0.0.1".into(),
                public_ip: vip.clone()
            },
            InterfaceRow {
                key: "default/web-2".into(),
                node: "node-1".into(),
                state: "Available".into(),
                ips: "10.0.0.2".into(),
                public_ip: "—".into()
            },
        ]
    );
    assert_eq!(
        tenant.nats,
        [Nat {
            key: "default/outbound".into(),
            ips: nat_ip,
            targets: vec!["web-2".into()]
        }]
    );
    assert_eq!(
        tenant.lbs,
        [Lb {
            key: "default/web".into(),
            ips: lb_ip,
            targets: vec!["web-1".into()]
        }]
    );
    let peering = |name: &str, peer: &str, state: &str| Peering {
        name: name.into(),
        peer: peer.into(),
        state: state.into(),
    };
    let blue = page.network("default/blue").unwrap();
    assert_eq!(
        blue.peerings,
        [peering("default/blue/to-green", "default/green", "Ready")]
    );
    assert_eq!(
        blue.incoming,
        ["default/green"],
        "red's one-sided peering is not accepted by blue"
    );
    assert_eq!(
        page.network("default/green").unwrap().peerings,
        [peering("default/green/to-blue", "default/blue", "Ready")]
    );
    let red = page.network("default/red").unwrap();
    assert_eq!(
        (red.state.as_str(), red.peerings.clone()),
        (
            "Available",
            vec![peering("default/red/to-blue", "default/blue", "Pending")]
        )
    );
    assert!(red.interfaces.is_empty());
    assert_eq!(
        page.edges,
        [
            Edge {
                edge: "default/blue|default/green".into(),
                state: "Ready".into()
            },
            Edge {
                edge: "default/blue|default/red".into(),
                state: "Pending".into()
            },
        ]
    );
    // The counters come from the API server's /metrics: the page's five watches are open, and requests count up.
    assert!(page.counter("watches").unwrap() >= 5.0, "{:?}", page.counters);
    assert!(page.counter("code-2xx").unwrap() > 0.0, "{:?}", page.counters);
    assert!(
        page.counter("resource-networks").unwrap() > 0.0,
        "{:?}",
        page.counters
    );
    let requests = page.counter("requests").unwrap();
    until(browser, Duration::from_secs(10), "a higher request count", |p| {
        p.counter("requests").is_some_and(|r| r > requests)
    })
    .await;

    // Changes arrive by watch, within 2 s, with no reload.
    browser.eval("window.notReloaded = true").await;
    kubectl(
        up,
        &["apply", "-f", "-"],
        Some(
            "apiVersion: networking.ironcore.dev/v1alpha1\nkind: Network\nmetadata: {name: purple}\nspec: {peerings: [{name: to-tenant, networkRef: {name: tenant}}]}\n",
        ),
    );
    let (_, took) = until(browser, Duration::from_secs(2), "the new Network purple", |p| {
        p.network("default/purple").is_some()
    })
    .await;
    println!("Network purple shown {took:?} after kubectl apply returned");
    kubectl(
        up,
        &["apply", "-f", "-"],
        Some(
            "apiVersion: networking.ironcore.dev/v1alpha1\nkind: NetworkInterface\nmetadata: {name: web-3}\nspec: {networkRef: {name: tenant}, ipFamilies: [IPv4], ips: [{value: 10.0.0.3}]}\n",
        ),
    );
    let (page, took) = until(
        browser,
        Duration::from_secs(2),
        "the new interface web-3 in tenant",
        |p| {
            p.network("default/tenant")
                .is_some_and(|t| t.interfaces.iter().any(|i| i.key == "default/web-3"))
        },
    )
    .await;
    println!("NetworkInterface web-3 shown {took:?} after kubectl apply returned");
    let web3 = page
        .network("default/tenant")
        .unwrap()
        .interfaces
        .iter()
        .find(|i| i.key == "default/web-3")
        .unwrap()
        .clone();
    assert_eq!(
        (web3.ips.as_str(), web3.node.as_str(), web3.public_ip.as_str()),
        ("10.0.0.3", "", "—"),
        "not placed on a node yet"
    );
    kubectl(up, &["delete", "network", "red", "--wait=false"], None);
    // Deletion waits for the controllers to release red's finalizers, so it gets more time than additions.
    let (_, took) = until(browser, Duration::from_secs(10), "Network red gone", |p| {
        p.network("default/red").is_none() && !p.edges.iter().any(|e| e.edge.contains("default/red"))
    })
    .await;
    println!("Network red removed {took:?} after kubectl delete returned");
    until(
        browser,
        Duration::from_secs(10),
        "purple's peering to tenant in the graph",
        |p| {
            p.edges
                .iter()
                .any(|e| e.edge == "default/purple|default/tenant" && e.state == "Pending")
        },
    )
    .await;
    assert_eq!(
        browser.eval("window.notReloaded === true").await,
        Value::Bool(true),
        "the page was not reloaded"
    );

    let path = screenshot_path(up);
    let size = browser.screenshot(&path).await;
    let png = std::fs::read(&path).unwrap();
    assert!(
        size > 10_000 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "a PNG of the page at {}",
        path.display()
    );
}

async fn tenant_view_with_a_token(up: &ServingProcess, browser: &mut Browser) {
    let server = kubectl(
        up,
        &["config", "view", "-o", "jsonpath={.clusters[0].cluster.server}"],
        None,
    );
    assert!(server.starts_with("https://"), "{server}");
    browser.navigate(&format!("{server}/ui/")).await;
    let (page, _) = until(
        browser,
        Duration::from_secs(10),
        "the sign-in form (no credentials: 401)",
        |p| p.login,
    )
    .await;
    assert!(page.login_reason.contains("401"), "{}", page.login_reason);
    assert!(page.networks.is_empty(), "nothing is shown without credentials");

    let sign_in = |token: &str| {
        format!(
            "document.getElementById('token').value = {}; document.getElementById('login-form').requestSubmit(); true",
            serde_json::to_string(token).unwrap()
        )
    };
    browser.eval(&sign_in("ironnet.v1.forged.token")).await;
    let (page, _) = until(browser, Duration::from_secs(10), "the refused token's 401", |p| {
        p.session.as_deref() == Some("2") && p.login
    })
    .await;
    assert!(page.login_reason.contains("401"), "{}", page.login_reason);
    assert!(page.networks.is_empty(), "nothing is shown for a refused token");

    kubectl(
        up,
        &["apply", "-f", "-"],
        Some(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: topology-viewer, namespace: default}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\nsubjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: topology-viewer}]\n",
        ),
    );
    let data_dir = up.dir().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_ironnet"))
        .args([
            "token",
            "create",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--user",
            "topology-viewer",
            "--ttl",
            "1h",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    browser.eval(&sign_in(&token)).await;
    // The viewer may read only namespace default: across namespaces the API answers 403, and the page says how
    // to ask for one namespace.
    let (page, _) = until(
        browser,
        Duration::from_secs(10),
        "the viewer's 403 across namespaces",
        |p| p.session.as_deref() == Some("3") && !p.login && p.connection == "error",
    )
    .await;
    assert!(
        page.connection_text.contains("forbidden") && page.connection_text.contains("/ui/?namespace=NAME"),
        "{}",
        page.connection_text
    );
    assert!(page.networks.is_empty());
    // The token stays in the tab's session storage across navigations: no second sign-in.
    browser.navigate(&format!("{server}/ui/?namespace=default")).await;
    let (page, _) = until(
        browser,
        Duration::from_secs(10),
        "namespace default for the viewer",
        |p| {
            !p.login
                && p.connection == "live"
                && p.network("default/tenant")
                    .is_some_and(|t| t.lbs.first().is_some_and(|lb| lb.targets == ["web-1"]))
                && p.metrics_error.is_some()
                && !p.problems.is_empty()
        },
    )
    .await;
    let mut shown: Vec<&str> = page.networks.iter().map(|n| n.key.as_str()).collect();
    shown.sort();
    assert_eq!(
        shown,
        [
            "default/blue",
            "default/green",
            "default/purple",
            "default/tenant"
        ]
    );
    assert_eq!(
        page.metrics_error.as_deref(),
        Some("403"),
        "the view role does not grant /metrics"
    );
    assert!(
        page.problems.contains("nattables"),
        "NAT port sections need ironcore-net: {}",
        page.problems
    );
    assert!(page.network("default/tenant").unwrap().nats[0].targets.is_empty());
    let storage = browser
        .eval("JSON.stringify([sessionStorage.getItem('ironnet.ui.token'), localStorage.length, document.cookie])")
        .await;
    assert_eq!(
        storage,
        Value::String(serde_json::to_string(&(token, 0, "")).unwrap()),
        "the token stays in this tab's session storage"
    );
}

/// The page's pure modules, imported in the browser that runs them: the Prometheus text parser with escaped quotes,
/// backslashes and a brace inside label values, the summary (sums, rate, classes, tenant resources, pools), and the
/// provider ID segments.
async fn page_modules_in_the_browser(browser: &mut Browser) {
    let result = browser
        .eval(
            r#"(async () => {
  const m = await import('/ui/metrics.js');
  const t = await import('/ui/topology.js');
  const text = [
    '# HELP apiserver_request_total Counter of apiserver requests.',
    '# TYPE apiserver_request_total counter',
    'apiserver_request_total{code="200",group="networking.ironcore.dev",resource="networks",verb="LIST"} 7',
    'apiserver_request_total{code="422",group="networking.ironcore.dev",resource="networks",verb="POST"} 1',
    'apiserver_request_total{code="200",group="",resource="",verb="GET"} 2',
    'apiserver_longrunning_requests{resource="networks"} 3',
    'apiserver_storage_objects{resource="networks.networking.ironcore.dev"} 4',
    'apiserver_storage_objects{resource="nodes"} 1',
    'ironnet_allocation_pool_in_use{pool="192.0.2.0/24"} 3',
    'ironnet_allocation_pool_size{pool="192.0.2.0/24"} 256',
    'weird{a="x\\"}y",b="\\\\"} 1.5e3',
    'not a sample',
  ].join('\n');
  const samples = m.parseExposition(text);
  const s = m.summarize(samples, { requests: 4 }, 2);
  return JSON.stringify({
    weird: samples.find((x) => x.name === 'weird'),
    count: samples.length,
    summary: { requests: s.requests, rate: s.rate, byClass: s.byClass, byResource: s.byResource, watches: s.watches, stored: s.stored, pools: s.pools, other: s.ironnet.length },
    node: t.providerSegment('ironcore-net://apinet-system/web-1/node-7/0f3c', 2),
    foreign: t.providerSegment('other://apinet-system/web-1/node-7/0f3c', 2),
  });
})()"#,
        )
        .await;
    let got: Value = serde_json::from_str(result.as_str().unwrap()).unwrap();
    assert_eq!(
        got,
        serde_json::json!({
            "weird": {"name": "weird", "labels": {"a": "x\"}y", "b": "\\"}, "value": 1500},
            "count": 9,
            "summary": {
                "requests": 10, "rate": 3, "byClass": {"2xx": 9, "4xx": 1}, "byResource": {"networks": 8},
                "watches": 3, "stored": {"networks": 4}, "pools": {"192.0.2.0/24": {"inUse": 3, "size": 256}}, "other": 0
            },
            "node": "node-7",
            "foreign": "",
        })
    );
}

/// `ironnet apiserver` serves the page too, over HTTPS to a client without credentials (curl, no certificate, no
/// token), with its security headers, while the API itself answers that client 401.
#[test]
fn apiserver_serves_the_page_without_credentials_and_the_api_refuses_them() {
    let apiserver = ironnet_apiserver();
    let server = kubectl(
        &apiserver,
        &["config", "view", "-o", "jsonpath={.clusters[0].cluster.server}"],
        None,
    );
    let curl = |path: &str| {
        let out = Command::new("curl")
            .args(["-sk", "-D", "-", &format!("{server}{path}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().to_lowercase()
    };
    let page = curl("/ui/");
    assert!(
        page.starts_with("http/2 200") || page.starts_with("http/1.1 200"),
        "{page}"
    );
    assert!(page.contains("content-type: text/html; charset=utf-8"), "{page}");
    assert!(
        page.contains("content-security-policy: default-src 'self'"),
        "{page}"
    );
    assert!(page.contains("<title>ironnet topology</title>"), "{page}");
    let module = curl("/ui/informer.js");
    assert!(
        module.contains("content-type: text/javascript; charset=utf-8"),
        "{module}"
    );
    assert!(module.contains("export class informer"), "{module}");
    let api = curl("/apis/networking.ironcore.dev/v1alpha1/networks");
    assert!(api.contains(" 401"), "{api}");
    assert!(api.contains("\"reason\":\"unauthorized\""), "{api}");
}
