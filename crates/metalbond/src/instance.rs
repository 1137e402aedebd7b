//! [`MetalBond`]: one metalbond instance — a client (dials servers, subscribes, announces), a server (route
//! reflector accepting clients), or both — and the API the node agent uses.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::connection::{run_connection, run_outgoing};
use crate::engine::{Engine, EngineError, PeerEntry, RouteEvent};
use crate::route::{NextHop, Route, RouteFault, Vni};
use crate::session::{ConnectionState, Direction};

/// Errors of the instance API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A subscription or route table operation failed (messages are upstream's).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// `add_peer` for an address that is already a peer.
    #[error("peer {0} already registered")]
    PeerExists(String),
    /// No peer with this address.
    #[error("peer {0} does not exist")]
    UnknownPeer(String),
    /// Binding or accepting failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// [`announce`](MetalBond::announce) of a route no peer would accept.
    #[error("invalid route {route}: {fault}")]
    InvalidRoute {
        /// The route given.
        route: Route,
        /// What is wrong with it.
        fault: RouteFault,
    },
    /// The TLS credentials could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A wait for peers to become ESTABLISHED ran out of time.
    #[error("timed out after {0:?} waiting for peers to become ESTABLISHED")]
    EstablishTimeout(Duration),
}

/// State shared by the API handle and the connection tasks.
#[derive(Debug)]
pub(crate) struct Core {
    engine: Mutex<Engine>,
    pub config: Config,
    changes: watch::Sender<u64>,
    shutdown: CancellationToken,
}

impl Core {
    /// Locks the engine. A panic while holding the lock cannot leave the tables half-updated in a way that
    /// matters more than stopping would, so a poisoned lock is used as is.
    pub fn lock(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes everyone waiting for a peer state change.
    pub fn notify(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }
}

/// A metalbond instance. Cheap to clone; all clones share the same state.
///
/// Every method that changes routing state is synchronous and takes effect (including queuing the messages to
/// peers) before it returns; the I/O runs on tokio tasks, so the instance must be used inside a tokio runtime.
#[derive(Debug, Clone)]
pub struct MetalBond {
    core: Arc<Core>,
}

impl MetalBond {
    /// A new instance with no peers. Fails if `config` is invalid.
    pub fn new(config: Config) -> Result<Self, Error> {
        config.validate()?;
        let (changes, _) = watch::channel(0);
        let core = Core {
            engine: Mutex::new(Engine::new(config.max_write_bytes)),
            config,
            changes,
            shutdown: CancellationToken::new(),
        };
        Ok(Self { core: Arc::new(core) })
    }

    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.core.config
    }

