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
  tr.innerHTML = '';
  const cells = [r.slu_id, r.t.slice(0, 19), r.v1 ?? '', r.v2 ?? '', r.v3 ?? '', fmt(r.a1, 2), fmt(r.a2, 2), fmt(r.a3, 2), fmt(r.p1, 3), fmt(r.p2, 3), fmt(r.p3, 3), fmt(r.k1, 1)];
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

// --- charts

const SERIES = [
  ['current (A)', ['a1', 'a2', 'a3']],
  ['voltage (V)', ['v1', 'v2', 'v3']],
  ['power factor', ['p1', 'p2', 'p3']],
];
const COLORS = ['#1f77b4', '#d62728', '#2ca02c'];

async function select(sluId) {
  for (const tr of rows.values()) tr.classList.toggle('selected', tr.dataset.slu === String(sluId));
  document.getElementById('hint').hidden = true;
  const title = document.getElementById('chart-title');
  title.hidden = false;
  title.textContent = `SLU ${sluId}`;
  const charts = document.getElementById('charts');
  charts.innerHTML = '';
  const now = Math.floor(Date.now() / 1000);
  const history = (await getJson(`/time?slu_id=${sluId}&begin=${now - 6 * 3600}&end=${now + 60}`)).data.reverse();
  const data = SERIES.map(([, keys]) => [history.map((r) => epoch(r.t)), ...keys.map((k) => history.map((r) => num(r[k])))]);
  const width = Math.max(360, charts.clientWidth - 8);
  const plots = SERIES.map(([label, keys], i) => {
    const div = document.createElement('div');
    div.className = 'chart';
    charts.appendChild(div);
    const plot = new uPlot({ title: label, width, height: 180, series: [{}, ...keys.map((k, j) => ({ label: k, stroke: COLORS[j], points: { show: true } }))] }, data[i], div);
    showWindow(plot, data[i]);
    return plot;
  });
  selected = { sluId, data, plots };
}

/** The x axis spans the 6 hours up to now (or the data, if wider), however few points there are. */
function showWindow(plot, d) {
  const now = Date.now() / 1000;
  const xs = d[0];
  plot.setScale('x', { min: Math.min(xs[0] ?? now, now - 6 * 3600), max: Math.max(xs[xs.length - 1] ?? now, now) });
}

function extendChart(r) {
  if (!selected || selected.sluId !== r.slu_id) return;
  SERIES.forEach(([, keys], i) => {
    const d = selected.data[i];
    d[0].push(epoch(r.t));
    keys.forEach((k, j) => d[j + 1].push(num(r[k])));
    selected.plots[i].setData(d, false);
    showWindow(selected.plots[i], d);
  });
}

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
