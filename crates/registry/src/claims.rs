//! Admission hooks that claim and release VNIs and public IPs in the object's own store transaction.
//!
//! Every claim is a create-if-absent of the claim object (NetworkID, IPAddress, IP) in the same
//! transaction as the object that needs it; every release is a delete (or a claimRef removal)
//! conditioned on the claim still being ours. A failed create or update therefore rolls back
//! exactly what it allocated — by never having written it — and two API servers sharing one etcd
//! can never hand out one VNI or address twice.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ironnet_apimachinery::field::{ErrorList, FieldError, Path};
use ironnet_apiserver::error::{ApiError, GroupResource};
use ironnet_apiserver::strategy::{AdmissionContext, SideEffects};
use ironnet_store::{Compare, KeyValue, Op};
use ironnet_vni::Vni;
use serde_json::Value;

use crate::alloc::{IpFamily, PoolError};
use crate::index::ClaimIndex;
use crate::objects::{self, APINET_GROUP, Claimer};

/// How many stale proposals a hook skips before giving up on one request.
const MAX_PROPOSALS: usize = 64;
/// How long a hook waits for the claim index to finish its first sync.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The current time as Kubernetes writes timestamps.
pub(crate) fn now(ctx: &AdmissionContext) -> String {
    ironnet_apiserver::meta::format_time(ctx.now())
}

