//! The metalbond integration tests, one binary so the workspace links (and stores) fewer test executables.

mod common;
mod cli;
mod loopback;
mod robustness;
