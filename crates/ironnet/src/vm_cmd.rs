//! `ironnet vm create|delete`: a machine provider stand-in, so that a person can attach a "VM" (a network
//! namespace) to a tenant NetworkInterface without IronCore's compute stack.
//!
//! It plays libvirt-provider's part of the NetworkInterface creation flow: it creates the ironcore-net
//! NetworkInterface on a hypervisor Node and binds the tenant NetworkInterface to it through `spec.providerID`;
//! apinetlet, metalnetlet and the hypervisor's metalnet then do the rest. Once metalnet reports the TAP device
//! it claimed for the interface, the command moves that device into the VM's namespace and leases the address
//! with a real DHCP client from the hypervisor's dataplane, as a VM's network scripts would.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ironnet_api::{apinet, networking};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::netns;

/// `ironnet vm` subcommands.
#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Attach a VM (a network namespace) to a tenant NetworkInterface on a hypervisor of the lab.
    Create(CreateArgs),
    /// Detach a VM: remove its namespace and its ironcore-net NetworkInterface.
    Delete(DeleteArgs),
}

/// Flags every `ironnet vm` subcommand shares.
#[derive(Debug, Args)]
pub struct Common {
    /// The admin kubeconfig (`ironnet up` writes it to `<data-dir>/kubeconfig`).
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: PathBuf,
    /// Where VMs are recorded; defaults to the kubeconfig's directory (the data dir of `ironnet up`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Namespace of the tenant objects.
    #[arg(long, short = 'n', default_value = "default")]
    pub namespace: String,
    /// Namespace of the ironcore-net objects.
    #[arg(long, default_value = ironnet_apinetlet::DEFAULT_APINET_NAMESPACE)]
    pub apinet_namespace: String,
}

impl Common {
    fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            self.kubeconfig
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        })
    }
}

/// Flags of `ironnet vm create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The VM's name.
    pub name: String,
    /// The hypervisor to run on (`hv-1`, …, as `ironnet up --hypervisors` names them).
    #[arg(long)]
    pub node: String,
    /// The tenant NetworkInterface to attach.
    #[arg(long)]
    pub nic: String,
    /// The VM's network namespace (default: the VM's name).
    #[arg(long)]
    pub network_namespace: Option<String>,
    /// The hypervisors' partition.
    #[arg(long, default_value = crate::lab::PARTITION)]
    pub partition: String,
    /// How long to wait for the hypervisor to realise the interface.
    #[arg(long, default_value = "60s", value_parser = humantime_secs)]
    pub timeout: Duration,
    #[command(flatten)]
    pub common: Common,
}

/// Flags of `ironnet vm delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The VM's name.
    pub name: String,
    #[command(flatten)]
    pub common: Common,
}

/// Parses `N` or `Ns` as seconds.
fn humantime_secs(s: &str) -> Result<Duration, String> {
    s.trim_end_matches('s')
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("invalid duration {s:?} (seconds, e.g. 60s)"))
}

/// What `vm create` records so that `vm delete` and the lab's cleanup can undo it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VmRecord {
    /// The VM's name.
    pub name: String,
    /// Its network namespace.
    pub netns: String,
    /// The ironcore-net NetworkInterface created for it.
    pub apinet_nic: String,
    /// The ironcore-net namespace.
    pub apinet_namespace: String,
    /// The TAP device moved into the namespace.
    pub tap: String,
    /// The leased address.
    pub address: String,
}

/// The VMs recorded in `dir` (unreadable records are skipped).
pub fn recorded(dir: &Path) -> Vec<VmRecord> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect()
}

