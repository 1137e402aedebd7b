//! `NetworkInterface` (`networking.metalnet.ironcore.dev`): a VM interface on a node, with its IPs, public IP,
//! NAT, load balancer targets, firewall rules and metering.

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{IP, IPFamily, IPPrefix, LocalObjectReference};
use crate::kind::ApiKind;
use crate::validation::{self, NameRule, names};

use super::{NATDetails, ObjectState, validate_nat};

/// Default firewall rule priority written by the CRD schema.
pub const DEFAULT_FIREWALL_RULE_PRIORITY: i32 = 1000;

/// Direction of a firewall rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum FirewallRuleDirection {
    /// Incoming traffic.
    Ingress,
    /// Outgoing traffic.
    Egress,
}

/// Action of a firewall rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum FirewallRuleAction {
    /// Allow matching traffic.
    Accept,
    /// Drop matching traffic.
    Deny,
}

/// Protocol matched by a firewall rule (both cases accepted, as upstream).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ProtocolType {
    /// TCP.
    #[serde(rename = "TCP", alias = "tcp")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP", alias = "udp")]
    Udp,
    /// ICMP.
    #[serde(rename = "ICMP", alias = "icmp")]
    Icmp,
}

/// ICMP type and code matched; -1 matches any.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ICMPMatch {
    /// ICMP type, -1..255.
    #[serde(default)]
    pub icmp_type: i32,
    /// ICMP code, -1..255.
    #[serde(default)]
    pub icmp_code: i32,
}

/// Port ranges matched; -1 or unset matches any.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortMatch {
    /// First source port, -1..65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<i32>,
    /// Last source port, -1..65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_src_port: Option<i32>,
    /// First destination port, -1..65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<i32>,
    /// Last destination port, -1..65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_dst_port: Option<i32>,
}

/// What a firewall rule matches beyond addresses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolMatch {
    /// The protocol. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_type: Option<ProtocolType>,
    /// ICMP type/code (ICMP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<ICMPMatch>,
    /// Port ranges (TCP/UDP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range: Option<PortMatch>,
}

/// A firewall rule of a NetworkInterface.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FirewallRule {
    /// Unique ID of the rule. Required.
    #[serde(default, rename = "firewallRuleID")]
    pub firewall_rule_id: String,
    /// Direction. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<FirewallRuleDirection>,
    /// Action. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<FirewallRuleAction>,
    /// Priority, 0..65535 (CRD default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// IP family of the prefixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_family: Option<IPFamily>,
    /// Source prefix; unset means any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_prefix: Option<IPPrefix>,
    /// Destination prefix; unset means any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_prefix: Option<IPPrefix>,
    /// Protocol match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_match: Option<ProtocolMatch>,
}

/// Rate limits in Mbit/s.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeteringParameters {
    /// Total rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_rate: Option<u64>,
    /// Public traffic rate limit; at most `totalRate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_rate: Option<u64>,
}

/// The desired state of a metalnet NetworkInterface.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    crates(kube_core = "::kube_core"),
    group = "networking.metalnet.ironcore.dev",
    version = "v1alpha1",
    kind = "NetworkInterface",
    plural = "networkinterfaces",
    namespaced,
    status = "NetworkInterfaceStatus",
    shortname = "ni",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"NodeName","type":"string","jsonPath":".spec.nodeName"}"#,
    printcolumn = r#"{"name":"Network","type":"string","jsonPath":".spec.networkRef.name"}"#,
    printcolumn = r#"{"name":"Targets","type":"string","jsonPath":".spec.loadBalancerTargets"}"#,
    printcolumn = r#"{"name":"IPS","type":"string","jsonPath":".spec.ips"}"#,
    printcolumn = r#"{"name":"VirtualIP","type":"string","jsonPath":".spec.virtualIP"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    selectable = ".spec.nodeName",
    selectable = ".spec.networkRef.name"
)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceSpec {
    /// The Network (same namespace). Required.
    #[serde(default)]
    pub network_ref: LocalObjectReference,
    /// IP families, 1..2, parallel to `ips`.
    #[serde(default)]
    pub ip_families: Vec<IPFamily>,
    /// IPs, 1..2, at most one per family.
    #[serde(default)]
    pub ips: Vec<IP>,
    /// Public IPv4 address (1:1 NAT).
    #[serde(default, rename = "virtualIP", skip_serializing_if = "Option::is_none")]
    pub virtual_ip: Option<IP>,
    /// Alias prefixes routed to the interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<IPPrefix>,
    /// Load balancer IPs this interface serves (as /32 or /128).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_targets: Vec<IPPrefix>,
    /// Source NAT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat: Option<NATDetails>,
    /// The node the interface lives on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Firewall rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub firewall_rules: Vec<FirewallRule>,
    /// Rate limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metering_rate: Option<MeteringParameters>,
    /// Hostname (DHCP option 12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// The PCI address of an interface.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PCIAddress {
    /// PCI domain.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    /// PCI bus.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bus: String,
    /// PCI slot.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub slot: String,
    /// PCI function.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub function: String,
}

