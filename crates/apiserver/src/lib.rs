//! A generic Kubernetes-style API server over the revisioned store.
