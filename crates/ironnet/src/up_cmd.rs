//! `ironnet up`: the whole control plane in one process on the embedded store — the API server
//! with every IronCore kind and its allocators, the controllers, apinetlet, and one simulated
//! Node — with an admin kubeconfig for kubectl.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde_json::json;

use ironnet_apiserver::auth::identities as ids;

use crate::lab::{self, Lab, LabConfig};
use crate::serve::{self, AllocationArgs};

/// The public prefixes `ironnet up` allocates from when none are given: documentation ranges
/// (RFC 5737, RFC 3849), which are never routed on the internet.
const DEFAULT_PUBLIC_PREFIXES: [&str; 2] = ["192.0.2.0/24", "2001:db8::/64"];

/// The partition of the simulated node (the Node label metalnetlet partitions by; the key of its
/// Network peering reports).
const SIMULATED_PARTITION: &str = "simulated";

/// Arguments of `ironnet up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Directory for the embedded store, the cluster CA and keys (`DIR/pki`), the admin
    /// kubeconfig (`DIR/kubeconfig`) and each component's (`DIR/kubeconfigs/`).
    #[arg(long, default_value = "ironnet-data")]
    data_dir: PathBuf,
    #[command(flatten)]
    serving: serve::ServingArgs,
    /// Name of the simulated hypervisor Node registered at startup.
    #[arg(long, default_value = "node-1")]
    node_name: String,
    /// Run N real hypervisors instead of the simulated node (needs root): each an `ironnet dpservice` with
    /// TAP ports and an `ironnet metalnet`, joined by an IPv6 underlay through a router namespace, two metalbond
    /// servers and an internet namespace behind a border router (see docs/lab.md).
    #[arg(long, default_value_t = 0)]
    hypervisors: usize,
    /// VM ports (TAP devices) per hypervisor.
    #[arg(long, default_value_t = 8)]
    ports_per_hypervisor: usize,
    /// Prefix of the lab's network namespaces and TAP devices (1..=7 lowercase letters or digits).
    #[arg(long, default_value = "ironnet")]
    lab_prefix: String,
    #[command(flatten)]
    allocation: AllocationArgs,
    #[command(flatten)]
    inflight: serve::InflightArgs,
    /// `--metrics-bind-address`: one page with the API server's metrics (requests, storage, allocation pools)
    /// and the in-process controllers' (controller-manager, apinetlet, metalnetlet);
    /// `--health-probe-bind-address`: `/readyz` passes once the store answers and the controllers are started.
    /// Both off by default.
    #[command(flatten)]
    telemetry: ironnet_telemetry::TelemetryArgs,
}