/// The TAP device of an interface (TAP mode).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TAPDevice {
    /// Name of the TAP device.
    #[serde(default)]
    pub name: String,
}

/// The observed state of a metalnet NetworkInterface.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterfaceStatus {
    /// PCI address (device mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<PCIAddress>,
    /// TAP device (TAP mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tap_device: Option<TAPDevice>,
    /// Public IP realised.
    #[serde(default, rename = "virtualIP", skip_serializing_if = "Option::is_none")]
    pub virtual_ip: Option<IP>,
    /// NAT realised.
    #[serde(default, rename = "natIP", skip_serializing_if = "Option::is_none")]
    pub nat_ip: Option<NATDetails>,
    /// Prefixes realised.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<IPPrefix>,
    /// Load balancer targets realised.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_targets: Vec<IPPrefix>,
    /// State.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ObjectState>,
}

fn range_check(errs: &mut ErrorList, path: &Path, value: i32, min: i32, max: i32) {
    if !(min..=max).contains(&value) {
        errs.push(FieldError::invalid(
            path,
            value,
            format!("must be between {min} and {max}, inclusive"),
        ));
    }
}

fn validate_firewall_rule(rule: &FirewallRule, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    if rule.firewall_rule_id.is_empty() {
        errs.push(FieldError::required(&path.child("firewallRuleID"), ""));
    }
    errs.extend(validation::required_enum(
        &rule.direction,
        &path.child("direction"),
        "",
    ));
    errs.extend(validation::required_enum(&rule.action, &path.child("action"), ""));
    if let Some(p) = rule.priority {
        range_check(&mut errs, &path.child("priority"), p, 0, 65535);
    }
    if let Some(f) = rule.ip_family {
        for (field, prefix) in [
            ("sourcePrefix", &rule.source_prefix),
            ("destinationPrefix", &rule.destination_prefix),
        ] {
            if let Some(prefix) = prefix
                && prefix.family() != f
            {
                errs.push(FieldError::invalid(
                    &path.child(field),
                    prefix.to_string(),
                    format!("expected ip family {f} but got {}", prefix.family()),
                ));
            }
        }
    }
    if let Some(m) = &rule.protocol_match {
        let p = path.child("protocolMatch");
        errs.extend(validation::required_enum(
            &m.protocol_type,
            &p.child("protocolType"),
            "",
        ));
        if let Some(icmp) = &m.icmp {
            range_check(
                &mut errs,
                &p.child("icmp").child("icmpType"),
                icmp.icmp_type,
                -1,
                255,
            );
            range_check(
                &mut errs,
                &p.child("icmp").child("icmpCode"),
                icmp.icmp_code,
                -1,
                255,
            );
        }
        if let Some(r) = &m.port_range {
            let rp = p.child("portRange");
            for (field, v) in [
                ("srcPort", r.src_port),
                ("endSrcPort", r.end_src_port),
                ("dstPort", r.dst_port),
                ("endDstPort", r.end_dst_port),
            ] {
                if let Some(v) = v {
                    range_check(&mut errs, &rp.child(field), v, -1, 65535);
                }
            }
        }
    }
    errs
}

