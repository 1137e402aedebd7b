//! NATGatewayAutoscaler: how many public IPs a NAT gateway needs (upstream ironcore-net's
//! NATGatewayAutoscaler controller, `internal/controllers`).

use super::slots::{SlotError, SlotLayout};

/// Autoscaler bounds (`spec.minPublicIPs`, `spec.maxPublicIPs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScaleBounds {
    /// Lower bound, if set.
    pub min: Option<i64>,
    /// Upper bound, if set.
    pub max: Option<i64>,
}

/// The number of public IPs the gateway should have.
///
/// `ceil(requested / slotsPerIP)`, clamped to `[min, max]` (max wins when they conflict). Upstream truncates,
/// which leaves up to `slotsPerIP − 1` interfaces without NAT once demand exceeds capacity; rounding up grows
/// the gateway as soon as one interface would be left out.
pub fn desired_public_ips(
    ports_per_interface: i64,
    requested: i64,
    bounds: ScaleBounds,
) -> Result<i64, SlotError> {
    let slots = i64::from(SlotLayout::new(ports_per_interface)?.slots_per_ip());
    let requested = requested.max(0);
    let mut desired = requested / slots + i64::from(requested % slots != 0);
    if let Some(min) = bounds.min {
        desired = desired.max(min.max(0));
    }
    if let Some(max) = bounds.max {
        desired = desired.min(max.max(0));
    }
    Ok(desired)
}

/// The new `spec.ips[].name` list: existing names kept in order, grown with fresh names from `fresh_name`
/// (called until it yields a name not yet used) or truncated from the end.
pub fn scale_ip_names(
    existing: &[String],
    desired: i64,
    mut fresh_name: impl FnMut() -> String,
) -> Vec<String> {
    let desired = usize::try_from(desired.max(0)).unwrap_or(usize::MAX);
    let mut names: Vec<String> = existing.iter().take(desired).cloned().collect();
    while names.len() < desired {
        let candidate = fresh_name();
        if !existing.contains(&candidate) && !names.contains(&candidate) {
            names.push(candidate);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rounds_up_and_clamps() {
        let b = ScaleBounds {
            min: Some(1),
            max: Some(10),
        };
        assert_eq!(desired_public_ips(2048, 0, b).unwrap(), 1);
        assert_eq!(desired_public_ips(2048, 31, b).unwrap(), 1);
        assert_eq!(desired_public_ips(2048, 32, b).unwrap(), 2);
        assert_eq!(desired_public_ips(2048, 10_000, b).unwrap(), 10);
        assert_eq!(
            desired_public_ips(
                64512,
                0,
                ScaleBounds {
                    min: Some(1),
                    max: Some(3)
                }
            )
            .unwrap(),
            1
        );
        assert_eq!(desired_public_ips(64512, 5, ScaleBounds::default()).unwrap(), 5);
        assert!(desired_public_ips(0, 5, b).is_err());
    }

    #[test]
    fn names_grow_uniquely_and_shrink_from_the_end() {
        let existing = vec!["a".to_string(), "b".to_string()];
        let mut pool = ["a", "c", "c", "d"].into_iter();
        let grown = scale_ip_names(&existing, 4, || pool.next().unwrap().to_string());
        assert_eq!(grown, ["a", "b", "c", "d"]);
        assert_eq!(scale_ip_names(&existing, 1, || unreachable!()), ["a"]);
        assert!(scale_ip_names(&existing, -3, || unreachable!()).is_empty());
    }

    proptest! {
        /// Within bounds, the desired IPs always offer a slot to every requesting interface.
        #[test]
        fn capacity_covers_demand(ppn in 1i64..=64512, requested in 0i64..1_000_000) {
            let d = desired_public_ips(ppn, requested, ScaleBounds::default()).unwrap();
            let slots = i64::from(64512 / ppn as u32);
            prop_assert!(d * slots >= requested);
            prop_assert!((d - 1).max(0) * slots < requested.max(1));
        }
    }
}
