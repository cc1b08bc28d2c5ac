// The orderflow console: plain ES module, no framework, no build step.
// Everything it shows comes from the node's own API with the bearer token the
// user pasted; text is always set through textContent, never parsed as HTML.

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = 'orderflow.token';
const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);
const HEALTH_EVERY_MS = 5000;
const SSE_MAX_RECONNECTS = 20;

let token = null;
let claims = null;
let healthTimer = null;
let ordersCursor = null;
let checkoutKey = null;
let shownDeadLetter = null;

/** A problem+json answer (RFC 9457) or a network failure, as an error. */
class ProblemError extends Error {
  constructor(status, problem) {
    super(problem && problem.detail ? problem.detail : `HTTP ${status}`);
    this.status = status;
    this.problem = problem && typeof problem === 'object' ? problem : { title: `HTTP ${status}`, detail: String(problem || '') };
  }
}

/** Builds an element; string children become text nodes. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function authHeaders(extra = {}) {
  return { Authorization: `Bearer ${token}`, ...extra };
}

/** Calls the API; resolves with its JSON, rejects with a ProblemError. */
async function api(path, { method = 'GET', body, headers = {} } = {}) {
  const init = { method, headers: authHeaders(headers) };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ProblemError(0, { title: 'Network error', detail: e.message });
  }
  const type = res.headers.get('content-type') || '';
  const data = type.includes('json') ? await res.json() : await res.text();
  if (!res.ok) throw new ProblemError(res.status, data);
  return data;
}

/** Shows a problem: its title, detail and each field error. */
function showProblem(error) {
  const box = $('problem');
  const p = error instanceof ProblemError ? error.problem : { title: 'Error', detail: String(error) };
  box.replaceChildren(el('strong', {}, p.title || 'Error'), ' ', el('span', {}, p.detail || ''));
  if (Array.isArray(p.errors) && p.errors.length) {
    box.append(el('ul', {}, ...p.errors.map((e) => el('li', {}, el('code', {}, e.field), ': ', e.message))));
  }
  box.hidden = false;
}

function clearProblem() {
  $('problem').hidden = true;
  $('problem').replaceChildren();
}

/** Runs `fn`, showing any failure as a problem. */
function guarded(fn) {
  return async (event) => {
    if (event && event.preventDefault) event.preventDefault();
    clearProblem();
    try {
      await fn(event);
    } catch (e) {
      showProblem(e);
    }
  };
}

/** The JWT's payload, decoded here only to show who is signed in; the server checks the signature. */
function decodeClaims(raw) {
  const part = raw.split('.')[1];
  if (!part) throw new ProblemError(0, { title: 'Not a token', detail: 'a JWT has three dot-separated parts' });
  const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
  try {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new ProblemError(0, { title: 'Not a token', detail: 'the JWT payload is not base64url JSON' });
  }
}

const isAdmin = () => claims && claims.role === 'admin';

function money(m) {
  return m ? `${(m.minor / 100).toFixed(2)} ${m.currency}` : '';
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : '';
}

// ---- sign-in ----

async function signIn(raw) {
  const decoded = decodeClaims(raw);
  token = raw;
  claims = decoded;
  sessionStorage.setItem(TOKEN_KEY, raw);
  $('identity').textContent = `${claims.sub} (${claims.role})`;
  for (const node of document.querySelectorAll('.admin-only')) node.hidden = !isAdmin();
  for (const id of ['checkout-customer', 'orders-customer', 'notifications-customer']) {
    $(id).value = isAdmin() ? (id === 'checkout-customer' ? 'alice' : '') : claims.sub;
    $(id).readOnly = !isAdmin();
  }
  $('sign-in').hidden = true;
  $('tabs').hidden = false;
  $('whoami').hidden = false;
  $('dead-letters').hidden = true;
  startHealth();
  await showPanel('catalog');
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  claims = null;
  clearInterval(healthTimer);
  for (const panel of document.querySelectorAll('.panel')) panel.hidden = true;
  $('tabs').hidden = true;
  $('whoami').hidden = true;
  $('sign-in').hidden = false;
  $('token').value = '';
  $('token').focus();
}

// ---- panels ----

const loaders = {
  catalog: loadCatalog,
  checkout: loadCheckout,
  orders: () => loadOrders(false),
  notifications: loadNotifications,
  'dead-letters': loadDeadLetters,
};

async function showPanel(name) {
  for (const button of document.querySelectorAll('#tabs button')) {
    button.setAttribute('aria-current', button.dataset.panel === name ? 'page' : 'false');
  }
  for (const panel of document.querySelectorAll('.panel')) panel.hidden = panel.id !== name;
  clearProblem();
  try {
    await loaders[name]();
  } catch (e) {
    showProblem(e);
  }
}

