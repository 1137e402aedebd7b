//! End-to-end tests of the `ironnet` binary: the README walkthrough with the real kubectl against `ironnet up`,
//! and controllers killed and restarted during a large apply.

mod common;
mod restart;
mod walkthrough;
