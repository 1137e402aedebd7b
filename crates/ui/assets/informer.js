// One kind's cache in the browser: LIST, then WATCH from the list's resourceVersion, resuming
// from the last event's resourceVersion whenever the stream ends, and listing again only when
// the server answers 410 Gone (the version was compacted away), as client-go's reflector does.

import { ApiError, getJSON, watch } from './api.js';

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });

const key = (obj) => `${obj.metadata.namespace || ''}/${obj.metadata.name}`;

export class Informer {
  /**
   * `path` is the collection URL (`/apis/GROUP/VERSION[/namespaces/NS]/PLURAL`); `onChange()`
   * is called after every change of `items`; `onStatus(error|null)` when the informer fails
   * (`error` an ApiError or a network error) or works again.
   */
  constructor(name, path, onChange, onStatus) {
    this.name = name;
    this.path = path;
    this.onChange = onChange;
    this.onStatus = onStatus;
    /** The objects by "namespace/name". */
    this.items = new Map();
    this.resourceVersion = '';
    /** Whether the first list arrived. */
    this.synced = false;
    this.error = null;
  }

  /** Runs until `signal` aborts. */
  async run(signal) {
    let backoff = 250;
    while (!signal.aborted) {
      try {
        if (!this.resourceVersion) await this.list(signal);
        await watch(this.path, this.resourceVersion, (event) => this.apply(event), signal);
        backoff = 250;
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof ApiError && err.status === 410) {
          this.resourceVersion = '';
          continue;
        }
        this.fail(err);
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, 8000);
      }
    }
  }

  async list(signal) {
    const list = await getJSON(this.path, signal);
    this.items = new Map((list.items || []).map((obj) => [key(obj), obj]));
    this.resourceVersion = list.metadata.resourceVersion;
    this.synced = true;
    this.ok();
    this.onChange();
  }

  apply(event) {
    const obj = event.object;
    this.resourceVersion = obj.metadata.resourceVersion || this.resourceVersion;
    this.ok();
    if (event.type === 'ADDED' || event.type === 'MODIFIED') this.items.set(key(obj), obj);
    else if (event.type === 'DELETED') this.items.delete(key(obj));
    else return; // BOOKMARK: only the resourceVersion moves
    this.onChange();
  }

  ok() {
    if (this.error) {
      this.error = null;
      this.onStatus(null);
    }
  }

  fail(err) {
    this.error = err;
    this.onStatus(err);
  }
}
