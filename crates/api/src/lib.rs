//! The IronCore networking API types (no I/O).
