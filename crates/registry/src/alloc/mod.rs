//! Pure allocation indexes: which VNIs and addresses are taken, and a fast "next free" search.
//!
//! These are caches of the truth held in the store (NetworkID and IPAddress objects). A candidate
//! from here is only *proposed*; the store transaction that creates the claim object decides. That
//! keeps several API servers sharing one etcd correct while each answers "next free" in
//! O(log n) words instead of one store read per occupied address.

mod bitmap;
mod pool;

pub use bitmap::IdBitmap;
pub use pool::{AddressPool, IpFamily, PoolError, VniPool, VniRange};
