//! [`ClaimIndex`]: the allocation indexes kept in sync with the claim objects in the store.
//!
//! The store is the truth: a VNI is taken while a `NetworkID` object of that name exists, an address
//! while an `IPAddress` object of that name exists. The index follows those keys with a list and a
//! watch (re-listing after a compaction), so that proposing a free value costs no store reads. A
//! proposal can be stale (another API server claimed it a moment ago); the claim's create-if-absent
//! compare in the store transaction catches that and the hook proposes again.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ironnet_store::{EventKind, ListOptions, Store, StoreError};
use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::watch;

use ironnet_vni::Vni;

use crate::alloc::{AddressPool, IpFamily, PoolError, VniPool, VniRange};

/// The VNI and public-address indexes of one API server.
#[derive(Debug)]
pub struct ClaimIndex {
    range: VniRange,
    prefixes: Vec<ipnet::IpNet>,
    vnis: Mutex<VniPool>,
    addresses: Mutex<AddressPool>,
    vnis_ready: watch::Sender<bool>,
    addresses_ready: watch::Sender<bool>,
}

/// The last path segment of a store key: the object name.
fn key_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

impl ClaimIndex {
    /// An empty, not yet synced index over a VNI range and the public prefixes.
    pub fn new(range: VniRange, prefixes: Vec<ipnet::IpNet>) -> Arc<Self> {
        Arc::new(ClaimIndex {
            range,
            vnis: Mutex::new(VniPool::new(range)),
            addresses: Mutex::new(AddressPool::new(prefixes.iter().copied())),
            prefixes,
            vnis_ready: watch::channel(false).0,
            addresses_ready: watch::channel(false).0,
        })
    }

    /// The configured VNI range.
    pub fn vni_range(&self) -> VniRange {
        self.range
    }

    /// The usage of the VNI pool (`vni`) and of each public prefix, in configuration order.
    pub fn pool_usage(&self) -> Vec<crate::metrics::PoolUsage> {
        let mut usage = Vec::with_capacity(1 + self.prefixes.len());
        {
            let vnis = self.vnis.lock();
            usage.push(crate::metrics::PoolUsage {
                pool: "vni".to_owned(),
                in_use: u128::from(vnis.taken()),
                size: u128::from(vnis.size()),
            });
        }
        usage.extend(
            self.addresses
                .lock()
                .usage()
                .map(|(prefix, in_use, size)| crate::metrics::PoolUsage {
                    pool: prefix.to_string(),
                    in_use,
                    size,
                }),
        );
        usage
    }

    /// Whether `ip` lies in a configured public prefix.
    pub fn in_public_range(&self, ip: IpAddr) -> bool {
        self.addresses.lock().in_range(ip)
    }

    /// Whether a public prefix of `family` is configured.
    pub fn has_family(&self, family: IpFamily) -> bool {
        self.addresses.lock().has_family(family)
    }

    /// Proposes a VNI that the index believes free.
    pub fn propose_vni(&self) -> Result<Vni, PoolError> {
        self.vnis.lock().propose(&mut rand::rng())
    }

    /// Proposes a public address of `family` that the index believes free.
    pub fn propose_address(&self, family: IpFamily) -> Result<IpAddr, PoolError> {
        self.addresses.lock().propose(family, &mut rand::rng())
    }

    /// Records a VNI as taken (a proposal turned out to be claimed already).
    pub fn note_vni_taken(&self, vni: Vni) {
        self.vnis.lock().mark_taken(vni);
    }

    /// Records an address as taken (a proposal turned out to be claimed already).
    pub fn note_address_taken(&self, ip: IpAddr) {
        self.addresses.lock().mark_taken(ip);
    }

