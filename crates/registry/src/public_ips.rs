//! Embedded public IPs of LoadBalancers (type Public), NATGateways and NetworkInterfaces.
//!
//! Each entry of the object's IP list either names an address — then the existing IP object with
//! that address in the namespace is claimed — or leaves it empty — then an ephemeral IP, owned and
//! claimed by the object, is created together with its IPAddress. Updates keep the addresses that
//! stay, allocate the new ones and release the ones that went; deletes release everything. All of it
//! joins the object's own store transaction.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ironnet_apimachinery::field::{FieldError, Path};
use ironnet_apiserver::error::{ApiError, GroupResource};
use ironnet_apiserver::strategy::{AdmissionContext, SideEffects};
use ironnet_store::{Compare, ListOptions, Op};
use serde_json::Value;

use crate::alloc::IpFamily;
use crate::claims::{self, SharedIndex};
use crate::objects::{self, APINET_GROUP, Claimer};

/// Where an object keeps its public IP requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicIpSlots {
    /// Kind of the claimer, e.g. `NATGateway`.
    pub kind: &'static str,
    /// Plural resource of the claimer.
    pub resource: &'static str,
    /// The list field under `spec`: `ips` or `publicIPs`.
    pub list: &'static str,
    /// Whether each entry carries `ipFamily` (else `spec.ipFamily` applies to all).
    pub family_per_entry: bool,
    /// Only allocate when `spec.type` is `Public` (LoadBalancer).
    pub public_only: bool,
}

/// LoadBalancer: `spec.ips[]` when `spec.type == Public`.
pub const LOAD_BALANCER: PublicIpSlots = PublicIpSlots {
    kind: "LoadBalancer",
    resource: "loadbalancers",
    list: "ips",
    family_per_entry: true,
    public_only: true,
};
/// NATGateway: `spec.ips[]`, family `spec.ipFamily`.
pub const NAT_GATEWAY: PublicIpSlots = PublicIpSlots {
    kind: "NATGateway",
    resource: "natgateways",
    list: "ips",
    family_per_entry: false,
    public_only: false,
};
/// NetworkInterface: `spec.publicIPs[]`.
pub const NETWORK_INTERFACE: PublicIpSlots = PublicIpSlots {
    kind: "NetworkInterface",
    resource: "networkinterfaces",
    list: "publicIPs",
    family_per_entry: true,
    public_only: false,
};

/// One entry of the list.
struct Request {
    family: IpFamily,
    ip: Option<IpAddr>,
    path: Path,
}

impl PublicIpSlots {
    fn applies(&self, obj: &Value) -> bool {
        !self.public_only || obj.pointer("/spec/type").and_then(Value::as_str) == Some("Public")
    }

