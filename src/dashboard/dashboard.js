// The live dashboard: /latest for the table, the stream for live updates (resuming with its cursor after any
// disconnect), /time for a chart's history. Plain browser JavaScript: no build step; uPlot is served locally.
const base = document.querySelector('meta[name="sluice-base"]').content;
const rows = new Map(); // slu_id -> <tr>
const conn = document.getElementById('conn');
const tbody = document.getElementById('slus');
let selected; // { sluId, data: [t[], a1..a3[], v1..v3[], p1..p3[]], plots: [] }
let cursor;
let reconnects = 0;
let resumes = 0;

function setConn(state, text) {
  conn.dataset.state = state;
  conn.textContent = text;
}

const num = (s) => (s === null || s === undefined ? null : Number(s));
const fmt = (s, digits) => (s === null || s === undefined ? '' : Number(s).toFixed(digits));
const epoch = (t) => Date.parse(t.replace(' ', 'T') + 'Z') / 1000;
// Readings carry UTC; the page shows the partner's own time zone (the browser's), and says which.
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
const localTime = (t) => new Date(epoch(t) * 1000).toLocaleString(undefined, { hour12: false });
document.getElementById('t-head').textContent = `time (${zone})`;

function render(r, fresh) {
  let tr = rows.get(r.slu_id);
  if (!tr) {
    tr = document.createElement('tr');
    tr.dataset.slu = String(r.slu_id);
    tr.addEventListener('click', () => select(r.slu_id));
    rows.set(r.slu_id, tr);
    // Keep the table ordered by slu_id.
    const after = [...rows.keys()].filter((id) => id > r.slu_id).sort((a, b) => a - b)[0];
    tbody.insertBefore(tr, after === undefined ? null : rows.get(after));
    document.getElementById('empty').hidden = true;
  }
  if (tr.dataset.t && tr.dataset.t > r.t) return; // an older reading (e.g. a resume replay) never replaces a newer one
  tr.dataset.t = r.t;
  tr.hidden = !matchesFilter(r.slu_id);
  tr.innerHTML = '';
  const cells = [r.slu_id, localTime(r.t), r.v1 ?? '', r.v2 ?? '', r.v3 ?? '', fmt(r.a1, 2), fmt(r.a2, 2), fmt(r.a3, 2), fmt(r.p1, 3), fmt(r.p2, 3), fmt(r.p3, 3), fmt(r.k1, 1)];
  for (const c of cells) {
    const td = document.createElement('td');
    td.textContent = String(c);
    tr.appendChild(td);
  }
  if (fresh) {
    tr.classList.remove('fresh');
    void tr.offsetWidth; // restart the highlight
    tr.classList.add('fresh');
  }
}

async function getJson(path) {
  const res = await fetch(base + path, { headers: { accept: 'application/json' } });
  const body = await res.json();
  if (!res.ok) throw new Error(body.message || `HTTP ${res.status}`);
  return body;
}

// --- charts: a range (last hour / 6 hours / day, or custom) from /time, following its pages, then live

const SERIES = [
  ['voltage (V)', ['v1', 'v2', 'v3']],
  ['current (A)', ['a1', 'a2', 'a3']],
  ['power factor (cos φ)', ['p1', 'p2', 'p3']],
];
const PHASES = ['L1', 'L2', 'L3'];
const COLORS = ['#1f77b4', '#d62728', '#2ca02c'];
const MAX_PAGES = 50; // 500,000 readings at most in a browser tab
const rangeSel = document.getElementById('range');
const exportBtn = document.getElementById('export');
const status = document.getElementById('range-status');

/** Every reading of one SLU with begin <= t <= end, oldest first, following /time's X-Sluice-Next pages. */
async function history(sluId, begin, end) {
  const out = [];
  let path = `${base}/time?slu_id=${sluId}&begin=${begin}&end=${end}`;
  for (let page = 0; path && page < MAX_PAGES; page++) {
    const res = await fetch(path, { headers: { accept: 'application/json' } });
    const body = await res.json();
    if (!res.ok) throw new Error(body.message || `HTTP ${res.status}`);
    out.push(...body.data);
    path = res.headers.get('x-sluice-next');
    status.textContent = `${out.length} readings…`;
  }
  return out.reverse();
}

/** The range the picker shows: [begin, end] in Unix seconds, and whether new readings extend it (live). */
function currentRange() {
  const now = Math.floor(Date.now() / 1000);
  if (rangeSel.value !== 'custom') return { begin: now - Number(rangeSel.value), end: now + 60, live: true };
  const from = document.getElementById('range-from').value;
  const to = document.getElementById('range-to').value;
  const begin = from ? Math.floor(new Date(from).getTime() / 1000) : now - 3600; // datetime-local is local time
  return to ? { begin, end: Math.floor(new Date(to).getTime() / 1000), live: false } : { begin, end: now + 60, live: true };
}

async function select(sluId) {
  for (const tr of rows.values()) tr.classList.toggle('selected', tr.dataset.slu === String(sluId));
  document.getElementById('hint').hidden = true;
  const title = document.getElementById('chart-title');
  title.hidden = false;
  title.textContent = `SLU ${sluId}`;
  const charts = document.getElementById('charts');
  charts.innerHTML = '';
  const range = currentRange();
  const readings = await history(sluId, range.begin, range.end);
  status.textContent = `${readings.length} readings${range.live ? ', live' : ''}`;
  const data = SERIES.map(([, keys]) => [readings.map((r) => epoch(r.t)), ...keys.map((k) => readings.map((r) => num(r[k])))]);
  const width = Math.max(300, charts.clientWidth - 8);
  const plots = SERIES.map(([label, keys], i) => {
    const div = document.createElement('div');
    div.className = 'chart';
    charts.appendChild(div);
    // uPlot draws time axes in the browser's time zone.
    const plot = new uPlot({ title: label, width, height: 180, series: [{}, ...keys.map((k, j) => ({ label: PHASES[j], stroke: COLORS[j], points: { show: true } }))] }, data[i], div);
    showWindow(plot, data[i], range);
    return plot;
  });
  selected = { sluId, data, plots, readings, range };
  exportBtn.disabled = false;
}

