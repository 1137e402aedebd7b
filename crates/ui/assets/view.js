// DOM rendering. Every text goes through textContent (never innerHTML), so object names and
// labels are shown, not interpreted. Elements carry data-* attributes naming what they show,
// which is what tests and scripts read.

const SVG = 'http://www.w3.org/2000/svg';

/** An element with attributes (`data` keys become data-*) and children (strings become text). */
export function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith('svg:') ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'data') for (const [dk, dv] of Object.entries(v)) node.dataset[dk] = dv;
    else if (k === 'text') node.textContent = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const badge = (state) => el('span', { class: `state state-${String(state).toLowerCase()}`, text: state });

function peeringList(net) {
  const items = net.peerings.map((p) =>
    el('li', { data: { peering: `${net.key}/${p.name}`, peer: p.peer, state: p.state } },
      el('span', { class: 'peering-name', text: p.name }), ' → ',
      el('span', { class: 'peer', text: p.peer }), ' ', badge(p.state)));
  for (const from of net.incoming) {
    items.push(el('li', { class: 'incoming', data: { incomingPeering: from } }, '← ', el('span', { class: 'peer', text: from }), ' (incoming)'));
  }
  if (!items.length) return el('p', { class: 'muted', text: 'no peerings' });
  return el('ul', { class: 'peerings' }, items);
}

function interfaceTable(net) {
  if (!net.interfaces.length) return el('p', { class: 'muted', text: 'no network interfaces' });
  return el('table', { class: 'interfaces' },
    el('thead', {}, el('tr', {}, ['interface', 'node', 'IPs', 'public IP', 'state'].map((h) => el('th', { text: h })))),
    el('tbody', {}, net.interfaces.map((nic) =>
      el('tr', { data: { interface: nic.key, node: nic.node, state: nic.state } },
        el('td', { class: 'name', text: nic.name }),
        el('td', { class: 'node', text: nic.node || '—' }),
        el('td', { class: 'ips', text: nic.ips.join(', ') || '—' }),
        el('td', { class: 'public-ip', text: nic.publicIP || '—' }),
        el('td', {}, badge(nic.state))))));
}

function natList(net) {
  return net.natgateways.map((nat) =>
    el('div', { class: 'nat', data: { natgateway: nat.key } },
      el('h4', {}, 'NAT gateway ', el('span', { class: 'name', text: nat.name })),
      el('p', {}, 'IPs ', el('span', { class: 'nat-ips', text: nat.ips.join(', ') || 'pending' }),
        `, ${nat.portsPerNetworkInterface} ports per interface`),
      nat.sections.length
        ? el('ul', { class: 'sections' }, nat.sections.map((s) =>
            el('li', { data: { natTarget: s.target } }, `${s.target || s.ip} (${s.ip}) → ${s.natIP}:${s.port}–${s.endPort}`)))
        : null));
}

function loadBalancerList(net) {
  return net.loadbalancers.map((lb) =>
    el('div', { class: 'lb', data: { loadbalancer: lb.key } },
      el('h4', {}, `${lb.type} load balancer `, el('span', { class: 'name', text: lb.name })),
      el('p', {}, 'IPs ', el('span', { class: 'lb-ips', text: lb.ips.join(', ') || 'pending' }), `, ports ${lb.ports.join(', ')}`),
      lb.targets.length
        ? el('ul', { class: 'targets' }, lb.targets.map((t) => el('li', { data: { target: t.name } }, `${t.name} (${t.ip})`)))
        : el('p', { class: 'muted', text: 'no targets' })));
}

/** The network cards. */
export function renderNetworks(root, topology) {
  const cards = topology.map((net) =>
    el('article', { class: 'network', data: { network: net.key, state: net.state } },
      el('h3', {}, el('span', { class: 'name', text: net.name }), ' ', el('span', { class: 'namespace', text: net.namespace }), ' ', badge(net.state),
        net.vni ? el('span', { class: 'vni', text: `VNI ${net.vni}` }) : null),
      peeringList(net),
      interfaceTable(net),
      natList(net),
      loadBalancerList(net)));
  root.replaceChildren(...(cards.length ? cards : [el('p', { class: 'muted', text: 'no networks yet' })]));
}

