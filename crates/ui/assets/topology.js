// The topology the page draws, computed from the informers' caches (no DOM here).

const nsName = (obj) => `${obj.metadata.namespace || ''}/${obj.metadata.name}`;
const byName = (a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/**
 * The segment `index` of an `ironcore-net://…` provider ID: a Network's is
 * `ironcore-net://<ns>/<name>/<vni>/<uid>` (index 2 = VNI), a NetworkInterface's
 * `ironcore-net://<ns>/<name>/<node>/<uid>` (index 2 = node).
 */
export function providerSegment(providerID, index) {
  const prefix = 'ironcore-net://';
  if (!providerID || !providerID.startsWith(prefix)) return '';
  return providerID.slice(prefix.length).split('/')[index] || '';
}

function interfaceView(nic) {
  const spec = nic.spec || {};
  const status = nic.status || {};
  const ips = (status.ips && status.ips.length ? status.ips : (spec.ips || []).map((s) => s.value).filter(Boolean));
  return {
    key: nsName(nic),
    name: nic.metadata.name,
    node: providerSegment(spec.providerID, 2),
    ips,
    publicIP: status.virtualIP || '',
    state: status.state || 'Pending',
    labels: nic.metadata.labels || {},
  };
}

function natView(nat, tables) {
  const spec = nat.spec || {};
  // The ironcore-net NATTable is named by the tenant NATGateway's UID.
  const table = tables.get(`apinet-system/${nat.metadata.uid}`) || [...tables.values()].find((t) => t.metadata.name === nat.metadata.uid);
  const sections = [];
  for (const ip of (table && table.ips) || []) {
    for (const s of ip.sections || []) {
      sections.push({ natIP: ip.ip || '', ip: s.ip || '', port: s.port, endPort: s.endPort, target: (s.targetRef && s.targetRef.name) || '' });
    }
  }
  return {
    key: nsName(nat),
    name: nat.metadata.name,
    ips: ((nat.status || {}).ips || []).map((ip) => (typeof ip === 'string' ? ip : ip.ip)),
    portsPerNetworkInterface: spec.portsPerNetworkInterface || '',
    sections,
  };
}

function loadBalancerView(lb, routings) {
  const spec = lb.spec || {};
  const routing = routings.get(nsName(lb));
  const targets = ((routing && routing.destinations) || []).map((d) => ({
    name: (d.targetRef && d.targetRef.name) || d.name || '',
    ip: d.ip || '',
  }));
  return {
    key: nsName(lb),
    name: lb.metadata.name,
    type: spec.type || '',
    ips: (lb.status || {}).ips || [],
    ports: (spec.ports || []).map((p) => `${p.protocol || 'TCP'}/${p.port}${p.endPort ? `-${p.endPort}` : ''}`),
    targets,
  };
}

/**
 * The topology from the caches (Maps of "namespace/name" → object): one entry per Network with
 * its peerings (each with the peer's key and state), the NetworkInterfaces, NATGateways and
 * LoadBalancers that refer to it, sorted by key. Objects that refer to a Network that does not
 * exist get an entry for it with state "missing", so nothing listed is hidden.
 */
export function buildTopology({ networks, interfaces, natgateways, loadbalancers, routings, nattables }) {
  const entries = new Map();
  const entry = (key, net) => {
    if (!entries.has(key)) {
      const [namespace, name] = key.split('/');
      entries.set(key, { key, namespace, name, state: 'missing', vni: '', peerings: [], incoming: [], interfaces: [], natgateways: [], loadbalancers: [] });
    }
    const e = entries.get(key);
    if (net) {
      const spec = net.spec || {};
      const status = net.status || {};
      const states = new Map((status.peerings || []).map((p) => [p.name, p.state]));
      e.state = status.state || 'Pending';
      e.vni = providerSegment(spec.providerID, 2);
      e.peerings = (spec.peerings || []).map((p) => {
        const peerKey = `${p.networkRef.namespace || e.namespace}/${p.networkRef.name}`;
        return { name: p.name, peer: peerKey, state: states.get(p.name) || 'Pending' };
      });
      e.incoming = (spec.incomingPeerings || []).map((c) => `${c.namespace || e.namespace}/${c.name}`);
    }
    return e;
  };
  for (const net of networks.values()) entry(nsName(net), net);
  const ref = (obj) => `${obj.metadata.namespace || ''}/${((obj.spec || {}).networkRef || {}).name || ''}`;
  for (const nic of interfaces.values()) entry(ref(nic)).interfaces.push(interfaceView(nic));
  for (const nat of natgateways.values()) entry(ref(nat)).natgateways.push(natView(nat, nattables));
  for (const lb of loadbalancers.values()) entry(ref(lb)).loadbalancers.push(loadBalancerView(lb, routings));
  const list = [...entries.values()].sort(byName);
  for (const e of list) {
    e.interfaces.sort(byName);
    e.natgateways.sort(byName);
    e.loadbalancers.sort(byName);
  }
  return list;
}

/**
 * The peering edges between Networks, one per pair: `ready` when both sides ask for the
 * peering and report it Ready, else pending (one-sided or not yet Ready), with who asks.
 */
export function peeringEdges(topology) {
  const edges = new Map();
  for (const net of topology) {
    for (const p of net.peerings) {
      const [a, b] = [net.key, p.peer].sort();
      const edge = edges.get(`${a}|${b}`) || { a, b, sides: new Map() };
      edge.sides.set(net.key, p.state);
      edges.set(`${a}|${b}`, edge);
    }
  }
  return [...edges.values()].map(({ a, b, sides }) => ({
    a,
    b,
    state: sides.size === 2 && [...sides.values()].every((s) => s === 'Ready') ? 'Ready' : 'Pending',
    askedBy: [...sides.keys()].sort(),
  }));
}
