//! The metalbond integration tests, one binary so the workspace links (and stores) fewer test executables.

mod cli;
mod common;
mod loopback;
mod metrics;
mod refusal;
mod robustness;
mod tls;
