//! Creates/s at 64 concurrent clients with and without security, measured in one run:
//! (1) plain HTTP, no authentication or authorization; (2) HTTPS (rustls) with x509 client
//! certificates and Node+RBAC authorization, the user bound to a namespaced Role that allows the
//! create (not `system:masters`, so RBAC evaluates the bindings on every request).
//!
//! Each repetition starts a fresh server on a fresh embedded store (temp dir) per mode, the modes
//! alternating, and drives it from a separate client process (this binary re-executed) so that
//! the client's TLS work is not charged to the server process; both share the machine's cores.
//! Every client holds one HTTP/1.1 connection, opened (and for HTTPS, handshaken) before the
//! clock starts and reused for all of its creates, as kube-rs and client-go keep connections
//! alive.
//!
//! `cargo bench -p ironnet-apiserver --bench secure_creates` (`BENCH_REPS`, default 5;
//! `BENCH_CREATES`, the creates per run, default 16,000; `BENCH_CLIENTS`, default 64).
//!
//! `BENCH_COMPARE=metrics` compares plain HTTP with request and storage metrics off
//! (`ApiServerBuilder::request_metrics(false)`) against plain HTTP with them on (the default), the
//! same way: what counting costs, without TLS and RBAC diluting it.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use ironnet_apiserver::auth::x509::X509Authenticator;
use ironnet_apiserver::pki::Pki;
use ironnet_apiserver::{ApiServer, DefaultStrategy, ResourceDefinition, Scope};
use ironnet_store::embedded::{EmbeddedOptions, EmbeddedStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::json;

const CLIENT_ENV: &str = "IRONNET_SECURE_BENCH_CLIENT";
const WIDGETS: &str = "/apis/bench.ironnet.dev/v1/namespaces/default/widgets";
const BENCH_USER: &str = "bench-user";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds (user + system) this process has used so far.
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the parenthesized command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // USER_HZ is 100 on every Linux architecture this runs on.
    (ticks(11) + ticks(12)) as f64 / 100.0
}

fn widget(name: &str) -> Bytes {
    Bytes::from(
        json!({"apiVersion": "bench.ironnet.dev/v1", "kind": "Widget", "metadata": {"name": name, "labels": {"app": "bench"}}, "spec": {"size": 1, "color": "red"}})
            .to_string(),
    )
}

/// Where and how a client connects.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    /// For HTTPS: the CA to trust and the client certificate to present.
    tls: Option<Arc<rustls::ClientConfig>>,
}

fn client_tls(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(der.expect("CA PEM")).expect("CA certificate");
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .expect("client certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("client key PEM");
    let mut config = rustls::ClientConfig::builder_with_provider(ironnet_apiserver::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client certificate and key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// One kept-alive HTTP/1.1 connection to `target`.
async fn connect(target: &Target) -> SendRequest<Full<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(target.addr)
        .await
        .expect("connect");
    tcp.set_nodelay(true).expect("TCP_NODELAY");
    match &target.tls {
        None => {
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .expect("HTTP handshake");
            tokio::spawn(conn);
            send
        }
        Some(config) => {
            let name = ServerName::IpAddress(target.addr.ip().into());
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name, tcp)
                .await
                .expect("TLS handshake");
            let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .expect("HTTP handshake");
            tokio::spawn(conn);
            send
        }
    }
}

/// Sends one request; returns the status and body.
async fn send(conn: &mut SendRequest<Full<Bytes>>, method: &str, path: &str, body: Bytes) -> (u16, Bytes) {
    conn.ready().await.expect("connection closed");
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(body))
        .expect("request");
    let resp = conn.send_request(req).await.expect("request failed");
    let code = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("response body")
        .to_bytes();
    (code, body)
}

