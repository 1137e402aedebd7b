//! metalnet against the real API server, a real in-process `ironnet dpservice` (TAP mode, needs root) and a real
//! metalbond server on loopback. Upstream's metalnet test list, plus the changes upstream does not apply and the
//! restart cases.

mod common;
mod loadbalancer;
mod network;
mod networkinterface;
mod restart;
mod routes;
mod traffic;