async fn client(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Runs a `vm` subcommand.
pub async fn run(cmd: VmCommand) -> anyhow::Result<()> {
    match cmd {
        VmCommand::Create(args) => {
            let record = create(&args).await?;
            println!(
                "vm {} is up: {} in network namespace {} (device {})",
                record.name, record.address, record.netns, record.tap
            );
            println!("  ip netns exec {} ping …", record.netns);
            Ok(())
        }
        VmCommand::Delete(args) => delete(&args).await,
    }
}

/// Attaches the VM; see the module documentation.
pub async fn create(args: &CreateArgs) -> anyhow::Result<VmRecord> {
    let common = &args.common;
    let vm_dir = crate::lab::vm_dir(&common.data_dir());
    let record_path = vm_dir.join(format!("{}.json", args.name));
    if record_path.exists() {
        bail!("vm {} exists (see {})", args.name, record_path.display());
    }
    let netns_name = args
        .network_namespace
        .clone()
        .unwrap_or_else(|| args.name.clone());
    let client = client(&common.kubeconfig).await?;
    let nics: Api<networking::NetworkInterface> = Api::namespaced(client.clone(), &common.namespace);
    let nic = nics
        .get(&args.nic)
        .await
        .with_context(|| format!("NetworkInterface {}/{}", common.namespace, args.nic))?;
    let nic_uid = nic.metadata.uid.clone().context("NetworkInterface without uid")?;
    if !nic.spec.provider_id.is_empty() {
        bail!(
            "NetworkInterface {} is already attached ({})",
            args.nic,
            nic.spec.provider_id
        );
    }
    // Literal IPs from the spec; ephemeral ones once the ephemeral-prefix controller has allocated them.
    let mut ips: Vec<String> = nic
        .spec
        .ips
        .iter()
        .filter_map(|ip| ip.value.as_ref().map(ToString::to_string))
        .collect();
    if ips.is_empty() {
        ips = nic
            .status
            .iter()
            .flat_map(|s| &s.ips)
            .map(ToString::to_string)
            .collect();
    }
    if ips.is_empty() {
        bail!("NetworkInterface {} has no IPs yet", args.nic);
    }
    let networks: Api<networking::Network> = Api::namespaced(client.clone(), &common.namespace);
    let network = networks
        .get(&nic.spec.network_ref.name)
        .await
        .with_context(|| format!("Network {}", nic.spec.network_ref.name))?;
    let apinet_network = apinet_network_name(&network.spec.provider_id).with_context(|| {
        format!(
            "Network {} is not ready yet (no provider ID); wait for it to be Available",
            nic.spec.network_ref.name
        )
    })?;

    let node = format!("{}.{}", args.partition, args.node);
    let apinet_nics: Api<apinet::NetworkInterface> =
        Api::namespaced(client.clone(), &common.apinet_namespace);
    let apinet_name = nic_uid.clone();
    let body: apinet::NetworkInterface = serde_json::from_value(json!({
        "apiVersion": "core.apinet.ironcore.dev/v1alpha1",
        "kind": "NetworkInterface",
        "metadata": {"name": apinet_name, "namespace": common.apinet_namespace},
        "spec": {"networkRef": {"name": apinet_network}, "nodeRef": {"name": node}, "ips": ips},
    }))?;
    let created = match apinet_nics.create(&PostParams::default(), &body).await {
        Ok(o) => o,
        Err(kube::Error::Api(s)) if s.code == 409 => apinet_nics.get(&apinet_name).await?,
        Err(e) => return Err(e).context("creating the ironcore-net NetworkInterface"),
    };
    let apinet_uid = created
        .metadata
        .uid
        .clone()
        .context("apinet NetworkInterface without uid")?;
    let provider_id = format!(
        "ironcore-net://{}/{}/{}/{}",
        common.apinet_namespace, apinet_name, node, apinet_uid
    );
    nics.patch(
        &args.nic,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"providerID": provider_id}})),
    )
    .await
    .context("binding the tenant NetworkInterface")?;

    let tap = wait_for_tap(&apinet_nics, &apinet_name, args.timeout).await?;
    netns::create(&netns_name).await?;
    let record = VmRecord {
        name: args.name.clone(),
        netns: netns_name.clone(),
        apinet_nic: apinet_name,
        apinet_namespace: common.apinet_namespace.clone(),
        tap: tap.clone(),
        address: String::new(),
    };
    std::fs::create_dir_all(&vm_dir)?;
    std::fs::write(&record_path, serde_json::to_vec_pretty(&record)?)?;
    netns::move_link(&tap, &netns_name)
        .await
        .with_context(|| format!("moving {tap} into {netns_name}"))?;
    let address = netns::dhcp(&netns_name, &tap, &common.data_dir().join("dhcp")).await?;
    let record = VmRecord {
        address: address.to_string(),
        ..record
    };
    std::fs::write(&record_path, serde_json::to_vec_pretty(&record)?)?;
    Ok(record)
}

/// The apinet Network name in a tenant Network's provider ID `ironcore-net://<ns>/<name>/<vni>/<uid>`.
fn apinet_network_name(provider_id: &str) -> Option<String> {
    let rest = provider_id.strip_prefix("ironcore-net://")?;
    let mut parts = rest.split('/');
    let _namespace = parts.next()?;
    let name = parts.next()?;
    (!name.is_empty()).then(|| name.to_owned())
}

/// Waits until the hypervisor reports the TAP device of the interface (metalnet → metalnetlet → status).
async fn wait_for_tap(
    api: &Api<apinet::NetworkInterface>,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let tap = api
            .get_opt(name)
            .await?
            .and_then(|nic| nic.status)
            .and_then(|s| s.tap_device)
            .map(|t| t.name)
            .filter(|n| !n.is_empty());
        if let Some(tap) = tap {
            return Ok(tap);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the hypervisor did not report a TAP device for NetworkInterface {name} within {timeout:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Detaches the VM; see [`VmCommand::Delete`].
pub async fn delete(args: &DeleteArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let record_path = crate::lab::vm_dir(&common.data_dir()).join(format!("{}.json", args.name));
    let record: VmRecord = serde_json::from_slice(
        &std::fs::read(&record_path)
            .with_context(|| format!("no vm {} ({})", args.name, record_path.display()))?,
    )?;
    netns::delete(&record.netns).await;
    let client = client(&common.kubeconfig).await?;
    let apinet_nics: Api<apinet::NetworkInterface> = Api::namespaced(client, &record.apinet_namespace);
    match apinet_nics
        .delete(&record.apinet_nic, &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e).context("deleting the ironcore-net NetworkInterface"),
    }
    std::fs::remove_file(&record_path)?;
    println!("vm {} deleted", args.name);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apinet_network_comes_from_the_provider_id() {
        assert_eq!(
            apinet_network_name("ironcore-net://apinet-system/3f2a/4711/uid-1").as_deref(),
            Some("3f2a")
        );
        assert_eq!(apinet_network_name(""), None);
        assert_eq!(apinet_network_name("ironcore-net://apinet-system"), None);
        assert_eq!(apinet_network_name("other://a/b/c/d"), None);
    }
}
