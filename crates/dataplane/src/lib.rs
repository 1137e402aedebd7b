//! The pure packet pipeline of ironnet's dataplane (no I/O).
