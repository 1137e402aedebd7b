//! End-to-end tests of the `ironnet` binary: the README walkthrough with the real kubectl against `ironnet up`,
//! the walkthrough with real hypervisors against `ironnet up --hypervisors 2`, and controllers killed and restarted
//! during a large apply, and the security of what `ironnet up` serves (TLS, per-component identities, the audit
//! log, tokens, the Python client).

mod common;
mod hypervisors;
mod lab_faults;
mod restart;
mod security;
mod walkthrough;