/// The store key of an ironcore-net object of `kind`.
pub(crate) fn key_of(
    ctx: &AdmissionContext,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<String, ApiError> {
    ctx.registry()
        .by_kind(APINET_GROUP, kind)
        .map(|k| k.def.key(namespace, name))
        .ok_or_else(|| ApiError::internal(format!("kind {kind}.{APINET_GROUP} is not registered")))
}

/// Fails with 503 while the index has not seen the store yet.
pub(crate) async fn ensure_ready(index: &ClaimIndex) -> Result<(), ApiError> {
    if index.wait_ready(READY_TIMEOUT).await {
        Ok(())
    } else {
        Err(ApiError::unavailable("allocator not ready"))
    }
}

pub(crate) fn encode(value: &Value) -> bytes::Bytes {
    bytes::Bytes::from(serde_json::to_vec(value).expect("JSON values always encode"))
}

pub(crate) fn decode(kv: &KeyValue) -> Value {
    serde_json::from_slice(&kv.value).unwrap_or(Value::Null)
}

pub(crate) fn invalid(kind: &str, name: &str, error: FieldError) -> ApiError {
    ApiError::invalid(APINET_GROUP, kind, name, &ErrorList::from(error))
}

/// A claim-object create: the compare that it is absent and the put.
pub(crate) fn create_claim(key: String, object: &Value) -> (Compare, Op) {
    (
        Compare {
            key: key.clone(),
            mod_revision: 0,
        },
        Op::Put {
            key,
            value: encode(object),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Network → NetworkID (VNI)
// ---------------------------------------------------------------------------------------------

/// Claims `spec.id` (validated and canonicalised) or a free VNI for a new Network.
pub async fn network_create(
    ctx: &AdmissionContext,
    index: &ClaimIndex,
    obj: &mut Value,
) -> Result<SideEffects, ApiError> {
    let claimer = Claimer::of("networks", obj);
    let path = Path::new("spec").child("id");
    let given = obj
        .pointer("/spec/id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    if let Some(id) = given {
        let vni: u32 = id
            .parse::<i32>()
            .ok()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| {
                invalid(
                    "Network",
                    &claimer.name,
                    FieldError::invalid(&path, id.as_str(), "invalid VNI"),
                )
            })?;
        // 0 and numbers beyond 24 bits are not VNIs; they get the same answer as other numbers outside the range.
        let Some(vni) = Vni::new(vni).ok().filter(|v| index.vni_range().contains(*v)) else {
            let detail = format!(
                "the provided ID is not in range [{}, {}]",
                index.vni_range().min(),
                index.vni_range().max()
            );
            return Err(invalid(
                "Network",
                &claimer.name,
                FieldError::invalid(&path, id.as_str(), detail),
            ));
        };
        obj["spec"]["id"] = Value::String(vni.to_string());
        let key = key_of(ctx, "NetworkID", None, &vni.to_string())?;
        if ctx.store().get(&key, None).await?.is_some() {
            return Err(ApiError::conflict(
                &GroupResource::new(APINET_GROUP, "networks"),
                &claimer.name,
                &format!("the provided ID {vni} is already allocated"),
            ));
        }
        let (compare, op) = create_claim(key, &objects::network_id(vni, &claimer, &now(ctx)));
        return Ok(SideEffects {
            compares: vec![compare],
            ops: vec![op],
            retryable: false,
        });
    }
    ensure_ready(index).await?;
    for _ in 0..MAX_PROPOSALS {
        let vni = index
            .propose_vni()
            .map_err(|e| pool_error("networks", &claimer.name, e))?;
        let key = key_of(ctx, "NetworkID", None, &vni.to_string())?;
        if ctx.store().get(&key, None).await?.is_some() {
            index.note_vni_taken(vni);
            continue;
        }
        if !obj["spec"].is_object() {
            obj["spec"] = Value::Object(Default::default());
        }
        obj["spec"]["id"] = Value::String(vni.to_string());
        let (compare, op) = create_claim(key, &objects::network_id(vni, &claimer, &now(ctx)));
        return Ok(SideEffects {
            compares: vec![compare],
            ops: vec![op],
            retryable: true,
        });
    }
    Err(ApiError::unavailable(
        "could not allocate a network ID: too many concurrent allocations",
    ))
}

/// Releases the Network's NetworkID, if it is still claimed by this Network.
pub async fn network_delete(ctx: &AdmissionContext, old: &Value) -> Result<SideEffects, ApiError> {
    let claimer = Claimer::of("networks", old);
    let Some(id) = old
        .pointer("/spec/id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<u32>().ok())
    else {
        return Ok(SideEffects::none());
    };
    let key = key_of(ctx, "NetworkID", None, &id.to_string())?;
    release_if_claimed_by(ctx, key, &claimer.uid).await
}

/// A delete of the claim object at `key`, conditioned on it being unchanged and claimed by `uid`.
pub(crate) async fn release_if_claimed_by(
    ctx: &AdmissionContext,
    key: String,
    uid: &str,
) -> Result<SideEffects, ApiError> {
    let Some(kv) = ctx.store().get(&key, None).await? else {
        return Ok(SideEffects::none());
    };
    if decode(&kv).pointer("/spec/claimRef/uid").and_then(Value::as_str) != Some(uid) {
        return Ok(SideEffects::none());
    }
    Ok(SideEffects {
        compares: vec![Compare {
            key: key.clone(),
            mod_revision: kv.mod_revision,
        }],
        ops: vec![Op::Delete { key }],
        retryable: true,
    })
}

fn pool_error(resource: &str, name: &str, error: PoolError) -> ApiError {
    let gr = GroupResource::new(APINET_GROUP, resource);
    match error {
        PoolError::VnisExhausted | PoolError::AddressesExhausted => {
            ApiError::conflict(&gr, name, &error.to_string())
        }
        other => ApiError::bad_request(other.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// IP → IPAddress
// ---------------------------------------------------------------------------------------------

/// The address and family of an IP claim request, after checks against the pools.
struct AddressClaim {
    ip: IpAddr,
    key: String,
}

/// Chooses the address for a claim: `given` (checked to be in range and free) or a free one of
/// `family`. Returns the address and its IPAddress key; the caller adds the create to its txn.
async fn choose_address(
    ctx: &AdmissionContext,
    index: &ClaimIndex,
    family: IpFamily,
    given: Option<IpAddr>,
    field: &Path,
    (kind, resource, name): (&str, &str, &str),
    exclude: &[IpAddr],
) -> Result<(AddressClaim, bool), ApiError> {
    let gr = GroupResource::new(APINET_GROUP, resource);
    if !index.has_family(family) {
        return Err(invalid(
            kind,
            name,
            FieldError::invalid(
                field,
                family.as_str(),
                format!(
                    "cannot allocate IPs of family {family}: no public prefix of that family is configured"
                ),
            ),
        ));
    }
    if let Some(ip) = given {
        if IpFamily::of(ip) != family {
            return Err(invalid(
                kind,
                name,
                FieldError::invalid(field, ip.to_string(), format!("must be an {family} address")),
            ));
        }
        if !index.in_public_range(ip) {
            return Err(invalid(
                kind,
                name,
                FieldError::invalid(field, ip.to_string(), "the provided IP is not in range"),
            ));
        }
        let key = key_of(ctx, "IPAddress", None, &ip.to_string())?;
        if ctx.store().get(&key, None).await?.is_some() {
            return Err(ApiError::conflict(
                &gr,
                name,
                &format!("the provided IP {ip} is already allocated"),
            ));
        }
        return Ok((AddressClaim { ip, key }, false));
    }
    ensure_ready(index).await?;
    for _ in 0..MAX_PROPOSALS {
        let ip = index
            .propose_address(family)
            .map_err(|e| pool_error(resource, name, e))?;
        if exclude.contains(&ip) {
            // Chosen earlier in this same request: not yet in the index, so ask again.
            continue;
        }
        let key = key_of(ctx, "IPAddress", None, &ip.to_string())?;
        if ctx.store().get(&key, None).await?.is_some() {
            index.note_address_taken(ip);
            continue;
        }
        return Ok((AddressClaim { ip, key }, true));
    }
    Err(ApiError::unavailable(
        "could not allocate an IP address: too many concurrent allocations",
    ))
}

pub(crate) fn family_of(value: Option<&str>) -> Option<IpFamily> {
    match value {
        Some("IPv4") => Some(IpFamily::IPv4),
        Some("IPv6") => Some(IpFamily::IPv6),
        _ => None,
    }
}

/// Claims `spec.ip` or a free address of `spec.ipFamily` for a new IP, and labels the IP.
pub async fn ip_create(
    ctx: &AdmissionContext,
    index: &ClaimIndex,
    obj: &mut Value,
) -> Result<SideEffects, ApiError> {
    let claimer = Claimer::of("ips", obj);
    let given = obj
        .pointer("/spec/ip")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let given = match given {
        Some(s) => Some(s.parse::<IpAddr>().map_err(|_| {
            invalid(
                "IP",
                &claimer.name,
                FieldError::invalid(&Path::new("spec").child("ip"), s, "must be a valid IP address"),
            )
        })?),
        None => None,
    };
    let family = family_of(obj.pointer("/spec/ipFamily").and_then(Value::as_str))
        .or(given.map(IpFamily::of))
        .ok_or_else(|| {
            invalid(
                "IP",
                &claimer.name,
                FieldError::required(&Path::new("spec").child("ipFamily"), ""),
            )
        })?;
    let (claim, retryable) = choose_address(
        ctx,
        index,
        family,
        given,
        &Path::new("spec").child("ip"),
        ("IP", "ips", &claimer.name),
        &[],
    )
    .await?;
    obj["spec"]["ip"] = Value::String(claim.ip.to_string());
    obj["spec"]["ipFamily"] = Value::String(family.as_str().to_owned());
    let meta = ironnet_apiserver::meta::metadata_mut(obj);
    let labels = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert(
            objects::IP_FAMILY_LABEL.into(),
            Value::String(family.as_str().into()),
        );
        labels.insert(
            objects::IP_LABEL.into(),
            Value::String(objects::ip_label_value(claim.ip)),
        );
    }
    let (compare, op) = create_claim(claim.key, &objects::ip_address(claim.ip, &claimer, &now(ctx)));
    Ok(SideEffects {
        compares: vec![compare],
        ops: vec![op],
        retryable,
    })
}

/// Releases the IP's IPAddress together with the IP.
pub async fn ip_delete(ctx: &AdmissionContext, old: &Value) -> Result<SideEffects, ApiError> {
    let claimer = Claimer::of("ips", old);
    let Some(ip) = old
        .pointer("/spec/ip")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<IpAddr>().ok())
    else {
        return Ok(SideEffects::none());
    };
    let key = key_of(ctx, "IPAddress", None, &ip.to_string())?;
    release_if_claimed_by(ctx, key, &claimer.uid).await
}

/// Appends `other` to `effects`.
pub(crate) fn merge(effects: &mut SideEffects, other: SideEffects) {
    effects.compares.extend(other.compares);
    effects.ops.extend(other.ops);
    effects.retryable |= other.retryable;
}

/// Chooses a free address of `family` (not in `exclude`) and its IPAddress key, for embedded public IPs.
pub(crate) async fn claim_new_address(
    ctx: &AdmissionContext,
    index: &ClaimIndex,
    family: IpFamily,
    field: &Path,
    who: (&str, &str, &str),
    exclude: &[IpAddr],
) -> Result<(IpAddr, String, bool), ApiError> {
    let (claim, retryable) = choose_address(ctx, index, family, None, field, who, exclude).await?;
    Ok((claim.ip, claim.key, retryable))
}

/// Shared handle to the index for hook structs.
pub type SharedIndex = Arc<ClaimIndex>;
