//! The route engine: what an instance does with subscriptions, announcements and received updates.
//!
//! [`Engine`] holds every table of one metalbond instance and implements the semantics of the protocol
//! (redistribution to subscribers, loop prevention, NAT never reflected to its originator, HA next-hop identity).
//! It does no I/O itself: messages for a peer are pushed, already framed, onto that peer's outgoing queue, and route
//! changes are pushed to the registered [`RouteEvent`] listeners. One lock around it serialises all changes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc::UnboundedSender;

use crate::outbox::Outbox;
use tokio_util::sync::CancellationToken;

use crate::codec::{Action, MAX_FRAME, Message};
use crate::route::{NextHopType, Route, Vni};
use crate::session::{ConnectionState, Direction};
use crate::table::{RouteTable, TableError};

/// Identifies one peer (one configured server, or one accepted connection) within an instance.
pub(crate) type PeerId = u64;

/// A change of the set of routes this instance has learned from its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteEvent {
    /// The route is now provided by at least one peer (it was provided by none before).
    Added(Route),
    /// No peer provides the route any longer.
    Removed(Route),
}

/// Errors of the local API (subscribe, announce, ...). The messages are upstream's, which metalnet matches.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// `subscribe` for a VNI that is already subscribed.
    #[error("already subscribed to VNI {0}")]
    AlreadySubscribed(Vni),
    /// `unsubscribe` for a VNI that is not subscribed.
    #[error("already unsubscribed from VNI {0}")]
    NotSubscribed(Vni),
    /// A route table rejected the change (duplicate announcement, withdrawal of an unknown route).
    #[error(transparent)]
    Table(#[from] TableError),
}

/// One peer as the engine sees it.
#[derive(Debug)]
pub(crate) struct PeerEntry {
    pub addr: String,
    pub direction: Direction,
    pub state: ConnectionState,
    pub is_server: bool,
    /// The outgoing frame queue of the current connection.
    pub tx: Option<Outbox>,
    /// Cancels the current connection (a reset).
    pub conn_cancel: Option<CancellationToken>,
    /// Cancels the peer for good (outgoing peers: stops redialling).
    pub stop: CancellationToken,
    pub subscribed: HashSet<Vni>,
    pub received: HashSet<Route>,
}

impl PeerEntry {
    pub fn new(addr: String, direction: Direction, stop: CancellationToken) -> Self {
        Self {
            addr,
            direction,
            state: ConnectionState::Connecting,
            is_server: false,
            tx: None,
            conn_cancel: None,
            stop,
            subscribed: HashSet::new(),
            received: HashSet::new(),
        }
    }

    fn send(&self, frame: &Bytes) {
        if let Some(tx) = &self.tx {
            // A closed or overflowing queue means the connection is ending; its cleanup runs next.
            let _ = tx.send(frame.clone());
        }
    }
}

/// Frames a message that is known to fit (every message the engine builds is far below the size limit).
fn frame(msg: &Message) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    encode_into(msg, &mut buf);
    buf.freeze()
}

fn encode_into(msg: &Message, buf: &mut BytesMut) {
    if let Err(e) = msg.encode(buf) {
        // Unreachable for the fixed-size messages built here; logged rather than panicking.
        tracing::error!(error = %e, ?msg, "cannot encode message");
    }
}

/// Packs many messages for one peer into chunks of at most `max` bytes, each holding whole frames only, so that a
/// replay of a large table costs one queue operation and one allocation per chunk instead of per route.
struct Batcher<'a> {
    peer: &'a PeerEntry,
    buf: BytesMut,
    max: usize,
}

impl<'a> Batcher<'a> {
    fn new(peer: &'a PeerEntry, max: usize) -> Self {
        Self {
            peer,
            buf: BytesMut::with_capacity(max),
            max,
        }
    }

    fn push(&mut self, msg: &Message) {
        if self.buf.len() + MAX_FRAME > self.max {
            self.flush();
        }
        encode_into(msg, &mut self.buf);
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.peer.send(&self.buf.split().freeze());
            self.buf.reserve(self.max);
        }
    }
}

impl Drop for Batcher<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Counts of UPDATE messages, for the metrics (atomics: some senders hold only `&Engine`).
#[derive(Debug, Default)]
pub(crate) struct UpdateStats {
    pub received_add: AtomicU64,
    pub received_remove: AtomicU64,
    pub sent_add: AtomicU64,
    pub sent_remove: AtomicU64,
    /// Sessions closed because the peer sent something refused (undecodable frame, invalid UPDATE).
    pub protocol_faults: AtomicU64,
}

