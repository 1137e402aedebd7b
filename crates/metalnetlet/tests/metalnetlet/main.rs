//! metalnetlet against the real in-process API server (with VNI and public-IP allocation) on an embedded store:
//! upstream ironcore-net's `metalnetlet/controllers/*_test.go` with its bugs fixed, plus the fixes' own tests.

mod common;
mod instance;
mod kubectl;
mod metrics;
mod network;
mod networkinterface;
mod node;