// ---- catalog ----

let catalog = [];

async function loadCatalog() {
  const list = await api('/api/v1/skus');
  catalog = list.skus;
  $('catalog-rows').replaceChildren(
    ...catalog.map((s) => el('tr', {}, el('th', { scope: 'row' }, s.sku), el('td', {}, s.available), el('td', {}, s.reserved), el('td', {}, s.restocked))),
  );
  if (!catalog.length) $('catalog-rows').append(el('tr', {}, el('td', { colspan: '4' }, 'No SKUs yet: an admin restocks one to start.')));
}

async function restock() {
  const sku = $('restock-sku').value.trim();
  await api(`/api/v1/skus/${encodeURIComponent(sku)}/restock`, {
    method: 'POST',
    body: { quantity: Number($('restock-quantity').value) },
    headers: { 'Idempotency-Key': crypto.randomUUID() },
  });
  await loadCatalog();
}

// ---- checkout ----

let lineCount = 0;

function addLine(sku = '') {
  lineCount += 1;
  const n = lineCount;
  const options = el('datalist', { id: `skus-${n}` }, ...catalog.map((s) => el('option', { value: s.sku })));
  const row = el(
    'div',
    { class: 'line' },
    el('div', { class: 'field' }, el('label', { for: `line-sku-${n}` }, `SKU (item ${n})`), el('input', { id: `line-sku-${n}`, class: 'line-sku', list: `skus-${n}`, required: '', value: sku }), options),
    el('div', { class: 'field' }, el('label', { for: `line-qty-${n}` }, 'Quantity'), el('input', { id: `line-qty-${n}`, class: 'line-qty', type: 'number', min: '1', required: '', value: '1' })),
    el('div', { class: 'field' }, el('label', { for: `line-price-${n}` }, 'Unit price (cents)'), el('input', { id: `line-price-${n}`, class: 'line-price', type: 'number', min: '0', required: '', value: '1250' })),
  );
  const remove = el('button', { type: 'button', 'aria-label': `Remove item ${n}` }, 'Remove');
  remove.addEventListener('click', () => row.remove());
  row.append(remove);
  $('lines').append(row);
}

async function loadCheckout() {
  if (!catalog.length) await loadCatalog();
  if (!$('lines').children.length) addLine(catalog.length ? catalog[0].sku : '');
}

async function placeOrder() {
  const items = [...document.querySelectorAll('#lines .line')].map((row) => ({
    sku: row.querySelector('.line-sku').value.trim(),
    quantity: Number(row.querySelector('.line-qty').value),
    unit_price: Number(row.querySelector('.line-price').value),
  }));
  // One key per checkout: a retried click after a lost answer places the order once.
  checkoutKey = checkoutKey || crypto.randomUUID();
  const order = await api('/api/v1/orders', {
    method: 'POST',
    body: { customer_id: $('checkout-customer').value.trim(), items, payment_method: $('payment').value },
    headers: { 'Idempotency-Key': checkoutKey },
  });
  checkoutKey = null;
  $('watch').hidden = false;
  $('watch-id').textContent = order.order_id;
  $('watch-steps').replaceChildren();
  $('watch-outcome').textContent = `Watching: ${order.status}`;
  $('watch-outcome').className = '';
  await watchOrder(order.order_id, (change) => {
    $('watch-steps').append(el('li', { 'data-status': change.status }, el('strong', {}, change.status), ` — ${change.cause} at ${when(change.at)}`));
    $('watch-outcome').textContent = `Now: ${change.status}`;
  });
  const final = await api(`/api/v1/orders/${order.order_id}`);
  $('watch-outcome').textContent = final.reason ? `${final.status}: ${final.reason}` : final.status;
  $('watch-outcome').className = final.status === 'COMPLETED' ? 'ok' : 'bad';
  $('watch-outcome').dataset.status = final.status;
}

