//! A dataplane port as the worker sees it: a TAP device or a vhost-user socket.

use crate::tap::{TapDevice, TapError};
use crate::vhost_user::VhostUserPort;

/// One port of the worker, at index `PortId.0`.
#[derive(Debug)]
pub enum Port {
    /// A TAP netdev (uplinks, and VM ports for namespaces and tests).
    Tap(TapDevice),
    /// A vhost-user socket a QEMU/KVM guest's virtio-net device connects to.
    VhostUser(VhostUserPort),
}

impl Port {
    /// The name reported to gRPC clients (`CreateInterfaceResponse.vf.name`): the TAP netdev
    /// name, or the vhost-user port's name.
    pub fn name(&self) -> &str {
        match self {
            Port::Tap(t) => t.name(),
            Port::VhostUser(v) => v.name(),
        }
    }

    /// Link up/down towards the VM: the TAP carrier, or whether a vhost-user port moves frames.
    pub fn set_carrier(&self, on: bool) -> Result<(), TapError> {
        match self {
            Port::Tap(t) => t.set_carrier(on),
            Port::VhostUser(v) => {
                v.set_carrier(on);
                Ok(())
            }
        }
    }
}