    /// Binds `addr` and accepts peers on it (server role) until [`shutdown`](Self::shutdown). Returns the bound
    /// address (useful with port 0).
    pub async fn start_server(&self, addr: SocketAddr) -> Result<SocketAddr, Error> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        self.serve(listener);
        Ok(local)
    }

    /// Accepts peers on an already bound listener until [`shutdown`](Self::shutdown).
    pub fn serve(&self, listener: TcpListener) {
        let core = self.core.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = core.shutdown.cancelled() => return,
                    a = listener.accept() => a,
                };
                let (stream, remote) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Transient (e.g. EMFILE): back off briefly instead of spinning or giving up.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let stop = core.shutdown.child_token();
                let id = core.lock().add_peer(PeerEntry::new(
                    remote.to_string(),
                    Direction::Incoming,
                    stop.clone(),
                ));
                tracing::info!(peer = %remote, "accepted");
                let core = core.clone();
                tokio::spawn(async move {
                    let peer = remote.to_string();
                    let error =
                        run_connection(core.clone(), id, stream, &peer, Direction::Incoming, stop).await;
                    tracing::info!(peer = %remote, %error, "session ended");
                    core.lock().remove_peer(id);
                    core.notify();
                });
            }
        });
    }

    /// Adds a server to dial (client role); it is redialled after every failure until removed.
    pub fn add_peer(&self, addr: &str) -> Result<(), Error> {
        self.add_peer_from(addr, None)
    }

    /// Like [`add_peer`](Self::add_peer), dialling from the local address `local`.
    pub fn add_peer_from(&self, addr: &str, local: Option<IpAddr>) -> Result<(), Error> {
        let stop = self.core.shutdown.child_token();
        let id = {
            let mut engine = self.core.lock();
            if engine.by_addr.contains_key(addr) {
                return Err(Error::PeerExists(addr.to_owned()));
            }
            engine.add_peer(PeerEntry::new(addr.to_owned(), Direction::Outgoing, stop.clone()))
        };
        tokio::spawn(run_outgoing(self.core.clone(), id, addr.to_owned(), local, stop));
        Ok(())
    }

    /// Removes a peer: closes its connection (and stops redialling), dropping every route learned from it.
    pub fn remove_peer(&self, addr: &str) -> Result<(), Error> {
        let entry = {
            let mut engine = self.core.lock();
            let id = *engine
                .by_addr
                .get(addr)
                .ok_or_else(|| Error::UnknownPeer(addr.to_owned()))?;
            engine.remove_peer(id)
        };
        if let Some(entry) = entry {
            entry.stop.cancel();
        }
        self.core.notify();
        Ok(())
    }

    /// Resets a peer's current connection: an incoming peer is closed (its client will reconnect), an outgoing one
    /// goes to RETRY and redials after the retry delay.
    pub fn reset_peer(&self, addr: &str) -> Result<(), Error> {
        let engine = self.core.lock();
        let id = engine
            .by_addr
            .get(addr)
            .ok_or_else(|| Error::UnknownPeer(addr.to_owned()))?;
        if let Some(cancel) = engine.peers.get(id).and_then(|p| p.conn_cancel.as_ref()) {
            cancel.cancel();
        }
        Ok(())
    }

    /// The state of the peer with this address, `None` if there is no such peer.
    pub fn peer_state(&self, addr: &str) -> Option<ConnectionState> {
        let engine = self.core.lock();
        engine
            .by_addr
            .get(addr)
            .and_then(|id| engine.peers.get(id))
            .map(|p| p.state)
    }

    /// Every peer's address and state, sorted by address.
    pub fn peers(&self) -> Vec<(String, ConnectionState)> {
        let engine = self.core.lock();
        let mut v: Vec<_> = engine.peers.values().map(|p| (p.addr.clone(), p.state)).collect();
        v.sort();
        v
    }

    /// The VNIs a peer subscribed to (server side), sorted; `None` if there is no such peer.
    pub fn peer_subscriptions(&self, addr: &str) -> Option<Vec<Vni>> {
        let engine = self.core.lock();
        let peer = engine.by_addr.get(addr).and_then(|id| engine.peers.get(id))?;
        let mut v: Vec<Vni> = peer.subscribed.iter().copied().collect();
        v.sort_unstable();
        Some(v)
    }

    /// The routes received from a peer, sorted; `None` if there is no such peer.
    pub fn peer_received_routes(&self, addr: &str) -> Option<Vec<Route>> {
        let engine = self.core.lock();
        let peer = engine.by_addr.get(addr).and_then(|id| engine.peers.get(id))?;
        let mut v: Vec<Route> = peer.received.iter().copied().collect();
        v.sort();
        Some(v)
    }

    /// Waits until every peer is ESTABLISHED (true at once without peers), or fails after `timeout`.
    pub async fn wait_established(&self, timeout: Duration) -> Result<(), Error> {
        self.wait_until(timeout, |engine| {
            engine
                .peers
                .values()
                .all(|p| p.state == ConnectionState::Established)
        })
        .await
    }

    /// Waits until the peer with address `addr` is in `state`, or fails after `timeout`.
    pub async fn wait_peer_state(
        &self,
        addr: &str,
        state: ConnectionState,
        timeout: Duration,
    ) -> Result<(), Error> {
        self.wait_until(timeout, |engine| {
            engine
                .by_addr
                .get(addr)
                .and_then(|id| engine.peers.get(id))
                .is_some_and(|p| p.state == state)
        })
        .await
    }

    async fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&Engine) -> bool,
    ) -> Result<(), Error> {
        let mut changes = self.core.changes.subscribe();
        let wait = async {
            loop {
                if done(&self.core.lock()) {
                    return;
                }
                if changes.changed().await.is_err() {
                    // Unreachable while `self` holds the sender; poll instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| Error::EstablishTimeout(timeout))
    }

    /// Subscribes to `vni` on every server (now if established, else as soon as it is).
    ///
    /// Fails with "already subscribed to VNI n" if subscribed.
    pub fn subscribe(&self, vni: Vni) -> Result<(), Error> {
        Ok(self.core.lock().subscribe(vni)?)
    }

    /// Unsubscribes from `vni`; its received routes are dropped and reported as [`RouteEvent::Removed`].
    ///
    /// Fails with "already unsubscribed from VNI n" if not subscribed.
    pub fn unsubscribe(&self, vni: Vni) -> Result<(), Error> {
        Ok(self.core.lock().unsubscribe(vni)?)
    }

    /// Whether we subscribe to `vni`.
    pub fn is_subscribed(&self, vni: Vni) -> bool {
        self.core.lock().subscriptions.contains(&vni)
    }

    /// The VNIs we subscribe to, sorted.
    pub fn subscribed_vnis(&self) -> Vec<Vni> {
        self.core.lock().subscriptions.iter().copied().collect()
    }

    /// Announces a route to every peer (now if established, else when it is).
    ///
    /// Fails with "nexthop already exists" if this exact route is already announced, and with
    /// [`Error::InvalidRoute`] if [`Route::validate`] refuses it (peers would close the session on it).
    pub fn announce(&self, route: Route) -> Result<(), Error> {
        route
            .validate()
            .map_err(|fault| Error::InvalidRoute { route, fault })?;
        Ok(self.core.lock().announce(route)?)
    }

    /// Withdraws an announced route from every peer.
    ///
    /// Fails with "vni/destination/nexthop does not exist" if it is not announced.
    pub fn withdraw(&self, route: Route) -> Result<(), Error> {
        Ok(self.core.lock().withdraw(route)?)
    }

    /// Whether this exact route is announced by us.
    pub fn is_announced(&self, route: &Route) -> bool {
        self.core.lock().announced.contains(route)
    }

    /// A stream of changes to the routes learned from peers.
    ///
    /// Events are emitted per distinct route: [`RouteEvent::Added`] when the first peer provides it,
    /// [`RouteEvent::Removed`] when the last one stops (so with two HA servers a route stays until both dropped it).
    /// The receiver is unbounded so that no event is ever lost; a consumer must keep reading it. Use
    /// [`route_events_with_snapshot`](Self::route_events_with_snapshot) to start from the current table.
    pub fn route_events(&self) -> mpsc::UnboundedReceiver<RouteEvent> {
        self.route_events_with_snapshot().1
    }

    /// The routes learned so far plus a stream of every later change, taken atomically.
    pub fn route_events_with_snapshot(&self) -> (Vec<Route>, mpsc::UnboundedReceiver<RouteEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut engine = self.core.lock();
        engine.add_listener(tx);
        let mut routes: Vec<Route> = engine.received.routes().map(|(r, _)| r).collect();
        routes.sort();
        (routes, rx)
    }

    /// The distinct routes learned from peers in `vni`, sorted (what upstream's `AddRoutesForVni` replays, without
    /// our own announcements, which never reach the local route consumer).
    pub fn routes_in(&self, vni: Vni) -> Vec<Route> {
        let mut v: Vec<Route> = self.core.lock().received.routes_in(vni).map(|(r, _)| r).collect();
        v.sort();
        v
    }

    /// Whether `route` is currently learned from at least one peer.
    pub fn has_route(&self, route: &Route) -> bool {
        self.core.lock().received.contains(route)
    }

    /// The received route table grouped as VNI → destination → distinct next hops (sorted), for the HTTP view.
    pub fn route_table(&self) -> BTreeMap<Vni, BTreeMap<IpNet, Vec<NextHop>>> {
        let engine = self.core.lock();
        let mut out: BTreeMap<Vni, BTreeMap<IpNet, Vec<NextHop>>> = BTreeMap::new();
        for (route, _) in engine.received.routes() {
            out.entry(route.vni)
                .or_default()
                .entry(route.destination)
                .or_default()
                .push(route.next_hop);
        }
        for hops in out.values_mut().flat_map(|d| d.values_mut()) {
            hops.sort();
        }
        out
    }

    /// Closes every connection, stops listening and redialling, and drops all learned routes.
    pub fn shutdown(&self) {
        self.core.shutdown.cancel();
        let mut engine = self.core.lock();
        let ids: Vec<_> = engine.peers.keys().copied().collect();
        for id in ids {
            engine.remove_peer(id);
        }
        drop(engine);
        self.core.notify();
    }
}
