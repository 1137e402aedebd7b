//! Command-line flags of `ironnet metalnetlet` (upstream metalnetlet's flags plus leader election and
//! concurrency as `ironnet apinetlet` has them).

use std::collections::BTreeMap;

use ironnet_runtime::leader::{LeaderElectionConfig, LeaderError};

use crate::run::{MetalnetletConfig, lease_name};

/// Flags of metalnetlet. The binary adds its own connection flags (the apinet and metalnet kubeconfigs) and
/// turns these into a [`MetalnetletConfig`] with [`MetalnetletArgs::config`].
#[derive(Clone, Debug, clap::Args)]
pub struct MetalnetletArgs {
    /// Name of the partition this metalnetlet serves (apinet Nodes are named `<partition>.<node>`).
    #[arg(long)]
    pub partition: String,
    /// Namespace on the metalnet server that metalnet Networks, NetworkInterfaces and LoadBalancers live in.
    #[arg(long, default_value = "default")]
    pub metalnet_namespace: String,
    /// Label selector restricting the metalnet Nodes that belong to the partition (e.g. `role=hypervisor`).
    #[arg(long)]
    pub metalnet_node_selector: Option<String>,
    /// Label `key=value` put on every apinet Node of the partition (repeatable).
    #[arg(long = "node-label", value_parser = parse_label)]
    pub node_labels: Vec<(String, String)>,
    /// Do not write peerings into metalnet Networks nor apinet Network `status.peerings`.
    #[arg(long)]
    pub disable_network_peering: bool,
    /// Run only while holding the metalnetlet Lease of the partition on the metalnet server (for several
    /// replicas).
    #[arg(long)]
    pub leader_elect: bool,
    /// Namespace of the leader-election Lease.
    #[arg(long, default_value = "default")]
    pub leader_election_namespace: String,
    /// Maximum concurrent reconciles per controller.
    #[arg(long, default_value_t = 8)]
    pub concurrency: u16,
}

/// Parses one `--node-label` value.
fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

impl MetalnetletArgs {
    /// The configuration these flags describe; `identity` names this process in leader election (e.g.
    /// `<hostname>-<pid>`).
    pub fn config(&self, identity: &str) -> Result<MetalnetletConfig, LeaderError> {
        let leader_election = if self.leader_elect {
            Some(LeaderElectionConfig::new(
                self.leader_election_namespace.clone(),
                lease_name(&self.partition),
                identity,
            )?)
        } else {
            None
        };
        Ok(MetalnetletConfig {
            metalnet_namespace: self.metalnet_namespace.clone(),
            metalnet_node_selector: self.metalnet_node_selector.clone().filter(|s| !s.is_empty()),
            node_labels: self.node_labels.iter().cloned().collect::<BTreeMap<_, _>>(),
            network_peering_disabled: self.disable_network_peering,
            concurrency: self.concurrency,
            leader_election,
            ..MetalnetletConfig::new(self.partition.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: MetalnetletArgs,
    }

    #[test]
    fn flags_parse_into_a_config() {
        let cli = Cli::try_parse_from([
            "metalnetlet",
            "--partition",
            "p1",
            "--node-label",
            "the=node",
            "--node-label",
            "zone=a=b",
            "--metalnet-node-selector",
            "role=hv",
            "--disable-network-peering",
            "--leader-elect",
        ])
        .unwrap();
        let config = cli.args.config("me-1").unwrap();
        assert_eq!(config.partition, "p1");
        assert_eq!(config.metalnet_namespace, "default");
        assert_eq!(config.metalnet_node_selector.as_deref(), Some("role=hv"));
        assert_eq!(
            config.node_labels,
            BTreeMap::from([
                ("the".to_owned(), "node".to_owned()),
                ("zone".to_owned(), "a=b".to_owned())
            ])
        );
        assert!(config.network_peering_disabled);
        let le = config.leader_election.unwrap();
        assert_eq!(le.name, "p1.bf12dae0.metalnetlet.apinet.ironcore.dev");
        assert_eq!(le.identity, "me-1");
        assert!(
            Cli::try_parse_from(["metalnetlet"]).is_err(),
            "--partition is required"
        );
        assert!(Cli::try_parse_from(["metalnetlet", "--partition", "p", "--node-label", "novalue"]).is_err());
    }
}
