//! The IronCore networking API as Rust types, with defaulting and validation (no I/O, no async).
//!
//! Three API groups:
//! - [`networking`]: `networking.ironcore.dev/v1alpha1`, the user-facing API (7 kinds);
//! - [`apinet`]: `core.apinet.ironcore.dev/v1alpha1`, ironcore-net's internal API (15 kinds);
//! - [`metalnet`]: `networking.metalnet.ironcore.dev/v1alpha1`, the per-node dataplane API (3 kinds).
//!
//! Every kind is a kube-derive `CustomResource` whose CRD carries the OpenAPI schema, printer columns, short
//! names and selectable fields. Each kind module has pure `default`, `validate_create`, `validate_update` and
//! (where the kind has a status) `validate_status_update` functions whose errors are kube-apiserver's field
//! errors. [`kinds()`] lists all kinds as [`KindDescriptor`]s for an API server that serves them dynamically.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod apinet;
pub mod common;
pub mod kind;
pub mod metalnet;
pub mod naming;
pub mod networking;
pub mod printers;
pub mod validation;
pub mod wellknown;

pub use kind::{ApiKind, KindDescriptor, decode};

/// Every kind of the three groups, in group order: 7 `networking.ironcore.dev`, 15 `core.apinet.ironcore.dev`,
/// 3 `networking.metalnet.ironcore.dev`.
pub fn kinds() -> Vec<KindDescriptor> {
    let mut kinds = networking_kinds();
    kinds.extend(apinet_kinds());
    kinds.extend(metalnet_kinds());
    kinds
}

fn networking_kinds() -> Vec<KindDescriptor> {
    use networking::*;
    vec![
        KindDescriptor::of::<Network>(),
        KindDescriptor::of::<NetworkInterface>(),
        KindDescriptor::of::<VirtualIP>(),
        KindDescriptor::of::<LoadBalancer>(),
        KindDescriptor::of::<LoadBalancerRouting>(),
        KindDescriptor::of::<NATGateway>(),
        KindDescriptor::of::<NetworkPolicy>(),
    ]
}

fn apinet_kinds() -> Vec<KindDescriptor> {
    use apinet::*;
    vec![
        KindDescriptor::of::<Network>(),
        KindDescriptor::of::<NetworkID>(),
        KindDescriptor::of::<IP>(),
        KindDescriptor::of::<IPAddress>(),
        KindDescriptor::of::<LoadBalancer>(),
        KindDescriptor::of::<LoadBalancerRouting>(),
        KindDescriptor::of::<NATGateway>(),
        KindDescriptor::of::<NATGatewayAutoscaler>(),
        KindDescriptor::of::<NATTable>(),
        KindDescriptor::of::<NetworkInterface>(),
        KindDescriptor::of::<NetworkPolicy>(),
        KindDescriptor::of::<NetworkPolicyRule>(),
        KindDescriptor::of::<Node>(),
        KindDescriptor::of::<Instance>(),
        KindDescriptor::of::<DaemonSet>(),
    ]
}

fn metalnet_kinds() -> Vec<KindDescriptor> {
    use metalnet::*;
    vec![
        KindDescriptor::of::<Network>(),
        KindDescriptor::of::<NetworkInterface>(),
        KindDescriptor::of::<LoadBalancer>(),
    ]
}