/** The peering graph: Networks on a circle, one line per peered pair (solid when Ready). */
export function renderGraph(root, topology, edges) {
  const size = 320;
  const r = topology.length > 1 ? size / 2 - 48 : 0;
  const pos = new Map(topology.map((net, i) => {
    const angle = (2 * Math.PI * i) / Math.max(topology.length, 1) - Math.PI / 2;
    return [net.key, { x: size / 2 + r * Math.cos(angle), y: size / 2 + r * Math.sin(angle) }];
  }));
  const svg = el('svg:svg', { viewBox: `0 0 ${size} ${size}`, width: size, height: size, role: 'img', 'aria-label': 'networks and peerings' });
  for (const e of edges) {
    const a = pos.get(e.a);
    const b = pos.get(e.b);
    if (!a || !b) continue;
    svg.append(el('svg:line', { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: `edge edge-${e.state.toLowerCase()}`, data: { edge: `${e.a}|${e.b}`, state: e.state } },
      el('svg:title', { text: `${e.a} ↔ ${e.b}: ${e.state} (asked by ${e.askedBy.join(', ')})` })));
  }
  for (const net of topology) {
    const p = pos.get(net.key);
    svg.append(el('svg:g', { class: `node node-${net.state.toLowerCase()}`, data: { graphNetwork: net.key } },
      el('svg:circle', { cx: p.x, cy: p.y, r: 9 + Math.min(net.interfaces.length, 8) * 2 }),
      el('svg:text', { x: p.x, y: p.y + 30, 'text-anchor': 'middle', text: net.name })));
  }
  root.replaceChildren(svg);
}

const fmt = (n) => (Math.abs(n) >= 1e9 ? n.toExponential(2) : Number.isInteger(n) ? String(n) : n.toFixed(1));

/** The counters panel from `summarize()`'s result, or the reason there is none. */
export function renderCounters(root, summary, error) {
  if (error) {
    root.replaceChildren(el('p', { class: 'muted', data: { metricsError: error.status || 'network' } },
      `/metrics: ${error.message}${error.status === 403 ? ' (needs get on the non-resource URL /metrics)' : ''}`));
    return;
  }
  const row = (name, value, key) => el('tr', { data: { counter: key } }, el('th', { text: name }), el('td', { class: 'value', text: value }));
  const rows = [
    row('API requests', fmt(summary.requests), 'requests'),
    row('requests / s', summary.rate === null ? '…' : fmt(summary.rate), 'rate'),
    ...Object.keys(summary.byClass).sort().map((c) => row(`  ${c}`, fmt(summary.byClass[c]), `code-${c}`)),
    row('open watches', fmt(summary.watches), 'watches'),
    row('in flight', fmt(summary.inflight), 'inflight'),
    ...Object.keys(summary.byResource).sort().map((r) => row(`${r} requests`, fmt(summary.byResource[r]), `resource-${r}`)),
    ...Object.keys(summary.stored).sort().map((r) => row(`${r} stored`, fmt(summary.stored[r]), `stored-${r}`)),
    ...Object.keys(summary.pools).sort().map((p) => {
      const { inUse = 0, size } = summary.pools[p];
      return row(`pool ${p} in use`, size ? `${fmt(inUse)} of ${fmt(size)}` : fmt(inUse), `pool-${p}`);
    }),
    ...summary.ironnet.map((s) => {
      const labels = Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(',');
      return row(labels ? `${s.name}{${labels}}` : s.name, fmt(s.value), s.name);
    }),
  ];
  root.replaceChildren(el('table', { class: 'counters' }, el('tbody', {}, rows)));
}