    /// Waits until both indexes reflect the store (bounded by `timeout`); returns whether they do.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut v = self.vnis_ready.subscribe();
        let mut a = self.addresses_ready.subscribe();
        tokio::time::timeout(timeout, async {
            let _ = v.wait_for(|r| *r).await;
            let _ = a.wait_for(|r| *r).await;
        })
        .await
        .is_ok()
    }

    /// Follows the NetworkID keys under `network_id_prefix` and the IPAddress keys under
    /// `ip_address_prefix` until the returned tasks are aborted.
    pub fn spawn_sync(
        self: &Arc<Self>,
        store: Arc<dyn Store>,
        network_id_prefix: String,
        ip_address_prefix: String,
    ) -> [tokio::task::JoinHandle<()>; 2] {
        let this = Arc::clone(self);
        let s = Arc::clone(&store);
        let vnis = tokio::spawn(async move {
            let range = this.range;
            follow(
                s,
                network_id_prefix,
                &this.vnis_ready,
                |names| {
                    let mut pool = VniPool::new(range);
                    for name in names {
                        if let Ok(vni) = name.parse::<Vni>() {
                            pool.mark_taken(vni);
                        }
                    }
                    *this.vnis.lock() = pool;
                },
                |name, taken| {
                    if let Ok(vni) = name.parse::<Vni>() {
                        let mut pool = this.vnis.lock();
                        if taken {
                            pool.mark_taken(vni);
                        } else {
                            pool.release(vni);
                        }
                    }
                },
            )
            .await;
        });
        let this = Arc::clone(self);
        let addresses = tokio::spawn(async move {
            let prefixes = this.prefixes.clone();
            follow(
                store,
                ip_address_prefix,
                &this.addresses_ready,
                |names| {
                    let mut pool = AddressPool::new(prefixes.iter().copied());
                    for name in names {
                        if let Ok(ip) = name.parse::<IpAddr>() {
                            pool.mark_taken(ip);
                        }
                    }
                    *this.addresses.lock() = pool;
                },
                |name, taken| {
                    if let Ok(ip) = name.parse::<IpAddr>() {
                        let mut pool = this.addresses.lock();
                        if taken {
                            pool.mark_taken(ip);
                        } else {
                            pool.release(ip);
                        }
                    }
                },
            )
            .await;
        });
        [vnis, addresses]
    }
}

/// Lists `prefix` and then watches it, calling `reset` with every name after each (re)list and
/// `apply(name, taken)` for each change; re-lists when the watch fails (e.g. compaction).
async fn follow(
    store: Arc<dyn Store>,
    prefix: String,
    ready: &watch::Sender<bool>,
    mut reset: impl FnMut(Vec<String>),
    mut apply: impl FnMut(&str, bool),
) {
    loop {
        let revision = match list_names(store.as_ref(), &prefix).await {
            Ok((names, revision)) => {
                reset(names);
                ready.send_replace(true);
                revision
            }
            Err(error) => {
                tracing::warn!(%prefix, %error, "claim index list failed; retrying");
                let backoff = Duration::from_millis(200 + rand::rng().random_range(0..300));
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let mut stream = match store.watch(&prefix, revision).await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%prefix, %error, "claim index watch failed; re-listing");
                continue;
            }
        };
        while let Some(item) = stream.next().await {
            match item {
                Ok(response) => {
                    for event in response.events {
                        apply(key_name(&event.kv.key), event.kind == EventKind::Put);
                    }
                }
                Err(error) => {
                    tracing::info!(%prefix, %error, "claim index watch ended; re-listing");
                    break;
                }
            }
        }
    }
}

/// Every name under `prefix` and the revision they were read at.
async fn list_names(store: &dyn Store, prefix: &str) -> Result<(Vec<String>, u64), StoreError> {
    let mut names = Vec::new();
    let mut options = ListOptions {
        limit: Some(10_000),
        ..ListOptions::default()
    };
    loop {
        let page = store.list(prefix, options.clone()).await?;
        names.extend(page.items.iter().map(|kv| key_name(&kv.key).to_owned()));
        if !page.more {
            return Ok((names, page.revision));
        }
        options.revision = Some(page.revision);
        options.start_after = page.items.last().map(|kv| kv.key.clone());
    }
}
