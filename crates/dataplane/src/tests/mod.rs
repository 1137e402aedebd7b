//! Packet-level tests.