/// Runs everything until Ctrl-C / SIGTERM.
pub async fn run(mut args: UpArgs) -> anyhow::Result<()> {
    if args.allocation.public_prefixes.is_empty() {
        args.allocation.public_prefixes = DEFAULT_PUBLIC_PREFIXES
            .iter()
            .map(|p| p.parse().expect("valid default prefix"))
            .collect();
    }
    let allocation = args.allocation.config()?;
    args.serving.validate()?;
    let store = serve::open_store(&args.data_dir, &[]).await?;
    let server = serve::listen(
        store.clone(),
        &allocation,
        &args.data_dir,
        &args.serving,
        &args.inflight,
    )
    .await?;
    // One page for the whole process: the API server's families and the controllers' (which every in-process
    // controller, apinetlet and metalnetlet included, counts in the runtime's process-wide set).
    let telemetry = serve::apiserver_telemetry(&server.api, store);
    telemetry.register(ironnet_runtime::metrics::register);
    let controllers_started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let started = controllers_started.clone();
    telemetry.add_readiness_check("controllers-started", move || {
        if started.load(std::sync::atomic::Ordering::Acquire) {
            Ok(())
        } else {
            Err("the controllers are starting".to_owned())
        }
    });
    let endpoints = telemetry.serve(&args.telemetry).await?;
    let kubeconfig = server.kubeconfig.clone();
    let hypervisor_names: Vec<String> = (1..=args.hypervisors).map(lab::hypervisor_name).collect();
    let identities = Identities::write(&server, &kubeconfig, &hypervisor_names)?;
    let url = server.url.clone();
    let prefixes: Vec<String> = allocation
        .public_prefixes
        .iter()
        .map(ToString::to_string)
        .collect();
    println!(
        "ironnet is up: API server on {url} (data in {})",
        args.data_dir.display()
    );
    println!(
        "  public prefixes: {}; VNIs {}..={}",
        prefixes.join(", "),
        args.allocation.min_vni,
        args.allocation.max_vni
    );
    if args.hypervisors == 0 {
        println!("  simulated node: {}", args.node_name);
    }
    if let Some(addr) = endpoints.metrics {
        println!("  metrics: http://{addr}/metrics");
    }
    if let Some(addr) = endpoints.health {
        println!("  health: http://{addr}/readyz");
    }
    println!();
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl api-resources --api-group=networking.ironcore.dev");
    // Not `-f examples/`: the directory also holds the guide's status fragments, which are not objects.
    println!("  kubectl apply -f examples/00-network.yaml -f examples/04-virtualip.yaml");
    println!("  kubectl get networks,virtualips          # README.md walks through every flow");
    println!();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        serve::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let server = tokio::spawn(server.serve(stopped(stop_rx.clone())));
    // Every component talks to the server over HTTPS with its own identity, as it would from
    // another machine.
    let admin = serve::client_from(&kubeconfig).await?;
    let controllers = tokio::spawn(ironnet_controllers::run(
        ironnet_controllers::ControllerConfig::default(),
        serve::client_from(&identities.controller_manager).await?,
        stopped(stop_rx.clone()),
    ));
    // One server serves both API groups, so apinetlet's two clients are the same.
    let apinetlet_client = serve::client_from(&identities.apinetlet).await?;
    let apinetlet = tokio::spawn(ironnet_apinetlet::run(
        ironnet_apinetlet::ApinetletConfig::new(ironnet_apinetlet::DEFAULT_APINET_NAMESPACE),
        apinetlet_client.clone(),
        apinetlet_client,
        stopped(stop_rx.clone()),
    ));
    let mut lab = None;
    let node = if args.hypervisors == 0 {
        // Stands in for the hypervisors: realises what is placed on the node.
        register_node(&admin, &args.node_name).await?;
        tokio::spawn(ironnet_controllers::simulated_node::run(
            serve::client_from(&identities.simulated_node).await?,
            args.node_name.clone(),
            SIMULATED_PARTITION.to_owned(),
            stopped(stop_rx.clone()),
        ))
    } else {
        let config = LabConfig {
            hypervisors: args.hypervisors,
            ports: args.ports_per_hypervisor,
            prefix: args.lab_prefix.clone(),
            data_dir: std::path::absolute(&args.data_dir)?,
            kubeconfig: std::path::absolute(&kubeconfig)?,
            node_kubeconfigs: identities.nodes.clone(),
        };
        // metalnetlet of the lab's partition, with the metalnet objects on the same server.
        let metalnetlet_client = serve::client_from(&identities.metalnetlet).await?;
        let metalnetlet = tokio::spawn(ironnet_metalnetlet::run(
            ironnet_metalnetlet::MetalnetletConfig::new(lab::PARTITION),
            metalnetlet_client.clone(),
            metalnetlet_client,
            stopped(stop_rx.clone()),
        ));
        // On failure the lab has removed what it built; returning ends the in-process components too.
        let started = Lab::start(config, admin).await.context("starting the lab")?;
        print_lab(&started);
        lab = Some(started);
        metalnetlet
    };
    controllers_started.store(true, std::sync::atomic::Ordering::Release);
    println!("Press Ctrl-C to stop.");
    let mut server = server;
    match lab.as_mut() {
        // Restart the lab's processes that exit, as a node's init system would, and say so.
        Some(lab) => {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
            loop {
                tokio::select! {
                    done = &mut server => {
                        done.context("API server")??;
                        break;
                    }
                    _ = tick.tick() => {
                        for line in lab.supervise().await {
                            tracing::warn!("{line}");
                        }
                    }
                }
            }
        }
        None => server.await.context("API server")??,
    }
    controllers.await.context("controllers")?;
    apinetlet.await.context("apinetlet")?;
    node.await.context("node")?;
    if let Some(mut lab) = lab {
        lab.stop().await;
    }
    Ok(())
}