/** The x axis spans the chosen range (or the data, if wider), however few points there are. */
function showWindow(plot, d, range) {
  const xs = d[0];
  const end = range.live ? Date.now() / 1000 : range.end;
  plot.setScale('x', { min: Math.min(xs[0] ?? range.begin, range.begin), max: Math.max(xs[xs.length - 1] ?? end, end) });
}

function extendChart(r) {
  if (!selected || selected.sluId !== r.slu_id || !selected.range.live) return;
  selected.readings.push(r);
  SERIES.forEach(([, keys], i) => {
    const d = selected.data[i];
    d[0].push(epoch(r.t));
    keys.forEach((k, j) => d[j + 1].push(num(r[k])));
    selected.plots[i].setData(d, false);
    showWindow(selected.plots[i], d, selected.range);
  });
}

// Charts follow the page's width (a phone turned, a window resized).
window.addEventListener('resize', () => {
  if (!selected) return;
  const width = Math.max(280, document.getElementById('charts').clientWidth - 8);
  for (const plot of selected.plots) plot.setSize({ width, height: 180 });
});

rangeSel.addEventListener('change', () => {
  document.getElementById('range-custom').hidden = rangeSel.value !== 'custom';
  if (rangeSel.value !== 'custom' && selected) void select(selected.sluId);
});
document.getElementById('range-apply').addEventListener('click', () => selected && void select(selected.sluId));

/** The shown range of the selected SLU as CSV: the legacy fields, t in UTC as the API gives it. */
exportBtn.addEventListener('click', () => {
  if (!selected) return;
  const cols = ['slu_id', 't', 'v1', 'v2', 'v3', 'a1', 'a2', 'a3', 'p1', 'p2', 'p3', 'k1', 'k2', 'k3'];
  const lines = [cols.join(',')];
  for (const r of selected.readings) lines.push(cols.map((c) => (c === 'slu_id' ? selected.sluId : (r[c] ?? ''))).join(','));
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([lines.join('\n') + '\n'], { type: 'text/csv' }));
  a.download = `slu-${selected.sluId}-${selected.range.begin}-${selected.range.end}.csv`;
  document.body.appendChild(a);
  a.click();
  a.remove();
});

// --- filter: "12", "1,5,9", "100-199"
const filterInput = document.getElementById('filter');
function matchesFilter(id) {
  const f = filterInput.value.trim();
  if (!f) return true;
  return f.split(',').some((part) => {
    const m = /^(\d+)\s*-\s*(\d+)$/.exec(part.trim());
    return m ? id >= Number(m[1]) && id <= Number(m[2]) : String(id).includes(part.trim());
  });
}
filterInput.addEventListener('input', () => {
  for (const [id, tr] of rows) tr.hidden = !matchesFilter(id);
});

// --- the stream, resumed with its cursor after any disconnect

function connect() {
  const q = cursor ? `?since=${encodeURIComponent(cursor)}` : '';
  const ws = new WebSocket(`wss://${location.host}${base}/stream${q}`);
  let opened = false;
  ws.onmessage = (ev) => {
    const f = JSON.parse(ev.data);
    if (f.cursor) cursor = f.cursor;
    // Only the first subscribed frame is the join (later ones would answer subscription changes).
    if (f.type === 'subscribed' && !opened) {
      opened = true;
      if (q) resumes++;
      setConn('live', resumes ? `live (resumed ${resumes}×)` : 'live');
      // First the subscription, then /latest (read-your-writes): nothing committed in between can be missed.
      if (!loaded) loaded = loadLatest();
    } else if (f.type === 'readings') {
      for (const r of f.readings) {
        render(r, true);
        extendChart(r);
      }
    } else if (f.type === 'error') {
      console.warn('stream:', f.code, f.message);
    }
  };
  ws.onclose = (ev) => {
    if (ev.code === 4401 || ev.code === 4403) {
      setConn('failed', ev.code === 4401 ? 'certificate revoked' : 'no access');
      return;
    }
    reconnects++;
    const delay = Math.min(15000, 250 * 2 ** Math.min(6, reconnects)) * (0.5 + Math.random() / 2);
    setConn('reconnecting', `reconnecting (${reconnects})…`);
    setTimeout(connect, opened ? 250 : delay);
  };
}

// The browser knows when the network is gone: say so rather than "reconnecting" forever.
window.addEventListener('offline', () => setConn('offline', 'offline: will resume when the network is back'));
window.addEventListener('online', () => setConn('reconnecting', 'back online: resuming…'));

let loaded;
async function loadLatest() {
  try {
    const latest = await getJson('/latest');
    for (const r of latest) render(r, false);
    document.getElementById('empty').hidden = rows.size > 0;
    document.getElementById('partner').textContent = `${rows.size} SLU${rows.size === 1 ? '' : 's'}`;
  } catch (err) {
    setConn('failed', err.message);
  }
}

connect();
