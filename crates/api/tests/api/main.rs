//! The api integration tests, one binary so the workspace links (and stores) fewer test executables.

mod common;
mod apinet;
mod crds;
mod examples;
mod fuzz;
mod metalnet;
mod networking;