/** Parses one SSE frame (the lines between blank lines). */
function parseFrame(frame) {
  const out = { event: 'message', data: [], id: null };
  for (const line of frame.split('\n')) {
    if (!line || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') out.event = value;
    else if (field === 'data') out.data.push(value);
    else if (field === 'id') out.id = value;
  }
  return { ...out, data: out.data.join('\n') };
}

/**
 * Follows `GET /orders/{id}/events` until a terminal status. EventSource cannot
 * send a bearer token, so this reads the stream with fetch and parses the frames;
 * a dropped connection is resumed with Last-Event-ID, and changes already seen
 * (by sequence) are skipped.
 */
async function watchOrder(id, onChange) {
  let lastSeq = 0;
  for (let attempt = 0; attempt <= SSE_MAX_RECONNECTS; attempt += 1) {
    const headers = authHeaders({ Accept: 'text/event-stream' });
    if (lastSeq) headers['Last-Event-ID'] = String(lastSeq);
    let res;
    try {
      res = await fetch(`/api/v1/orders/${id}/events`, { headers });
    } catch {
      await pause(Math.min(250 * 2 ** attempt, 5000));
      continue;
    }
    if (!res.ok) throw new ProblemError(res.status, await res.json().catch(() => null));
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, '\n');
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = parseFrame(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (frame.event === 'error') throw new ProblemError(503, JSON.parse(frame.data || 'null'));
          if (frame.event !== 'status') continue;
          const change = JSON.parse(frame.data);
          if (change.seq <= lastSeq) continue;
          lastSeq = change.seq;
          onChange(change);
          if (change.terminal) return;
        }
      }
    } catch (e) {
      if (e instanceof ProblemError) throw e;
    }
    await pause(Math.min(250 * 2 ** attempt, 5000));
  }
  throw new ProblemError(0, { title: 'Lost the order stream', detail: `no terminal status after ${SSE_MAX_RECONNECTS} reconnects` });
}

// Only the reconnect back-off waits on a timer.
const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- orders ----

function isoOf(local) {
  return local ? new Date(local).toISOString() : '';
}

async function loadOrders(next) {
  const params = new URLSearchParams();
  const status = $('orders-status').value;
  const customer = $('orders-customer').value.trim();
  if (status) params.set('status', status);
  if (customer) params.set('customer_id', customer);
  if ($('orders-from').value) params.set('created_from', isoOf($('orders-from').value));
  if ($('orders-to').value) params.set('created_to', isoOf($('orders-to').value));
  if (next && ordersCursor) params.set('cursor', ordersCursor);
  params.set('limit', '20');
  const page = await api(`/api/v1/orders?${params}`);
  ordersCursor = page.next_cursor || null;
  $('orders-next').hidden = !ordersCursor;
  $('orders-lag').textContent = page.projection.lag ? `The index is ${page.projection.lag} events behind.` : '';
  $('orders-rows').replaceChildren(
    ...page.orders.map((o) => {
      const open = el('button', { type: 'button', class: 'link' }, o.order_id.slice(0, 8));
      open.setAttribute('aria-label', `Order ${o.order_id}`);
      open.addEventListener('click', guarded(() => showOrder(o.order_id)));
      return el('tr', {}, el('td', {}, open), el('td', {}, o.customer_id), el('td', { class: `status ${o.status}` }, o.status), el('td', {}, when(o.created_at)), el('td', {}, money(o.amount)));
    }),
  );
  if (!page.orders.length) $('orders-rows').append(el('tr', {}, el('td', { colspan: '5' }, 'No orders match.')));
}

function seconds(ms) {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`;
}

async function showOrder(id) {
  const order = await api(`/api/v1/orders/${id}`);
  $('order-detail').hidden = false;
  $('detail-id').textContent = order.order_id;
  $('detail-summary').textContent = `${order.status}${order.reason ? `: ${order.reason}` : ''} — ${order.customer_id}, ${money(order.amount)}`;
  let previous = null;
  $('detail-timeline').replaceChildren(
    ...order.history.map((h) => {
      const at = Date.parse(h.at);
      const step = previous === null ? 'start' : `+${seconds(at - previous)}`;
      previous = at;
      return el('li', {}, el('span', { class: 'seq' }, `#${h.seq}`), ' ', el('strong', {}, h.type), ' ', el('time', { datetime: h.at }, when(h.at)), ' ', el('span', { class: 'step' }, step));
    }),
  );
  // The cross-stream trace (payments, inventory, notifications) gives each step's duration.
  const trace = await api(`/api/v1/orders/${id}/trace`);
  $('detail-steps').replaceChildren(
    ...trace.steps.map((s) => el('li', {}, el('strong', {}, s.step), ` ${s.from.replace(`.${id}`, '')} → ${s.to.replace(`.${id}`, '')}: `, el('span', { class: 'step' }, seconds(Math.round(s.seconds * 1000))))),
  );
  $('order-detail').scrollIntoView({ block: 'nearest' });
}

// ---- notifications ----

// Only the latest load may render: an older answer arriving late would show stale receipts.
let notificationsLoad = 0;