impl UpdateStats {
    fn sent(&self, action: Action, n: u64) {
        let counter = match action {
            Action::Add => &self.sent_add,
            Action::Remove => &self.sent_remove,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// All tables of one metalbond instance.
#[derive(Debug)]
pub(crate) struct Engine {
    /// Largest chunk of frames queued to a peer at once (the writer's batch limit).
    max_write: usize,
    next_peer: PeerId,
    pub peers: HashMap<PeerId, PeerEntry>,
    pub by_addr: HashMap<String, PeerId>,
    /// Routes received from peers, per providing peer.
    pub received: RouteTable<PeerId>,
    /// Our own announcements.
    pub announced: RouteTable<()>,
    pub subscriptions: BTreeSet<Vni>,
    subscribers: HashMap<Vni, HashSet<PeerId>>,
    listeners: Vec<UnboundedSender<RouteEvent>>,
    pub stats: UpdateStats,
}

impl Engine {
    /// Empty tables; replays are queued in chunks of at most `max_write` bytes (≥ one maximal frame).
    pub fn new(max_write: usize) -> Self {
        Self {
            max_write: max_write.max(MAX_FRAME),
            next_peer: 0,
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            received: RouteTable::new(),
            announced: RouteTable::new(),
            subscriptions: BTreeSet::new(),
            subscribers: HashMap::new(),
            listeners: Vec::new(),
            stats: UpdateStats::default(),
        }
    }

    /// Registers a peer and returns its id.
    pub fn add_peer(&mut self, entry: PeerEntry) -> PeerId {
        let id = self.next_peer;
        self.next_peer += 1;
        self.by_addr.insert(entry.addr.clone(), id);
        self.peers.insert(id, entry);
        id
    }

    /// Forgets a peer after cleaning up its routes and subscriptions.
    pub fn remove_peer(&mut self, id: PeerId) -> Option<PeerEntry> {
        self.peer_down(id, ConnectionState::Closed);
        let entry = self.peers.remove(&id)?;
        if self.by_addr.get(&entry.addr) == Some(&id) {
            self.by_addr.remove(&entry.addr);
        }
        Some(entry)
    }

    /// Adds a route event listener.
    pub fn add_listener(&mut self, tx: UnboundedSender<RouteEvent>) {
        self.listeners.push(tx);
    }

    fn emit(&mut self, event: RouteEvent) {
        if !self.listeners.is_empty() {
            self.listeners.retain(|l| l.send(event).is_ok());
        }
    }

    /// Records a state change of a peer's session.
    pub fn set_state(&mut self, id: PeerId, state: ConnectionState) {
        if let Some(p) = self.peers.get_mut(&id) {
            p.state = state;
        }
    }

    /// The peer's session became ESTABLISHED: replay our subscriptions (outgoing sessions only) and all our
    /// announcements, regardless of the peer's subscriptions (as upstream).
    pub fn established(&mut self, id: PeerId, is_server: bool) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.state = ConnectionState::Established;
        peer.is_server = is_server;
        let peer = &self.peers[&id];
        let mut batch = Batcher::new(peer, self.max_write);
        if peer.direction == Direction::Outgoing {
            for vni in &self.subscriptions {
                batch.push(&Message::Subscribe(*vni));
            }
        }
        let mut replayed = 0;
        for (route, _) in self.announced.routes() {
            batch.push(&Message::Update(Action::Add, route));
            replayed += 1;
        }
        self.stats.sent(Action::Add, replayed);
    }

    /// The peer's session left ESTABLISHED (or never reached it): it stops being a subscriber and every route
    /// learned from it is removed (and the removal redistributed) in every VNI.
    pub fn peer_down(&mut self, id: PeerId, state: ConnectionState) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.state = state;
        peer.tx = None;
        peer.conn_cancel = None;
        let vnis = std::mem::take(&mut peer.subscribed);
        let routes = std::mem::take(&mut peer.received);
        for vni in vnis {
            if let Some(subs) = self.subscribers.get_mut(&vni) {
                subs.remove(&id);
                if subs.is_empty() {
                    self.subscribers.remove(&vni);
                }
            }
        }
        for route in routes {
            self.remove_received(id, &route);
        }
    }

    /// Handles a SUBSCRIBE, UNSUBSCRIBE or UPDATE received from an established peer.
    pub fn deliver(&mut self, id: PeerId, msg: Message) {
        match msg {
            Message::Update(Action::Add, _) => self.stats.received_add.fetch_add(1, Ordering::Relaxed),
            Message::Update(Action::Remove, _) => self.stats.received_remove.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        match msg {
            Message::Subscribe(vni) => self.peer_subscribed(id, vni),
            Message::Unsubscribe(vni) => self.peer_unsubscribed(id, vni),
            Message::Update(Action::Add, route) => self.add_received(id, route),
            Message::Update(Action::Remove, route) => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.received.remove(&route);
                }
                self.remove_received(id, &route);
            }
            Message::Hello { .. } | Message::Keepalive => {}
        }
    }

