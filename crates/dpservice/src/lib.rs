//! ironnet's dataplane service: dpservice-compatible gRPC API over TAP ports.
