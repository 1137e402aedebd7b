//! NAT: port-slot arithmetic, per-gateway slot allocation and public-IP autoscaling.

pub mod allocation;
pub mod autoscaler;
pub mod slots;