    fn is_server(&self, id: PeerId) -> bool {
        self.peers.get(&id).is_some_and(|p| p.is_server)
    }

    /// Whether subscriber `sub` may see a route supplied by `providers`: some provider other than the subscriber
    /// itself (never reflect back to the origin, which also keeps NAT routes from their originator), and not
    /// server-to-server.
    fn visible_to(&self, sub: PeerId, providers: &[PeerId]) -> bool {
        let sub_is_server = self.is_server(sub);
        providers
            .iter()
            .any(|p| *p != sub && !(sub_is_server && self.is_server(*p)))
    }

    fn peer_subscribed(&mut self, id: PeerId, vni: Vni) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        // Upstream returns an error here and leaves its subscriber lock held (deadlock); a duplicate
        // subscription is simply idempotent.
        if !peer.subscribed.insert(vni) {
            tracing::debug!(peer = %peer.addr, vni = vni.get(), "duplicate SUBSCRIBE ignored");
            return;
        }
        self.subscribers.entry(vni).or_default().insert(id);
        let mut batch = Batcher::new(&self.peers[&id], self.max_write);
        let mut replayed = 0;
        for (route, providers) in self.received.routes_in(vni) {
            if self.visible_to(id, providers) {
                batch.push(&Message::Update(Action::Add, route));
                replayed += 1;
            }
        }
        self.stats.sent(Action::Add, replayed);
    }

    fn peer_unsubscribed(&mut self, id: PeerId, vni: Vni) {
        // Upstream also drops every route the peer announced in this VNI, although announcing and subscribing are
        // independent (the peer still considers them announced); only the subscription ends here.
        if let Some(peer) = self.peers.get_mut(&id) {
            peer.subscribed.remove(&vni);
        }
        if let Some(subs) = self.subscribers.get_mut(&vni) {
            subs.remove(&id);
            if subs.is_empty() {
                self.subscribers.remove(&vni);
            }
        }
    }

    fn add_received(&mut self, id: PeerId, route: Route) {
        let Some(peer) = self.peers.get(&id) else { return };
        if peer.direction == Direction::Outgoing && !self.subscriptions.contains(&route.vni) {
            // In flight when we unsubscribed; the VNI's routes were dropped already.
            return;
        }
        if route.next_hop.kind() == NextHopType::Standard
            && self
                .announced
                .has_destination_of_kind(route.vni, &route.destination, NextHopType::Standard)
        {
            // Loop prevention: we announce this destination ourselves (e.g. two routers announcing 0.0.0.0/0).
            // Only for standard routes: NAT and load-balancer-target routes of one destination come from several
            // hosts by design (a NAT IP shared by interfaces on several hosts, the targets of one load balancer),
            // and each host needs the others' to relay what is not its own. Upstream ignores those too, so a host
            // never learned its neighbours' NAT port ranges or remote load-balancer targets.
            return;
        }
        // The other providers matter only for redistribution; skip the copy when nobody subscribes.
        let has_subscribers = self.subscribers.contains_key(&route.vni);
        let before: Vec<PeerId> = if has_subscribers {
            self.received.providers(&route).to_vec()
        } else {
            Vec::new()
        };
        let providers_before = match self.received.add(&route, id) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(peer = %peer.addr, %route, error = %e, "duplicate UPDATE ADD ignored");
                return;
            }
        };
        if let Some(p) = self.peers.get_mut(&id) {
            p.received.insert(route);
        }
        if has_subscribers {
            self.redistribute(Action::Add, id, &route, &before);
        }
        if providers_before == 0 {
            self.emit(RouteEvent::Added(route));
        }
    }

    /// Removes `route` as provided by `id` (the caller updates the peer's own set).
    fn remove_received(&mut self, id: PeerId, route: &Route) {
        match self.received.remove(route, id) {
            Ok(remaining) => {
                if self.subscribers.contains_key(&route.vni) {
                    let after: Vec<PeerId> = self.received.providers(route).to_vec();
                    self.redistribute(Action::Remove, id, route, &after);
                }
                if remaining == 0 {
                    self.emit(RouteEvent::Removed(*route));
                }
            }
            Err(e) => tracing::debug!(%route, error = %e, "UPDATE REMOVE for an unknown route ignored"),
        }
    }

    /// Tells every subscriber of the route's VNI (except `origin`) about a change in what it can see: an ADD when
    /// the route becomes visible to it, a REMOVE when it stops being visible. `others` are the providers other
    /// than `origin` (before an ADD, after a REMOVE).
    fn redistribute(&self, action: Action, origin: PeerId, route: &Route, others: &[PeerId]) {
        let Some(subs) = self.subscribers.get(&route.vni) else {
            return;
        };
        let origin_is_server = self.is_server(origin);
        let mut encoded: Option<Bytes> = None;
        for sub in subs {
            if *sub == origin || (origin_is_server && self.is_server(*sub)) {
                continue;
            }
            // Already visible through another provider (ADD) or still visible (REMOVE): nothing changes for it.
            if self.visible_to(*sub, others) {
                continue;
            }
            let Some(peer) = self.peers.get(sub) else { continue };
            let bytes = encoded.get_or_insert_with(|| frame(&Message::Update(action, *route)));
            peer.send(bytes);
            self.stats.sent(action, 1);
        }
    }

    /// Sends `msg` to every established peer.
    fn broadcast(&self, msg: &Message) {
        let bytes = frame(msg);
        let mut sent = 0;
        for peer in self
            .peers
            .values()
            .filter(|p| p.state == ConnectionState::Established)
        {
            peer.send(&bytes);
            sent += 1;
        }
        if let Message::Update(action, _) = msg {
            self.stats.sent(*action, sent);
        }
    }

    /// Local SUBSCRIBE: stored and sent to every established peer; replayed to the others once they establish.
    pub fn subscribe(&mut self, vni: Vni) -> Result<(), EngineError> {
        if !self.subscriptions.insert(vni) {
            return Err(EngineError::AlreadySubscribed(vni));
        }
        let bytes = frame(&Message::Subscribe(vni));
        for peer in self.peers.values() {
            if peer.direction == Direction::Outgoing && peer.state == ConnectionState::Established {
                peer.send(&bytes);
            }
        }
        Ok(())
    }

    /// Local UNSUBSCRIBE: sent to every established peer, and the VNI's received routes are dropped (with
    /// [`RouteEvent::Removed`] events, so that listeners never keep stale routes).
    pub fn unsubscribe(&mut self, vni: Vni) -> Result<(), EngineError> {
        if !self.subscriptions.remove(&vni) {
            return Err(EngineError::NotSubscribed(vni));
        }
        let bytes = frame(&Message::Unsubscribe(vni));
        for peer in self.peers.values() {
            if peer.direction == Direction::Outgoing && peer.state == ConnectionState::Established {
                peer.send(&bytes);
            }
        }
        let stale: Vec<(Route, Vec<PeerId>)> = self
            .received
            .routes_in(vni)
            .map(|(r, providers)| (r, providers.to_vec()))
            .collect();
        for (route, providers) in stale {
            for id in providers {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.received.remove(&route);
                }
                self.remove_received(id, &route);
            }
        }
        Ok(())
    }

    /// Local announcement: stored and sent as UPDATE ADD to every established peer (subscription not required).
    pub fn announce(&mut self, route: Route) -> Result<(), EngineError> {
        self.announced.add(&route, ())?;
        if route.next_hop.kind() == NextHopType::Standard {
            self.drop_received_to_own_destination(&route);
        }
        self.broadcast(&Message::Update(Action::Add, route));
        Ok(())
    }

    /// Loop prevention for standard routes received *before* we announced their destination ourselves: they
    /// are dropped (reported as [`RouteEvent::Removed`], withdrawn from our subscribers), so what is installed
    /// does not depend on whether a peer's route or our own announcement came first. Routes arriving after
    /// the announcement are never stored (see `add_received`).
    fn drop_received_to_own_destination(&mut self, own: &Route) {
        let shadowed: Vec<(Route, Vec<PeerId>)> = self
            .received
            .routes_in(own.vni)
            .filter(|(r, _)| r.destination == own.destination && r.next_hop.kind() == NextHopType::Standard)
            .map(|(r, providers)| (r, providers.to_vec()))
            .collect();
        for (route, providers) in shadowed {
            for id in providers {
                if let Some(peer) = self.peers.get_mut(&id) {
                    peer.received.remove(&route);
                }
                self.remove_received(id, &route);
            }
        }
    }

    /// Local withdrawal: removed and sent as UPDATE REMOVE to every established peer.
    pub fn withdraw(&mut self, route: Route) -> Result<(), EngineError> {
        self.announced.remove(&route, ())?;
        self.broadcast(&Message::Update(Action::Remove, route));
        Ok(())
    }
}
