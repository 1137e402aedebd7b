// The topology page: five informers (Networks, NetworkInterfaces, NATGateways, LoadBalancers,
// LoadBalancerRoutings) keep the picture current by watch; /metrics and the NATTables are polled.
// Five streams plus one polling request is what a browser allows at once on one HTTP/1.1 origin
// (six connections), which is what kubectl proxy offers; over HTTPS the server speaks HTTP/2.

import { getJSON, getText, setToken, token } from './api.js';
import { Informer } from './informer.js';
import { parseExposition, summarize } from './metrics.js';
import { buildTopology, peeringEdges } from './topology.js';
import { renderCounters, renderGraph, renderNetworks } from './view.js';

const POLL_MS = 2000;
const TENANT = '/apis/networking.ironcore.dev/v1alpha1';
const NAT_TABLES = '/apis/core.apinet.ironcore.dev/v1alpha1/nattables';

const params = new URLSearchParams(location.search);
const namespace = params.get('namespace') || '';
const collection = (plural) => (namespace ? `${TENANT}/namespaces/${encodeURIComponent(namespace)}/${plural}` : `${TENANT}/${plural}`);

const $ = (id) => document.getElementById(id);

let session = null;
let sessions = 0;

function start() {
  if (session) session.abort.abort();
  const abort = new AbortController();
  sessions += 1;
  const s = { number: sessions, abort, informers: {}, nattables: new Map(), natTablesError: null, metrics: null, metricsError: null, previous: null, scheduled: false };
  session = s;
  const changed = () => schedule(s);
  for (const [name, plural] of [
    ['networks', 'networks'],
    ['interfaces', 'networkinterfaces'],
    ['natgateways', 'natgateways'],
    ['loadbalancers', 'loadbalancers'],
    ['routings', 'loadbalancerroutings'],
  ]) {
    const informer = new Informer(name, collection(plural), changed, changed);
    s.informers[name] = informer;
    informer.run(abort.signal);
  }
  poll(s);
  $('sign-out').hidden = !token();
  $('scope').textContent = namespace ? `namespace ${namespace}` : 'all namespaces';
  schedule(s);
}

async function poll(s) {
  const signal = s.abort.signal;
  while (!signal.aborted) {
    try {
      const started = performance.now();
      const samples = parseExposition(await getText('/metrics', signal));
      const now = performance.now();
      s.metrics = summarize(samples, s.previous, s.previous ? (now - s.previous.at) / 1000 : 0);
      s.previous = { requests: s.metrics.requests, at: started };
      s.metricsError = null;
    } catch (err) {
      if (signal.aborted) return;
      s.metricsError = err;
    }
    // The NAT port sections live in ironcore-net, which a tenant may not read: then they are
    // left out and the page says why.
    if (!s.natTablesError || s.natTablesError.status !== 403) {
      try {
        const list = await getJSON(NAT_TABLES, signal);
        s.nattables = new Map((list.items || []).map((t) => [`${t.metadata.namespace}/${t.metadata.name}`, t]));
        s.natTablesError = null;
      } catch (err) {
        if (signal.aborted) return;
        s.natTablesError = err;
      }
    }
    schedule(s);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

function schedule(s) {
  if (s.scheduled || s !== session) return;
  s.scheduled = true;
  setTimeout(() => {
    s.scheduled = false;
    if (s === session) render(s);
  }, 16);
}

function render(s) {
  const inf = s.informers;
  const errors = Object.values(inf).filter((i) => i.error).map((i) => [i.name, i.error]);
  const unauthorized = [...errors.map(([, e]) => e), s.metricsError].find((e) => e && e.status === 401);
  $('login').hidden = !unauthorized;
  if (unauthorized) $('login-reason').textContent = `The API server answered ${unauthorized.status}: ${unauthorized.message}`;
  const connection = $('connection');
  const synced = Object.values(inf).every((i) => i.synced);
  if (errors.length) {
    connection.dataset.state = 'error';
    const [name, err] = errors[0];
    // A user whose rights are namespaced cannot list across namespaces; say how to ask for one.
    const hint = err.status === 403 && !namespace ? ' (for one namespace, open /ui/?namespace=NAME)' : '';
    connection.textContent = `${name}: ${err.message}${hint}`;
  } else {
    connection.dataset.state = synced ? 'live' : 'connecting';
    connection.textContent = synced ? 'live' : 'connecting…';
  }
  const topology = buildTopology({
    networks: inf.networks.items,
    interfaces: inf.interfaces.items,
    natgateways: inf.natgateways.items,
    loadbalancers: inf.loadbalancers.items,
    routings: inf.routings.items,
    nattables: s.nattables,
  });
  renderNetworks($('networks'), topology);
  renderGraph($('graph'), topology, peeringEdges(topology));
  if (s.metrics || s.metricsError) renderCounters($('counters'), s.metrics, s.metricsError);
  const problems = [];
  if (s.natTablesError) problems.push(`NAT port sections not shown: ${s.natTablesError.message}`);
  $('problems').textContent = problems.join(' · ');
  document.body.dataset.synced = String(synced);
  // Which sign-in this picture belongs to (a new token starts a new session).
  document.body.dataset.session = String(s.number);
}

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  setToken($('token').value.trim());
  $('token').value = '';
  start();
});
$('sign-out').addEventListener('click', () => {
  setToken('');
  start();
});

start();
