//! Integration tests of the API server: raw HTTP, kube-rs (in process and over TCP) and kubectl.

mod common;
mod field_validation;
mod http_api;
mod kube_rs;
mod kubectl;
mod node;