/// Validates a spec at `path`.
pub fn validate_spec(spec: &NetworkInterfaceSpec, path: &Path) -> ErrorList {
    let mut errs = ErrorList::new();
    let net = path.child("networkRef").child("name");
    if spec.network_ref.name.is_empty() {
        errs.push(FieldError::required(&net, ""));
    } else {
        errs.extend(validation::subdomain(&net, &spec.network_ref.name));
    }
    for (field, len) in [("ipFamilies", spec.ip_families.len()), ("ips", spec.ips.len())] {
        if len == 0 {
            errs.push(FieldError::required(
                &path.child(field),
                "must have at least 1 item",
            ));
        } else if len > 2 {
            errs.push(FieldError::too_many(&path.child(field), len, 2));
        }
    }
    if spec.ip_families.len() != spec.ips.len() {
        errs.push(FieldError::invalid(
            &path.child("ips"),
            serde_json::to_value(&spec.ips).unwrap_or_default(),
            "ip families must match ips",
        ));
    }
    for (i, ip) in spec.ips.iter().enumerate() {
        let p = path.child("ips").index(i);
        if let Some(f) = spec.ip_families.get(i)
            && *f != ip.family()
        {
            errs.push(FieldError::invalid(
                &p,
                ip.to_string(),
                format!("expected ip family {f} but got {}", ip.family()),
            ));
        }
        if spec.ips[..i].iter().any(|e| e.family() == ip.family()) {
            errs.push(FieldError::duplicate(&p, ip.to_string()));
        }
    }
    if let Some(vip) = &spec.virtual_ip
        && vip.family() != IPFamily::IPv4
    {
        errs.push(FieldError::invalid(
            &path.child("virtualIP"),
            vip.to_string(),
            "must be an IPv4 address",
        ));
    }
    for (i, t) in spec.load_balancer_targets.iter().enumerate() {
        if !t.is_single_ip() {
            errs.push(FieldError::invalid(
                &path.child("loadBalancerTargets").index(i),
                t.to_string(),
                "must be a single IP (/32 or /128)",
            ));
        }
    }
    if let Some(nat) = &spec.nat {
        errs.extend(validate_nat(nat, &path.child("nat")));
    }
    for (i, rule) in spec.firewall_rules.iter().enumerate() {
        let p = path.child("firewallRules").index(i);
        errs.extend(validate_firewall_rule(rule, &p));
        if spec.firewall_rules[..i]
            .iter()
            .any(|r| r.firewall_rule_id == rule.firewall_rule_id)
        {
            errs.push(FieldError::duplicate(
                &p.child("firewallRuleID"),
                rule.firewall_rule_id.as_str(),
            ));
        }
    }
    if let Some(m) = &spec.metering_rate
        && let (Some(total), Some(public)) = (m.total_rate, m.public_rate)
        && total < public
    {
        errs.push(FieldError::invalid(
            &path.child("meteringRate").child("publicRate"),
            public,
            "must not exceed totalRate",
        ));
    }
    if let Some(h) = &spec.hostname {
        validation::push_name_errors(&mut errs, &path.child("hostname"), h, names::dns1123_subdomain(h));
    }
    errs
}

impl ApiKind for NetworkInterface {
    const NAME_RULE: NameRule = NameRule::Subdomain;
    /// Applies the defaults: firewall rule priority 1000 (the CRD default).
    fn apply_defaults(&mut self) {
        for rule in &mut self.spec.firewall_rules {
            rule.priority.get_or_insert(DEFAULT_FIREWALL_RULE_PRIORITY);
        }
    }
    /// Validates a new NetworkInterface: metadata (DNS subdomain name) and spec.
    fn validate_create(&self) -> ErrorList {
        let mut errs = self.validate_meta_create();
        errs.extend(validate_spec(&self.spec, &Path::new("spec")));
        errs
    }
    /// Validates an update: `networkRef` is immutable.
    fn validate_update(&self, old: &Self) -> ErrorList {
        let spec = Path::new("spec");
        let mut errs = self.validate_meta_update(old);
        errs.extend(validation::immutable(
            &self.spec.network_ref,
            &old.spec.network_ref,
            &spec.child("networkRef"),
        ));
        errs.extend(validate_spec(&self.spec, &spec));
        errs
    }
}