async function loadNotifications() {
  const customer = $('notifications-customer').value.trim();
  if (!customer) return;
  const mine = ++notificationsLoad;
  const list = await api(`/api/v1/customers/${encodeURIComponent(customer)}/notifications`);
  if (mine !== notificationsLoad) return;
  $('notifications-list').replaceChildren(
    ...list.notifications.map((n) => {
      const item = el('li', {}, el('strong', {}, `${n.ending} via ${n.channel || 'none'}`), ` — order ${n.order_id.slice(0, 8)}, `, el('span', { class: 'note-status' }, n.status));
      if (n.message) item.append(el('p', {}, n.message));
      if (n.status === 'sent') {
        const read = el('button', { type: 'button' }, 'Mark read');
        read.addEventListener(
          'click',
          guarded(async () => {
            await api(`/api/v1/orders/${n.order_id}/notifications/${encodeURIComponent(n.id)}/read`, { method: 'POST' });
            await loadNotifications();
          }),
        );
        item.append(' ', read);
      }
      return item;
    }),
  );
  if (!list.notifications.length) $('notifications-list').append(el('li', {}, 'No notifications.'));
}

// ---- dead letters ----

async function loadDeadLetters() {
  const page = await api(`/api/v1/admin/dead-letters?state=${encodeURIComponent($('dl-state').value)}`);
  $('dl-rows').replaceChildren(
    ...page.items.map((d) => {
      const open = el('button', { type: 'button', class: 'link' }, `#${d.id}`);
      open.setAttribute('aria-label', `Dead letter ${d.id}`);
      open.addEventListener('click', guarded(() => showDeadLetter(d.id)));
      return el('tr', {}, el('td', {}, open), el('td', {}, d.consumer), el('td', {}, d.cause), el('td', {}, d.subject || ''), el('td', {}, d.handling ? d.handling.state : 'open'));
    }),
  );
  if (!page.items.length) $('dl-rows').append(el('tr', {}, el('td', { colspan: '5' }, 'No dead letters in this state.')));
}

async function showDeadLetter(id) {
  const detail = await api(`/api/v1/admin/dead-letters/${id}`);
  shownDeadLetter = id;
  $('dl-detail').hidden = false;
  $('dl-detail-id').textContent = `#${id}`;
  $('dl-detail-reason').textContent = `${detail.cause}: ${detail.reason}`;
  $('dl-detail-body').textContent = JSON.stringify(detail.original, null, 2);
  $('dl-result').textContent = '';
}

async function handleDeadLetter(action, body) {
  const handled = await api(`/api/v1/admin/dead-letters/${shownDeadLetter}/${action}`, { method: 'POST', body });
  $('dl-result').textContent = `Dead letter #${shownDeadLetter}: ${handled.state}`;
  await loadDeadLetters();
}

// ---- health strip ----

function pill(id, text, ok) {
  $(id).textContent = text;
  $(id).className = `pill ${ok ? 'ok' : 'bad'}`;
}

async function refreshHealth() {
  try {
    const res = await fetch('/readyz');
    const body = await res.json().catch(() => ({}));
    pill('health-ready', res.ok ? 'ready' : `not ready: ${body.detail || res.status}`, res.ok);
  } catch (e) {
    pill('health-ready', `unreachable: ${e.message}`, false);
  }
  if (!isAdmin()) return;
  try {
    const status = await api('/api/v1/admin/status');
    const lag = status.consumers.reduce((sum, c) => sum + c.pending + c.ack_pending, 0);
    pill('health-lag', `consumer lag: ${lag}`, lag === 0);
    pill('health-dlq', `dead letters: ${status.dead_letter_backlog}`, status.dead_letter_backlog === 0);
  } catch (e) {
    pill('health-lag', `status: ${e.message}`, false);
  }
}

function startHealth() {
  clearInterval(healthTimer);
  refreshHealth();
  healthTimer = setInterval(refreshHealth, HEALTH_EVERY_MS);
}

// ---- wiring ----

function wire() {
  $('sign-in-form').addEventListener('submit', guarded(() => signIn($('token').value.trim())));
  $('sign-out').addEventListener('click', signOut);
  for (const button of document.querySelectorAll('#tabs button')) {
    button.addEventListener('click', () => showPanel(button.dataset.panel));
  }
  $('catalog-refresh').addEventListener('click', guarded(loadCatalog));
  $('restock-form').addEventListener('submit', guarded(restock));
  $('add-line').addEventListener('click', () => addLine());
  $('checkout-form').addEventListener('submit', guarded(placeOrder));
  $('orders-form').addEventListener('submit', guarded(() => loadOrders(false)));
  $('orders-next').addEventListener('click', guarded(() => loadOrders(true)));
  $('notifications-form').addEventListener('submit', guarded(loadNotifications));
  $('dl-form').addEventListener('submit', guarded(loadDeadLetters));
  $('dl-replay').addEventListener('click', guarded(() => handleDeadLetter('replay', { by: claims.sub })));
  $('dl-discard-form').addEventListener('submit', guarded(() => handleDeadLetter('discard', { reason: $('dl-discard-reason').value, by: claims.sub })));
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) guarded(() => signIn(saved))();
  document.body.dataset.ready = 'true';
}

wire();
