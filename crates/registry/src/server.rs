//! Assembling an API server that serves every IronCore kind with allocation.

use std::sync::Arc;

use ipnet::IpNet;
use ironnet_apiserver::{ApiServer, ApiServerBuilder, BuildError, DefinitionError, RegistryError};
use ironnet_store::Store;

use crate::alloc::VniRange;
use crate::index::ClaimIndex;
use crate::objects::APINET_GROUP;

/// Allocation settings of ironcore-net's API server (`--min-vni`, `--max-vni`, `--public-prefix`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocationConfig {
    /// The VNI range networks get their IDs from.
    pub vni_range: VniRange,
    /// The public prefixes, in allocation order (IPv4 and IPv6 may be mixed).
    pub public_prefixes: Vec<IpNet>,
}

impl Default for AllocationConfig {
    fn default() -> Self {
        AllocationConfig {
            vni_range: VniRange::DEFAULT,
            public_prefixes: Vec::new(),
        }
    }
}

/// Errors assembling the server.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// A kind's CRD could not be turned into a definition.
    #[error("kind definition: {0}")]
    Definition(#[from] DefinitionError),
    /// Two kinds collide.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The server could not start.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// An API server serving the IronCore kinds, with its allocation index. Dropping it stops the
/// index's sync tasks (and, with the last clone of the server, its background controllers).
#[derive(Debug)]
pub struct IroncoreApiServer {
    /// The server; `server.router()` is the HTTP service.
    pub server: ApiServer,
    /// The allocation index behind the admission hooks.
    pub index: Arc<ClaimIndex>,
    sync: [tokio::task::JoinHandle<()>; 2],
}

impl Drop for IroncoreApiServer {
    fn drop(&mut self) {
        for task in &self.sync {
            task.abort();
        }
    }
}

/// Registers every IronCore kind on `builder` (with hooks backed by `index`).
pub fn register_kinds(
    mut builder: ApiServerBuilder,
    index: &Arc<ClaimIndex>,
) -> Result<ApiServerBuilder, AssembleError> {
    for (def, strategy) in crate::strategy::kinds(index)? {
        builder = builder.register(def, strategy)?;
    }
    Ok(builder)
}

/// Builds an API server over `store` that serves every IronCore kind and allocates VNIs and
/// public IPs as configured. `customize` may adjust the builder (clock, config) before it is built.
pub async fn build(
    store: Arc<dyn Store>,
    allocation: &AllocationConfig,
    customize: impl FnOnce(ApiServerBuilder) -> ApiServerBuilder,
) -> Result<IroncoreApiServer, AssembleError> {
    let index = ClaimIndex::new(allocation.vni_range, allocation.public_prefixes.clone());
    let pools = Arc::clone(&index);
    let builder = customize(ApiServerBuilder::new(Arc::clone(&store)))
        .metric_source(move |registry| crate::metrics::register(&pools, registry));
    let builder = register_kinds(builder, &index)?;
    let server = builder.build().await?;
    let prefix = |kind: &str| {
        server
            .registry()
            .by_kind(APINET_GROUP, kind)
            .map(|k| k.def.key_prefix())
            .expect("every apinet kind is registered above")
    };
    let sync = index.spawn_sync(store, prefix("NetworkID"), prefix("IPAddress"));
    Ok(IroncoreApiServer { server, index, sync })
}
