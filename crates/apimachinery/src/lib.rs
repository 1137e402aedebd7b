//! Kubernetes API machinery shared by ironnet's API server and its API types, with no I/O.
//!
//! It holds the validation vocabulary of `k8s.io/apimachinery/pkg/util/validation/field`:
//! field paths ([`field::Path`]) and field errors ([`field::FieldError`], [`field::ErrorList`]) whose
//! messages and `reason`s are byte-for-byte those of kube-apiserver, so that clients (kubectl, kube-rs,
//! client-go) show them exactly as they would for any Kubernetes API.

//!
//! It also holds [`clock::Clock`], the one injected source of time of every component.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod clock;
pub mod field;