/// The kubeconfig of each component `ironnet up` runs.
struct Identities {
    controller_manager: PathBuf,
    apinetlet: PathBuf,
    metalnetlet: PathBuf,
    simulated_node: PathBuf,
    /// Each hypervisor's metalnet, by node name.
    nodes: HashMap<String, PathBuf>,
}

/// How long the node tokens `ironnet up` issues are valid; a restart issues new ones.
const NODE_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

impl Identities {
    /// Writes a kubeconfig per component under `DIR/kubeconfigs/`: client certificates for the
    /// controllers, signed node tokens (`system:node:<name>` in `system:nodes`) for metalnet.
    /// With --insecure-plain-http there are no identities and everyone uses `admin`.
    fn write(server: &serve::ListeningServer, admin: &Path, nodes: &[String]) -> anyhow::Result<Identities> {
        let Some(creds) = &server.credentials else {
            return Ok(Identities {
                controller_manager: admin.to_owned(),
                apinetlet: admin.to_owned(),
                metalnetlet: admin.to_owned(),
                simulated_node: admin.to_owned(),
                nodes: nodes.iter().map(|n| (n.clone(), admin.to_owned())).collect(),
            });
        };
        let mut node_kubeconfigs = HashMap::new();
        for node in nodes {
            let path = creds.token_kubeconfig(
                &format!("node-{node}"),
                &ids::node_user(node),
                &[ids::NODES_GROUP.to_owned()],
                NODE_TOKEN_TTL,
            )?;
            node_kubeconfigs.insert(node.clone(), std::path::absolute(path)?);
        }
        Ok(Identities {
            controller_manager: creds.certificate_kubeconfig(
                "controller-manager",
                ids::CONTROLLER_MANAGER_USER,
                &[],
            )?,
            apinetlet: creds.certificate_kubeconfig("apinetlet", ids::APINETLET_USER, &[])?,
            metalnetlet: creds.certificate_kubeconfig("metalnetlet", ids::METALNETLET_USER, &[])?,
            simulated_node: creds.certificate_kubeconfig("simulated-node", ids::SIMULATED_NODE_USER, &[])?,
            nodes: node_kubeconfigs,
        })
    }
}

/// Tells the user what the lab runs and how to reach it.
fn print_lab(lab: &Lab) {
    let config = lab.config();
    println!(
        "  hypervisors (metalnet Nodes, apinet Nodes {}.<name>):",
        lab::PARTITION
    );
    for (name, dp) in &lab.hypervisors {
        println!("    {name}: dpservice gRPC {dp}");
    }
    println!("  metalbond servers: {}", lab.metalbond.join(", "));
    println!(
        "  internet: network namespace {} ({}), behind router namespace {}",
        config.internet_ns(),
        lab::INTERNET_ADDRESS,
        config.router_ns()
    );
    println!("  logs: {}", config.data_dir.join("logs").display());
    println!("  metrics and health probes:");
    for (name, address) in &lab.telemetry {
        println!("    {name}: http://{address}/metrics");
    }
    println!();
    println!("  attach a VM:  ironnet vm create vm1 --node hv-1 --nic <tenant NetworkInterface>");
    println!("  use it:       ip netns exec vm1 ping {}", lab::INTERNET_ADDRESS);
    println!();
}

/// Registers the simulated hypervisor as a `core.apinet.ironcore.dev` Node (if absent).
async fn register_node(client: &kube::Client, name: &str) -> anyhow::Result<()> {
    let resource = ApiResource {
        group: "core.apinet.ironcore.dev".into(),
        version: "v1alpha1".into(),
        api_version: "core.apinet.ironcore.dev/v1alpha1".into(),
        kind: "Node".into(),
        plural: "nodes".into(),
    };
    let nodes: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let node: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"topology.core.apinet.ironcore.dev/partition": SIMULATED_PARTITION}},
        "spec": {},
    }))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e).context("registering the simulated node"),
    }
}
