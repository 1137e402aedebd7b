//! Per-kind strategies: the API types' defaulting, validation (create, update, delete) and formatted printer
//! columns, plus the allocation hooks and the networking rules that read the store ([`crate::networking`]).

use std::sync::Arc;

use ironnet_api::KindDescriptor;
use ironnet_apimachinery::field::ErrorList;
use ironnet_apiserver::definition::{DefinitionError, PrinterColumn, ResourceDefinition};
use ironnet_apiserver::error::ApiError;
use ironnet_apiserver::strategy::{AdmissionContext, SideEffects, Strategy};
use serde_json::Value;

use crate::claims::{self, SharedIndex};
use crate::networking;
use crate::objects::{APINET_GROUP, IPADDRESS_PROTECTION_FINALIZER};
use crate::public_ips::{self, PublicIpSlots};

/// What a kind does at admission beyond validation.
#[derive(Clone, Debug)]
enum Admission {
    /// Nothing.
    None,
    /// core.apinet Network: claims a NetworkID (VNI).
    Network(SharedIndex),
    /// core.apinet IP: claims an IPAddress.
    Ip(SharedIndex),
    /// core.apinet IPAddress: gets the protection finalizer.
    IpAddress,
    /// Embedded public IPs (LoadBalancer, NATGateway, NetworkInterface).
    PublicIps(PublicIpSlots, SharedIndex),
    /// networking VirtualIP: deleting it is refused while it is in use.
    VirtualIp,
    /// networking LoadBalancerRouting: destinations without IP get their interface's IPs.
    RoutingDestinations,
}

/// The strategy of one IronCore kind.
pub struct KindStrategy {
    descriptor: KindDescriptor,
    admission: Admission,
}

impl std::fmt::Debug for KindStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KindStrategy")
            .field("admission", &self.admission)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Strategy for KindStrategy {
    fn default(&self, obj: &mut Value) {
        // A body that does not fit the type is reported by validation with its field path.
        let _ = (self.descriptor.default)(obj);
    }

    fn validate_create(&self, obj: &Value) -> ErrorList {
        (self.descriptor.validate_create)(obj)
    }

    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList {
        (self.descriptor.validate_update)(new, old)
    }

    fn validate_status_update(&self, new: &Value, old: &Value) -> ErrorList {
        (self.descriptor.validate_status_update)(new, old)
    }

    async fn validate_delete(&self, ctx: &AdmissionContext, obj: &Value) -> Result<ErrorList, ApiError> {
        let errs = (self.descriptor.validate_delete)(obj);
        if errs.is_empty() {
            return Ok(errs);
        }
        match &self.admission {
            // The type's rule sees only the VirtualIP; whether its binding is live needs the interface.
            Admission::VirtualIp if !networking::virtual_ip_in_use(ctx, obj).await? => Ok(ErrorList::new()),
            _ => Ok(errs),
        }
    }

    fn printer_cell(&self, column: &PrinterColumn, obj: &Value) -> Option<Value> {
        (self.descriptor.printer_cell)(&column.name, obj).map(Value::String)
    }

    async fn admit_create(&self, ctx: &AdmissionContext, obj: &mut Value) -> Result<SideEffects, ApiError> {
        match &self.admission {
            Admission::None | Admission::VirtualIp => Ok(SideEffects::none()),
            Admission::RoutingDestinations => {
                networking::resolve_routing_destinations(ctx, obj).await?;
                Ok(SideEffects::none())
            }
            Admission::Network(index) => claims::network_create(ctx, index, obj).await,
            Admission::Ip(index) => claims::ip_create(ctx, index, obj).await,
            Admission::IpAddress => {
                add_finalizer(obj, IPADDRESS_PROTECTION_FINALIZER);
                Ok(SideEffects::none())
            }
            Admission::PublicIps(slots, index) => slots.admit_create(ctx, index, obj).await,
        }
    }

    async fn admit_update(
        &self,
        ctx: &AdmissionContext,
        new: &mut Value,
        old: &Value,
    ) -> Result<SideEffects, ApiError> {
        match &self.admission {
            Admission::PublicIps(slots, index) => slots.admit_update(ctx, index, new, old).await,
            Admission::RoutingDestinations => {
                networking::resolve_routing_destinations(ctx, new).await?;
                Ok(SideEffects::none())
            }
            _ => Ok(SideEffects::none()),
        }
    }

    async fn admit_delete(&self, ctx: &AdmissionContext, old: &Value) -> Result<SideEffects, ApiError> {
        match &self.admission {
            Admission::Network(_) => claims::network_delete(ctx, old).await,
            Admission::Ip(_) => claims::ip_delete(ctx, old).await,
            Admission::PublicIps(slots, _) => slots.admit_delete(ctx, old).await,
            Admission::None
            | Admission::IpAddress
            | Admission::VirtualIp
            | Admission::RoutingDestinations => Ok(SideEffects::none()),
        }
    }
}

fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let meta = ironnet_apiserver::meta::metadata_mut(obj);
    let list = meta
        .entry("finalizers")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(list) = list.as_array_mut()
        && !list.iter().any(|f| f.as_str() == Some(finalizer))
    {
        list.push(Value::String(finalizer.to_owned()));
    }
}

/// A kind ready to register: its definition and its strategy.
pub type ServedKind = (ResourceDefinition, Arc<dyn Strategy>);

/// Every IronCore kind with its definition and strategy, ready to register with the API server.
/// `index` backs the allocation hooks of the ironcore-net kinds.
pub fn kinds(index: &SharedIndex) -> Result<Vec<ServedKind>, DefinitionError> {
    ironnet_api::kinds()
        .into_iter()
        .map(|descriptor| {
            let def = ResourceDefinition::from_crd(&descriptor.crd)?;
            let admission = if def.group == APINET_GROUP {
                match def.kind.as_str() {
                    "Network" => Admission::Network(Arc::clone(index)),
                    "IP" => Admission::Ip(Arc::clone(index)),
                    "IPAddress" => Admission::IpAddress,
                    "LoadBalancer" => Admission::PublicIps(public_ips::LOAD_BALANCER, Arc::clone(index)),
                    "NATGateway" => Admission::PublicIps(public_ips::NAT_GATEWAY, Arc::clone(index)),
                    "NetworkInterface" => {
                        Admission::PublicIps(public_ips::NETWORK_INTERFACE, Arc::clone(index))
                    }
                    _ => Admission::None,
                }
            } else if def.group == networking::NETWORKING_GROUP {
                match def.kind.as_str() {
                    "VirtualIP" => Admission::VirtualIp,
                    "LoadBalancerRouting" => Admission::RoutingDestinations,
                    _ => Admission::None,
                }
            } else {
                Admission::None
            };
            let strategy: Arc<dyn Strategy> = Arc::new(KindStrategy {
                descriptor,
                admission,
            });
            Ok((def, strategy))
        })
        .collect()
}