    fn requests(&self, obj: &Value) -> Result<Vec<Request>, ApiError> {
        let name = ironnet_apiserver::meta::name(obj);
        let base = Path::new("spec").child(self.list);
        let entries = obj
            .pointer(&format!("/spec/{}", self.list))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let spec_family = obj.pointer("/spec/ipFamily").and_then(Value::as_str);
        let mut out = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let path = base.index(i);
            let ip = match entry.get("ip").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                Some(s) => Some(s.parse::<IpAddr>().map_err(|_| {
                    claims::invalid(
                        self.kind,
                        name,
                        FieldError::invalid(&path.child("ip"), s, "must be a valid IP address"),
                    )
                })?),
                None => None,
            };
            let declared = if self.family_per_entry {
                entry.get("ipFamily").and_then(Value::as_str)
            } else {
                spec_family
            };
            let family = claims::family_of(declared)
                .or(ip.map(IpFamily::of))
                .ok_or_else(|| {
                    let field = if self.family_per_entry {
                        path.child("ipFamily")
                    } else {
                        Path::new("spec").child("ipFamily")
                    };
                    claims::invalid(self.kind, name, FieldError::required(&field, ""))
                })?;
            out.push(Request { family, ip, path });
        }
        Ok(out)
    }

    fn addresses(&self, obj: &Value) -> BTreeSet<IpAddr> {
        obj.pointer(&format!("/spec/{}", self.list))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.get("ip")?.as_str()?.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Allocates every request of a new object and writes the addresses into it.
    pub async fn admit_create(
        &self,
        ctx: &AdmissionContext,
        index: &SharedIndex,
        obj: &mut Value,
    ) -> Result<SideEffects, ApiError> {
        if !self.applies(obj) {
            return Ok(SideEffects::none());
        }
        let requests = self.requests(obj)?;
        self.allocate(ctx, index, obj, requests, &BTreeSet::new()).await
    }

    /// Keeps the addresses that stay, allocates new ones and releases the ones that went.
    pub async fn admit_update(
        &self,
        ctx: &AdmissionContext,
        index: &SharedIndex,
        new: &mut Value,
        old: &Value,
    ) -> Result<SideEffects, ApiError> {
        let old_addresses = if self.applies(old) {
            self.addresses(old)
        } else {
            BTreeSet::new()
        };
        let requests = if self.applies(new) {
            self.requests(new)?
        } else {
            Vec::new()
        };
        let kept: BTreeSet<IpAddr> = requests
            .iter()
            .filter_map(|r| r.ip)
            .filter(|ip| old_addresses.contains(ip))
            .collect();
        let mut effects = self.allocate(ctx, index, new, requests, &kept).await?;
        let claimer = Claimer::of(self.resource, old);
        for ip in old_addresses.difference(&kept) {
            claims::merge(&mut effects, self.release(ctx, &claimer, *ip).await?);
        }
        Ok(effects)
    }

    /// Releases every address of a deleted object.
    pub async fn admit_delete(&self, ctx: &AdmissionContext, old: &Value) -> Result<SideEffects, ApiError> {
        if !self.applies(old) {
            return Ok(SideEffects::none());
        }
        let claimer = Claimer::of(self.resource, old);
        let mut effects = SideEffects::none();
        for ip in self.addresses(old) {
            claims::merge(&mut effects, self.release(ctx, &claimer, ip).await?);
        }
        Ok(effects)
    }

    async fn allocate(
        &self,
        ctx: &AdmissionContext,
        index: &SharedIndex,
        obj: &mut Value,
        requests: Vec<Request>,
        kept: &BTreeSet<IpAddr>,
    ) -> Result<SideEffects, ApiError> {
        let claimer = Claimer::of(self.resource, obj);
        let now = claims::now(ctx);
        let mut effects = SideEffects::none();
        let mut chosen: Vec<IpAddr> = Vec::new();
        for (i, request) in requests.into_iter().enumerate() {
            let address = match request.ip {
                Some(ip) if kept.contains(&ip) => ip,
                Some(ip) => {
                    if chosen.contains(&ip) {
                        return Err(claims::invalid(
                            self.kind,
                            &claimer.name,
                            FieldError::duplicate(&request.path.child("ip"), ip.to_string()),
                        ));
                    }
                    claims::merge(
                        &mut effects,
                        self.claim_existing(ctx, &claimer, ip, &request.path).await?,
                    );
                    ip
                }
                None => {
                    let who = (self.kind, self.resource, claimer.name.as_str());
                    let (ip, address_key, retryable) = claims::claim_new_address(
                        ctx,
                        index,
                        request.family,
                        &request.path.child("ip"),
                        who,
                        &chosen,
                    )
                    .await?;
                    let ip_name = ephemeral_name(&claimer.name);
                    let ip_key = claims::key_of(ctx, "IP", Some(&claimer.namespace), &ip_name)?;
                    let ip_object = objects::ephemeral_ip(&ip_name, ip, self.kind, &claimer, &now);
                    let ip_claimer = Claimer::of("ips", &ip_object);
                    for (compare, op) in [
                        claims::create_claim(ip_key, &ip_object),
                        claims::create_claim(address_key, &objects::ip_address(ip, &ip_claimer, &now)),
                    ] {
                        effects.compares.push(compare);
                        effects.ops.push(op);
                    }
                    effects.retryable |= retryable;
                    ip
                }
            };
            chosen.push(address);
            obj["spec"][self.list][i]["ip"] = Value::String(address.to_string());
        }
        Ok(effects)
    }

    /// Claims the existing IP object with address `ip` in the claimer's namespace.
    async fn claim_existing(
        &self,
        ctx: &AdmissionContext,
        claimer: &Claimer,
        ip: IpAddr,
        path: &Path,
    ) -> Result<SideEffects, ApiError> {
        let Some((key, mod_revision, mut object)) = find_ip(ctx, &claimer.namespace, ip).await? else {
            return Err(claims::invalid(
                self.kind,
                &claimer.name,
                FieldError::not_found(&path.child("ip"), ip.to_string()),
            ));
        };
        match object.pointer("/spec/claimRef/uid").and_then(Value::as_str) {
            Some(uid) if uid == claimer.uid => return Ok(SideEffects::none()),
            Some(uid) if !uid.is_empty() => {
                return Err(ApiError::conflict(
                    &GroupResource::new(APINET_GROUP, self.resource),
                    &claimer.name,
                    &format!("the provided IP {ip} is already allocated"),
                ));
            }
            _ => {}
        }
        object["spec"]["claimRef"] = claimer.claim_ref();
        Ok(SideEffects {
            compares: vec![Compare {
                key: key.clone(),
                mod_revision,
            }],
            ops: vec![Op::Put {
                key,
                value: claims::encode(&object),
            }],
            retryable: true,
        })
    }

    /// Releases address `ip` held by `claimer`: an ephemeral IP it controls is deleted with its
    /// IPAddress; an IP it merely claimed gets its claimRef cleared.
    async fn release(
        &self,
        ctx: &AdmissionContext,
        claimer: &Claimer,
        ip: IpAddr,
    ) -> Result<SideEffects, ApiError> {
        let Some((key, mod_revision, mut object)) = find_ip(ctx, &claimer.namespace, ip).await? else {
            return Ok(SideEffects::none());
        };
        if object.pointer("/spec/claimRef/uid").and_then(Value::as_str) != Some(claimer.uid.as_str()) {
            return Ok(SideEffects::none());
        }
        let controlled = object
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| {
                refs.iter().any(|r| {
                    r.get("controller").and_then(Value::as_bool) == Some(true)
                        && r.get("uid").and_then(Value::as_str) == Some(claimer.uid.as_str())
                })
            });
        let compare = Compare {
            key: key.clone(),
            mod_revision,
        };
        if controlled {
            let ip_uid = ironnet_apiserver::meta::meta_str(&object, "uid").to_owned();
            let address_key = claims::key_of(ctx, "IPAddress", None, &ip.to_string())?;
            let mut effects = claims::release_if_claimed_by(ctx, address_key, &ip_uid).await?;
            effects.compares.push(compare);
            effects.ops.push(Op::Delete { key });
            effects.retryable = true;
            Ok(effects)
        } else {
            if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("claimRef");
            }
            Ok(SideEffects {
                compares: vec![compare],
                ops: vec![Op::Put {
                    key,
                    value: claims::encode(&object),
                }],
                retryable: true,
            })
        }
    }
}

