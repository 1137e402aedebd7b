// Prometheus text exposition (format 0.0.4) parsing and the counters the page shows.

/** The samples of an exposition: [{ name, labels: {k: v}, value }], comments skipped. */
export function parseExposition(text) {
  const samples = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    let name;
    let labels = {};
    let rest;
    if (brace >= 0 && brace < line.search(/\s/)) {
      name = line.slice(0, brace);
      const close = closingBrace(line, brace);
      labels = parseLabels(line.slice(brace + 1, close));
      rest = line.slice(close + 1).trim();
    } else {
      const space = line.search(/\s/);
      name = line.slice(0, space);
      rest = line.slice(space + 1).trim();
    }
    const value = Number(rest.split(/\s+/)[0]);
    if (name && !Number.isNaN(value)) samples.push({ name, labels, value });
  }
  return samples;
}

function closingBrace(line, open) {
  let quoted = false;
  for (let i = open + 1; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (c === '}' && !quoted) return i;
  }
  return line.length;
}

function parseLabels(body) {
  const labels = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  let m;
  while ((m = re.exec(body))) {
    labels[m[1]] = m[2].replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
  }
  return labels;
}

const sum = (samples, name, filter = () => true) =>
  samples.filter((s) => s.name === name && filter(s.labels)).reduce((acc, s) => acc + s.value, 0);

/**
 * The counters the page shows, from one scrape and the one before it (for rates):
 * requests by status class, requests per tenant resource, open watches, requests in flight,
 * stored tenant objects per kind, allocation pool use and every other `ironnet_*` sample as it is.
 */
export function summarize(samples, previous, seconds) {
  const requests = sum(samples, 'apiserver_request_total');
  const rate = previous && seconds > 0 ? Math.max(0, (requests - previous.requests) / seconds) : null;
  const byClass = {};
  for (const s of samples.filter((s) => s.name === 'apiserver_request_total')) {
    const cls = `${(s.labels.code || '?')[0]}xx`;
    byClass[cls] = (byClass[cls] || 0) + s.value;
  }
  const byResource = {};
  for (const s of samples.filter((s) => s.name === 'apiserver_request_total' && s.labels.group === 'networking.ironcore.dev')) {
    byResource[s.labels.resource] = (byResource[s.labels.resource] || 0) + s.value;
  }
  // Stored objects of the tenant kinds (kube-apiserver labels them "<plural>.<group>").
  const stored = {};
  for (const s of samples.filter((s) => s.name === 'apiserver_storage_objects')) {
    const [plural, ...group] = (s.labels.resource || '').split('.');
    if (group.join('.') === 'networking.ironcore.dev') stored[plural] = s.value;
  }
  // Allocation pools (VNIs, public prefixes): in use of size, by pool.
  const pools = {};
  const poolPart = { ironnet_allocation_pool_in_use: 'inUse', ironnet_allocation_pool_size: 'size', ironnet_allocation_pool_free: 'free' };
  for (const s of samples.filter((s) => poolPart[s.name] && s.labels.pool)) {
    pools[s.labels.pool] = { ...(pools[s.labels.pool] || {}), [poolPart[s.name]]: s.value };
  }
  return {
    requests,
    rate,
    byClass,
    byResource,
    watches: sum(samples, 'apiserver_longrunning_requests'),
    inflight: sum(samples, 'apiserver_current_inflight_requests'),
    stored,
    pools,
    ironnet: samples.filter((s) => s.name.startsWith('ironnet_') && !poolPart[s.name]),
  };
}