/// The client process: `clients` connections share `creates` POSTs; prints
/// `<creates> <seconds> <client CPU seconds>` for the timed part.
async fn client_main() {
    let clients: usize = env_or("BENCH_CLIENTS", 64);
    let creates: usize = env_or("BENCH_CREATES", 16_000);
    let addr: SocketAddr = std::env::var("BENCH_ADDR")
        .expect("BENCH_ADDR")
        .parse()
        .expect("address");
    let tls = std::env::var("BENCH_TLS_DIR").ok().map(|dir| {
        let read = |f: &str| std::fs::read_to_string(Path::new(&dir).join(f)).expect("credential file");
        client_tls(&read("ca.crt"), &read("user.crt"), &read("user.key"))
    });
    let target = Target { addr, tls };
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(connect(&target).await);
    }
    let per_client = creates / clients;
    let cpu0 = process_cpu_seconds();
    let start = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(task, mut conn)| {
            tokio::spawn(async move {
                for i in 0..per_client {
                    let (code, body) =
                        send(&mut conn, "POST", WIDGETS, widget(&format!("w-{task}-{i}"))).await;
                    if code != 201 {
                        eprintln!("create answered {code}: {}", String::from_utf8_lossy(&body));
                        std::process::exit(1);
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{} {secs} {}", per_client * clients, process_cpu_seconds() - cpu0);
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    Secure,
    /// Plain HTTP without request and storage metrics.
    Unmetered,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain HTTP",
            Mode::Secure => "TLS+x509+RBAC",
            Mode::Unmetered => "no metrics",
        }
    }
}

struct RunResult {
    rate: f64,
    server_cpu_ms_per_1k: f64,
    client_cpu_ms_per_1k: f64,
}

fn widget_kind() -> ResourceDefinition {
    ResourceDefinition::new("bench.ironnet.dev", "v1", "Widget", "widgets", Scope::Namespaced).expect("kind")
}

/// Starts a server in `mode` on a fresh store; returns it, its address, and (secure) the
/// directory with the bench user's credentials.
async fn start(mode: Mode, dir: &Path) -> (ApiServer, SocketAddr, Option<PathBuf>) {
    let store =
        Arc::new(EmbeddedStore::open(dir.join("store.redb"), EmbeddedOptions::default()).expect("store"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let builder = ApiServer::builder(store)
        .register(widget_kind(), Arc::new(DefaultStrategy))
        .expect("register");
    if mode != Mode::Secure {
        let server = builder
            .request_metrics(mode == Mode::Plain)
            .build()
            .await
            .expect("server");
        let serving = server.clone();
        tokio::spawn(async move { serving.serve(listener).await });
        return (server, addr, None);
    }
    let pki = Pki::load_or_create(&dir.join("pki")).expect("PKI");
    let serving_cert = pki
        .ensure_serving_cert(&["127.0.0.1".to_owned()])
        .expect("serving certificate");
    let tls = ironnet_apiserver::tls::server_config(
        &serving_cert.cert_pem,
        &serving_cert.key_pem,
        Some(pki.ca_pem()),
    )
    .expect("TLS config");
    let server = builder
        .authenticator(Arc::new(X509Authenticator::new(pki.ca_pem()).expect("x509")))
        .rbac_authorization()
        .build()
        .await
        .expect("server");
    let serving = server.clone();
    tokio::spawn(async move {
        serving
            .serve_tls_with_shutdown(listener, tls, std::future::pending())
            .await
    });

    // The admin (system:masters) grants the bench user create on widgets in "default" only.
    let valid = Duration::from_secs(3600);
    let admin = pki
        .issue_client_cert("bench-admin", &["system:masters"], valid)
        .expect("admin cert");
    let user = pki.issue_client_cert(BENCH_USER, &[], valid).expect("user cert");
    let admin_target = Target {
        addr,
        tls: Some(client_tls(pki.ca_pem(), &admin.cert_pem, &admin.key_pem)),
    };
    let mut admin_conn = connect(&admin_target).await;
    let rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default";
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "widget-creator"},
        "rules": [{"apiGroups": ["bench.ironnet.dev"], "resources": ["widgets"], "verbs": ["create"]}]});
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "widget-creator"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "widget-creator"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": BENCH_USER}]});
    for (path, body) in [
        (format!("{rbac}/roles"), role),
        (format!("{rbac}/rolebindings"), binding),
    ] {
        let (code, resp) = send(&mut admin_conn, "POST", &path, Bytes::from(body.to_string())).await;
        assert_eq!(code, 201, "{path}: {}", String::from_utf8_lossy(&resp));
    }
    let creds = dir.join("client");
    std::fs::create_dir_all(&creds).expect("credentials dir");
    std::fs::write(creds.join("ca.crt"), pki.ca_pem()).expect("write");
    std::fs::write(creds.join("user.crt"), &user.cert_pem).expect("write");
    std::fs::write(creds.join("user.key"), &user.key_pem).expect("write");

    // The binding reaches the authorizer's cache through a watch: wait until the user is
    // allowed, and check the grant is exactly the Role's (a list is still forbidden).
    let user_target = Target {
        addr,
        tls: Some(client_tls(pki.ca_pem(), &user.cert_pem, &user.key_pem)),
    };
    let mut user_conn = connect(&user_target).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = send(&mut user_conn, "POST", WIDGETS, widget("probe")).await;
        if code == 201 {
            break;
        }
        assert_eq!(code, 403, "unexpected answer: {}", String::from_utf8_lossy(&body));
        assert!(Instant::now() < deadline, "the RoleBinding never took effect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, _) = send(&mut user_conn, "GET", WIDGETS, Bytes::new()).await;
    assert_eq!(code, 403, "the bench user must hold only create");
    (server, addr, Some(creds))
}

async fn run(mode: Mode) -> RunResult {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, addr, creds) = start(mode, dir.path()).await;
    let mut cmd = Command::new(std::env::current_exe().expect("own path"));
    cmd.env(CLIENT_ENV, "1")
        .env("BENCH_ADDR", addr.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(creds) = &creds {
        cmd.env("BENCH_TLS_DIR", creds);
    }
    let cpu0 = process_cpu_seconds();
    let child = cmd.spawn().expect("client process");
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("client output");
    let server_cpu = process_cpu_seconds() - cpu0;
    assert!(output.status.success(), "the client process failed");
    let line = output
        .stdout
        .lines()
        .next()
        .expect("client result")
        .expect("utf-8");
    let nums: Vec<f64> = line
        .split_whitespace()
        .map(|f| f.parse().expect("number"))
        .collect();
    let [creates, secs, client_cpu] = nums[..] else {
        panic!("client printed {line:?}")
    };
    drop(server);
    RunResult {
        rate: creates / secs,
        server_cpu_ms_per_1k: server_cpu * 1e6 / creates,
        client_cpu_ms_per_1k: client_cpu * 1e6 / creates,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let threads = 2;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("runtime");
    if std::env::var_os(CLIENT_ENV).is_some() {
        runtime.block_on(client_main());
        return;
    }
    let reps: usize = env_or("BENCH_REPS", 5);
    let clients: usize = env_or("BENCH_CLIENTS", 64);
    let creates: usize = env_or("BENCH_CREATES", 16_000);
    println!(
        "apiserver secure create benchmark: {clients} clients, {} creates per run, {reps} repetitions per mode",
        creates / clients * clients
    );
    // The baseline first, the variant second: security's cost over plain HTTP, or metrics' cost over none.
    let (base_mode, variant_mode) = if std::env::var("BENCH_COMPARE").as_deref() == Ok("metrics") {
        (Mode::Unmetered, Mode::Plain)
    } else {
        (Mode::Plain, Mode::Secure)
    };
    let mut base = Vec::new();
    let mut variant = Vec::new();
    runtime.block_on(async {
        for rep in 0..reps {
            // Alternate which mode goes first so drift in the machine's load hits both alike.
            let order = if rep % 2 == 0 {
                [base_mode, variant_mode]
            } else {
                [variant_mode, base_mode]
            };
            for mode in order {
                let r = run(mode).await;
                println!(
                    "run {rep} {:<14} creates/s {:>8.0}  server CPU ms/1k creates {:>6.0}  client CPU ms/1k creates {:>6.0}",
                    mode.name(),
                    r.rate,
                    r.server_cpu_ms_per_1k,
                    r.client_cpu_ms_per_1k
                );
                if mode == base_mode { &mut base } else { &mut variant }.push(r);
            }
        }
    });
    let summary = |name: &str, rs: &[RunResult]| {
        let rates: Vec<f64> = rs.iter().map(|r| r.rate).collect();
        let (lo, hi) = rates
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
        println!(
            "{name:<14} creates/s median {:>8.0} [{lo:.0}-{hi:.0}]  server CPU ms/1k median {:.0}  client CPU ms/1k median {:.0}",
            median(rates),
            median(rs.iter().map(|r| r.server_cpu_ms_per_1k).collect()),
            median(rs.iter().map(|r| r.client_cpu_ms_per_1k).collect()),
        );
    };
    summary(base_mode.name(), &base);
    summary(variant_mode.name(), &variant);
    let ratio =
        median(variant.iter().map(|r| r.rate).collect()) / median(base.iter().map(|r| r.rate).collect());
    let pairs: Vec<f64> = base.iter().zip(&variant).map(|(b, v)| v.rate / b.rate).collect();
    println!(
        "{}/{}: ratio of medians {ratio:.3} ({:+.1}%), median of per-repetition ratios {:.3}",
        variant_mode.name(),
        base_mode.name(),
        (ratio - 1.0) * 100.0,
        median(pairs)
    );
}