/// `generateName`-style name for an ephemeral IP: the claimer's name (cut to leave room) plus `-xxxxx`.
fn ephemeral_name(claimer: &str) -> String {
    let base: String = claimer.chars().take(57).collect();
    format!("{base}-{}", objects::name_suffix())
}

/// The IP object with `spec.ip == ip` in `namespace`: its key, mod revision and value.
async fn find_ip(
    ctx: &AdmissionContext,
    namespace: &str,
    ip: IpAddr,
) -> Result<Option<(String, u64, Value)>, ApiError> {
    let prefix = ctx
        .registry()
        .by_kind(APINET_GROUP, "IP")
        .map(|k| k.def.namespace_prefix(Some(namespace)))
        .ok_or_else(|| ApiError::internal("kind IP is not registered"))?;
    let wanted = ip.to_string();
    let mut options = ListOptions {
        limit: Some(1000),
        ..ListOptions::default()
    };
    loop {
        let page = ctx.store().list(&prefix, options.clone()).await?;
        for kv in &page.items {
            let object = claims::decode(kv);
            let matches = object
                .pointer("/spec/ip")
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<IpAddr>().ok())
                .is_some_and(|a| a.to_string() == wanted);
            if matches {
                return Ok(Some((kv.key.clone(), kv.mod_revision, object)));
            }
        }
        if !page.more {
            return Ok(None);
        }
        options.revision = Some(page.revision);
        options.start_after = page.items.last().map(|kv| kv.key.clone());
    }
}
