//! The api integration tests, one binary so the workspace links (and stores) fewer test executables.

mod apinet;
mod common;
mod crds;
mod examples;
mod fuzz;
mod metalnet;
mod networking;
