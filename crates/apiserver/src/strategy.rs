//! Per-kind behaviour: defaulting, validation and admission hooks that join the object's store transaction.

use std::sync::Arc;

use ironnet_apimachinery::field::ErrorList;
use ironnet_store::{Compare, Op, Store};
use serde_json::Value;

use crate::definition::PrinterColumn;
use crate::error::ApiError;
use crate::meta::{SharedClock, SystemClock};
use crate::registry::Registry;

/// Extra conditions and writes an admission hook adds to the object's own store transaction.
///
/// All of them commit atomically with the object write, or none does. If the transaction fails
/// only because one of `compares` no longer holds and `retryable` is set, the server re-runs the
/// hook (a bounded number of times) against fresh store state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SideEffects {
    /// Conditions on other keys.
    pub compares: Vec<Compare>,
    /// Writes to other keys.
    pub ops: Vec<Op>,
    /// Whether a failed compare should re-run the hook.
    pub retryable: bool,
}

impl SideEffects {
    /// No side effects.
    pub fn none() -> Self {
        SideEffects::default()
    }
}

/// What an admission hook may look at: the store (read-only by convention: writes go through
/// [`SideEffects`]), the registry (key layout of other kinds) and whether the request is a dry run.
#[derive(Clone)]
pub struct AdmissionContext {
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    dry_run: bool,
    clock: SharedClock,
    user: Option<crate::auth::UserInfo>,
}

impl std::fmt::Debug for AdmissionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmissionContext")
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

impl AdmissionContext {
    /// A context over `store` and `registry`.
    pub fn new(store: Arc<dyn Store>, registry: Arc<Registry>, dry_run: bool) -> Self {
        AdmissionContext {
            store,
            registry,
            dry_run,
            clock: Arc::new(SystemClock),
            user: crate::auth::request_user(),
        }
    }

    /// The same context with the server's clock (the system clock unless replaced, e.g. in tests).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The server's current time, for timestamps of objects a hook creates as side effects.
    pub fn now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    /// The store, for reads (`get`, `list`). Side effects must be returned, not written here.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The registry of served kinds, e.g. to compute another kind's store key.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Who asks: the request's authenticated user, or `None` for the server's own writes
    /// (bootstrap, garbage collection, namespace cleanup).
    pub fn user(&self) -> Option<&crate::auth::UserInfo> {
        self.user.as_ref()
    }

    /// Whether this request is a dry run: side effects will be computed but never committed.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }
}

/// Per-kind behaviour over JSON objects. Every method has a no-op default.
///
/// Order on create: `default` → `validate_create` → `admit_create`; on update of the main
/// resource: `default` → `validate_update` → `admit_update`; on update of `/status`:
/// `validate_status_update` → `admit_update`; on delete: `validate_delete` (when the request
/// arrives, before anything changes) → `admit_delete` (when the object is actually removed from
/// the store). Table output asks `printer_cell` for each printer column before evaluating its JSONPath.
#[async_trait::async_trait]
pub trait Strategy: Send + Sync + 'static {
    /// Fills in defaults; called before validation on create and on main-resource updates.
    fn default(&self, _obj: &mut Value) {}

    /// Validates a new object.
    fn validate_create(&self, _obj: &Value) -> ErrorList {
        ErrorList::new()
    }

    /// Validates an update of the main resource (spec and metadata).
    fn validate_update(&self, _new: &Value, _old: &Value) -> ErrorList {
        ErrorList::new()
    }

    /// Validates an update through `/status`.
    fn validate_status_update(&self, _new: &Value, _old: &Value) -> ErrorList {
        ErrorList::new()
    }

    /// Validates a delete request against the stored object before anything changes: a non-empty
    /// list refuses the delete with 422 Invalid (one cause per error, with its field path). It runs
    /// for DELETE, for every item of DELETECOLLECTION and for the deletes of the garbage collector
    /// and the namespace controller, but not again for an object that is already being deleted
    /// (its deletion was accepted) nor when finalizers release it. It may read the store through
    /// `ctx` (e.g. to check whether an object is still in use).
    async fn validate_delete(&self, _ctx: &AdmissionContext, _obj: &Value) -> Result<ErrorList, ApiError> {
        Ok(ErrorList::new())
    }

    /// The Table cell of `column` for `obj`, for kinds whose columns are formatted rather than
    /// plain JSONPath values (placeholders such as `<none>`, joined lists, composed references).
    /// `None` (the default) renders the column's JSONPath like a CRD's printer column.
    fn printer_cell(&self, _column: &PrinterColumn, _obj: &Value) -> Option<Value> {
        None
    }

    /// Admission on create; may modify the object and add side effects to its transaction.
    async fn admit_create(&self, _ctx: &AdmissionContext, _obj: &mut Value) -> Result<SideEffects, ApiError> {
        Ok(SideEffects::none())
    }

    /// Admission on update (main resource or status).
    async fn admit_update(
        &self,
        _ctx: &AdmissionContext,
        _new: &mut Value,
        _old: &Value,
    ) -> Result<SideEffects, ApiError> {
        Ok(SideEffects::none())
    }

    /// Admission on the final removal of an object from the store.
    async fn admit_delete(&self, _ctx: &AdmissionContext, _old: &Value) -> Result<SideEffects, ApiError> {
        Ok(SideEffects::none())
    }
}

/// A strategy that does nothing: every object is valid and has no side effects.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultStrategy;

impl Strategy for DefaultStrategy {}
