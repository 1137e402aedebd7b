//! metalbond: route distribution between hypervisors (wire-compatible with IronCore metalbond).
