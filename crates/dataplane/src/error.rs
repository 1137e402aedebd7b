//! dpservice business error codes (the `Status.code` of its gRPC responses; the message is the code's name).
//!
//! Control operations of [`crate::Dataplane`] fail with a [`DpError`]. The gRPC layer puts [`DpError::code`] and
//! [`DpError::name`] into the response's `Status{code, message}` with gRPC status OK, exactly as dpservice does.

/// A dpservice business error. Each variant maps 1:1 to one upstream error code; the doc comment of each variant
/// states when ironnet returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum DpError {
    /// 101: the request cannot be executed (e.g. an operation on a port of the wrong kind).
    #[error("BAD_REQUEST")]
    BadRequest,
    /// 201: the named object (interface, port, load balancer, rule, prefix, target, neighbour NAT) does not exist.
    #[error("NOT_FOUND")]
    NotFound,
    /// 202: an object with the same identity already exists (or the port is already in use).
    #[error("ALREADY_EXISTS")]
    AlreadyExists,
    /// 203: the VNI type of the request is not supported by the operation.
    #[error("WRONG_TYPE")]
    WrongType,
    /// 204: the IP family is not supported by the operation (IPv6 VIP/NAT, IPv4 LB target or route next hop).
    #[error("BAD_IPVER")]
    BadIpVer,
    /// 205: the interface id names no interface.
    #[error("NO_VM")]
    NoVm,
    /// 206: the VNI has no routing tables.
    #[error("NO_VNI")]
    NoVni,
    /// 208: a table is full.
    #[error("OUT_OF_MEMORY")]
    OutOfMemory,
    /// 209: a configured limit (VNIs, routes per table, load balancers) is reached.
    #[error("LIMIT_REACHED")]
    LimitReached,
    /// 301: a route with the same masked prefix and length exists in the VNI.
    #[error("ROUTE_EXISTS")]
    RouteExists,
    /// 302: no route with this masked prefix and length exists in the VNI.
    #[error("ROUTE_NOT_FOUND")]
    RouteNotFound,
    /// 303: the route table refused the insertion (table full).
    #[error("ROUTE_INSERT")]
    RouteInsert,
    /// 304: the route is not an external (PF-bound) route and cannot be deleted with DeleteRoute.
    #[error("ROUTE_BAD_PORT")]
    RouteBadPort,
    /// 323: a DNAT entry for (IP, VNI) already exists.
    #[error("DNAT_EXISTS")]
    DnatExists,
    /// 341: the interface has no VIP / NAT.
    #[error("SNAT_NO_DATA")]
    SnatNoData,
    /// 343: the interface already has a VIP / NAT.
    #[error("SNAT_EXISTS")]
    SnatExists,
    /// 361: the IPv4 routing table of a VNI could not be created.
    #[error("VNI_INIT4")]
    VniInit4,
    /// 401: the underlay address is already registered in the VNF table.
    #[error("VNF_INSERT")]
    VnfInsert,
    /// 402: an interface with this id exists.
    #[error("VM_HANDLE")]
    VmHandle,
    /// 422: the load balancer id names no load balancer.
    #[error("NO_LB")]
    NoLb,
    /// 423: the load balancer already has the maximum number of targets.
    #[error("BACKIP_ADD")]
    BackIpAdd,
    /// 441: DROP firewall rules are not supported. ironnet supports them, so it never returns this code; the
    /// variant exists so that the code table is complete for clients.
    #[error("NO_DROP_SUPPORT")]
    NoDropSupport,
}

impl DpError {
    /// The numeric dpservice error code, e.g. 205 for [`DpError::NoVm`].
    pub const fn code(self) -> u32 {
        match self {
            DpError::BadRequest => 101,
            DpError::NotFound => 201,
            DpError::AlreadyExists => 202,
            DpError::WrongType => 203,
            DpError::BadIpVer => 204,
            DpError::NoVm => 205,
            DpError::NoVni => 206,
            DpError::OutOfMemory => 208,
            DpError::LimitReached => 209,
            DpError::RouteExists => 301,
            DpError::RouteNotFound => 302,
            DpError::RouteInsert => 303,
            DpError::RouteBadPort => 304,
            DpError::DnatExists => 323,
            DpError::SnatNoData => 341,
            DpError::SnatExists => 343,
            DpError::VniInit4 => 361,
            DpError::VnfInsert => 401,
            DpError::VmHandle => 402,
            DpError::NoLb => 422,
            DpError::BackIpAdd => 423,
            DpError::NoDropSupport => 441,
        }
    }

    /// The symbolic name dpservice puts into `Status.message`, e.g. `"NO_VM"`.
    pub const fn name(self) -> &'static str {
        match self {
            DpError::BadRequest => "BAD_REQUEST",
            DpError::NotFound => "NOT_FOUND",
            DpError::AlreadyExists => "ALREADY_EXISTS",
            DpError::WrongType => "WRONG_TYPE",
            DpError::BadIpVer => "BAD_IPVER",
            DpError::NoVm => "NO_VM",
            DpError::NoVni => "NO_VNI",
            DpError::OutOfMemory => "OUT_OF_MEMORY",
            DpError::LimitReached => "LIMIT_REACHED",
            DpError::RouteExists => "ROUTE_EXISTS",
            DpError::RouteNotFound => "ROUTE_NOT_FOUND",
            DpError::RouteInsert => "ROUTE_INSERT",
            DpError::RouteBadPort => "ROUTE_BAD_PORT",
            DpError::DnatExists => "DNAT_EXISTS",
            DpError::SnatNoData => "SNAT_NO_DATA",
            DpError::SnatExists => "SNAT_EXISTS",
            DpError::VniInit4 => "VNI_INIT4",
            DpError::VnfInsert => "VNF_INSERT",
            DpError::VmHandle => "VM_HANDLE",
            DpError::NoLb => "NO_LB",
            DpError::BackIpAdd => "BACKIP_ADD",
            DpError::NoDropSupport => "NO_DROP_SUPPORT",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_upstream_name() {
        for e in [
            DpError::NoVm,
            DpError::RouteBadPort,
            DpError::BackIpAdd,
            DpError::VnfInsert,
        ] {
            assert_eq!(e.to_string(), e.name());
        }
        assert_eq!(DpError::NoVm.code(), 205);
        assert_eq!(DpError::SnatExists.code(), 343);
        assert_eq!(DpError::NoDropSupport.code(), 441);
    }
}
