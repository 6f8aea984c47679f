// amld's web view: a runs table, a run page (status history, config, live
// log, files, metric charts), a comparison of several runs' metrics and a
// sweep's page (its children, their hyperparameters, the best one).
// Everything comes from the daemon's JSON endpoints (daemon/web/web_api.h);
// pages poll them only while they are shown and the tab is visible, and stop
// polling a run once it has ended. Text from runs (names, tags, logs) is
// only ever set as textContent, never parsed as HTML.
'use strict';

const TERMINAL = new Set(['COMPLETED', 'FAILED', 'CANCELED']);
const RUNS_POLL_MS = 3000;
const RUN_POLL_MS = 1000;
const ROWS_SHOWN = 200;
const MAX_LOG_CHARS = 4 << 20;
const COLORS = ['#2f6fde', '#e4572e', '#17a35a', '#a24cd6', '#f2a007', '#0fa3b1', '#d6336c', '#6b7385'];

// ---------------------------------------------------------------------------
// Small helpers.

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function getJson(url) {
  const res = await fetch(url, { credentials: 'same-origin' });
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch (e) { /* not JSON: an error page */ }
  if (!res.ok) {
    const msg = body && body.error ? body.error.message : text.replace(/<[^>]*>/g, '').trim();
    throw new Error(`${res.status}: ${msg}`);
  }
  return body;
}

function fmtTime(sec) {
  if (sec === null || sec === undefined) return '';
  const d = new Date(sec * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtDuration(sec) {
  if (sec === null || sec === undefined || !isFinite(sec)) return '';
  sec = Math.max(0, Math.round(sec));
  const hh = Math.floor(sec / 3600), mm = Math.floor((sec % 3600) / 60), ss = sec % 60;
  if (hh) return `${hh}h ${mm}m`;
  if (mm) return `${mm}m ${ss}s`;
  return `${ss}s`;
}

function fmtNumber(v) {
  if (typeof v !== 'number') return v === undefined || v === null ? '' : String(v);
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e6)) return v.toExponential(3);
  return String(Number(v.toPrecision(5)));
}

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < units.length - 1);
  return `${n.toFixed(1)} ${units[i]}`;
}

function statusBadge(s) { return h('span', { class: `status ${s}` }, s); }

function duration(run) {
  if (!run.started) return null;
  return (run.ended || Date.now() / 1000) - run.started;
}

function tsSeconds(ts) { return ts ? Date.parse(ts) / 1000 : null; }

// Polls `fn` every `ms` while the page that started it is shown and the
// tab is visible; fn returns false to stop. Returns a stop function.
function poll(fn, ms) {
  let stopped = false, timer = null;
  const tick = async () => {
    timer = null;
    if (stopped) return;
    if (document.visibilityState === 'visible') {
      let again = true;
      try { again = (await fn()) !== false; } catch (e) { console.warn(e); }
      if (!again) { stopped = true; return; }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  const onVisible = () => { if (document.visibilityState === 'visible' && !stopped && timer === null) tick(); };
  document.addEventListener('visibilitychange', onVisible);
  return () => { stopped = true; if (timer) clearTimeout(timer); document.removeEventListener('visibilitychange', onVisible); };
}

// Every page registers its pollers here; a route change stops them all.
// A page still loading when the route changed (its generation is past)
// has its pollers stopped as soon as it registers them.
let pageStops = [];
let generation = 0;
function onLeave(stop, gen) {
  if (gen !== generation) stop();
  else pageStops.push(stop);
}
window.amldCharts = {};  // metric name → Chart, for tests and the console

// ---------------------------------------------------------------------------
// The runs table.

const runsState = { sort: 'created', asc: false, filter: '', experiment: '', status: '', selected: new Set(), shown: ROWS_SHOWN };
const lastMetrics = new Map();  // run id → {name: value}; final once the run ended

async function showRuns(main) {
  const gen = generation;
  const experiments = await getJson('/api/experiments').catch(() => ({ experiments: [] }));
  const table = h('table', { id: 'runs' });
  const count = h('span', { class: 'muted', id: 'run-count' });
  const compare = h('button', { id: 'compare-selected', onclick: () => {
    location.hash = `#/compare?runs=${[...runsState.selected].map(encodeURIComponent).join(',')}`;
  } }, 'Compare selected');
  const expSelect = h('select', { id: 'experiment', onchange: (e) => { runsState.experiment = e.target.value; refresh(); } },
    h('option', { value: '' }, 'all experiments'),
    experiments.experiments.map((x) => h('option', { value: x.name, selected: x.name === runsState.experiment }, `${x.name} (${x.run_count})`)));
  const statuses = ['', 'QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELED'];
  const statusSelect = h('select', { id: 'status', onchange: (e) => { runsState.status = e.target.value; refresh(); } },
    statuses.map((s) => h('option', { value: s, selected: s === runsState.status }, s || 'any status')));
  const filter = h('input', { type: 'search', id: 'filter', placeholder: 'filter: id, name, user, target, tag', value: runsState.filter,
    oninput: (e) => { runsState.filter = e.target.value; render(); } });
  main.replaceChildren(h('div', { class: 'toolbar' }, expSelect, statusSelect, filter, compare, count), table,
    h('div', { class: 'toolbar' }, h('button', { id: 'show-more', onclick: () => { runsState.shown += ROWS_SHOWN; render(); } }, 'Show more')));

  let runs = [], more = false;
  async function load() {
    const q = new URLSearchParams({ limit: '1000' });
    if (runsState.experiment) q.set('experiment', runsState.experiment);
    if (runsState.status) q.set('status', runsState.status === 'RUNNING' ? 'PREPARING,STARTING,RUNNING,FINALIZING,CANCEL_REQUESTED' : runsState.status);
    const data = await getJson(`/api/runs?${q}`);
    runs = data.runs; more = data.more;
  }
  // The last values of the shown rows' metrics: those not fetched yet, and
  // with `live` also those of runs still going (a run's are final once it ended).
  async function loadMetrics(rows, live) {
    const want = rows.filter((r) => !lastMetrics.has(r.id) || (live && !lastMetrics.get(r.id).final)).map((r) => r.id);
    for (let i = 0; i < want.length; i += 100) {
      const part = want.slice(i, i + 100);
      const got = await getJson(`/api/metrics/last?runs=${part.map(encodeURIComponent).join(',')}`);
      for (const id of part) {
        const row = runs.find((r) => r.id === id);
        lastMetrics.set(id, { values: got[id] || {}, final: Boolean(row && TERMINAL.has(row.status)) });
      }
    }
    return want.length > 0;
  }
  function visibleRows() {
    const f = runsState.filter.toLowerCase();
    let rows = runs;
    if (f) {
      rows = rows.filter((r) => [r.id, r.name, r.user, r.target, r.experiment, r.status,
        ...Object.entries(r.tags).map(([k, v]) => `${k}=${v}`)].some((s) => s && s.toLowerCase().includes(f)));
    }
    const key = runsState.sort, dir = runsState.asc ? 1 : -1;
    const value = (r) => {
      if (key === 'duration') return duration(r);
      if (key.startsWith('metric:')) { const m = lastMetrics.get(r.id); return m ? m.values[key.slice(7)] : undefined; }
      return r[key];
    };
    return [...rows].sort((a, b) => {
      const x = value(a), y = value(b);
      if (x === y) return 0;
      if (x === undefined || x === null || x === '') return 1;
      if (y === undefined || y === null || y === '') return -1;
      return (x < y ? -1 : 1) * dir;
    });
  }
  function render() {
    const rows = visibleRows();
    const shown = rows.slice(0, runsState.shown);
    const metricNames = [];
    for (const r of shown) {
      const m = lastMetrics.get(r.id);
      if (m) for (const n of Object.keys(m.values)) if (!metricNames.includes(n)) metricNames.push(n);
    }
    metricNames.sort();
    const keyMetrics = metricNames.slice(0, 6);
    const cols = [['', null], ['status', 'status'], ['run', 'id'], ['experiment', 'experiment'], ['user', 'user'],
      ['target', 'target'], ['start', 'created'], ['duration', 'duration'], ...keyMetrics.map((n) => [n, `metric:${n}`])];
    const head = h('tr', {}, cols.map(([label, key]) => h('th', {
      class: key && runsState.sort === key ? `sorted${runsState.asc ? ' asc' : ''}` : null,
      onclick: key ? () => { runsState.asc = runsState.sort === key ? !runsState.asc : false; runsState.sort = key; render(); } : null,
    }, label)));
    const body = shown.map((r) => {
      const m = lastMetrics.get(r.id);
      return h('tr', { 'data-run': r.id },
        h('td', {}, h('input', { type: 'checkbox', checked: runsState.selected.has(r.id), onchange: (e) => {
          if (e.target.checked) runsState.selected.add(r.id); else runsState.selected.delete(r.id);
          compare.disabled = runsState.selected.size === 0;
        } })),
        h('td', {}, statusBadge(r.status)),
        h('td', {}, h('a', { href: `#/run/${encodeURIComponent(r.id)}` }, r.name || r.id), r.name ? h('div', { class: 'muted' }, r.id) : null),
        h('td', {}, r.experiment), h('td', {}, r.user), h('td', {}, r.target),
        h('td', {}, fmtTime(r.created)), h('td', { class: 'num' }, fmtDuration(duration(r))),
        keyMetrics.map((n) => h('td', { class: 'num' }, m ? fmtNumber(m.values[n]) : '')));
    });
    table.replaceChildren(h('thead', {}, head), h('tbody', {}, body));
    count.textContent = `${rows.length} run${rows.length === 1 ? '' : 's'}${more ? ' (the newest 1000)' : ''}`;
    compare.disabled = runsState.selected.size === 0;
    document.getElementById('show-more').hidden = rows.length <= runsState.shown;
    // Rows shown for the first time (another sort, filter or page) get
    // their metric columns once; live runs' are refreshed by the poll.
    loadMetrics(shown, false).then((fetched) => { if (fetched) render(); }).catch((e) => console.warn(e));
  }
  function shownRows() { return visibleRows().slice(0, runsState.shown); }
  async function refresh() { await load(); await loadMetrics(shownRows(), true); render(); }
  await refresh();
  onLeave(poll(async () => { await refresh(); }, RUNS_POLL_MS), gen);
}

// ---------------------------------------------------------------------------
// Metric charts: one chart per metric, one line per run, against step or
// time, with TensorBoard's debiased exponential smoothing.

function smooth(values, weight) {
  if (!weight) return values;
  let last = 0, n = 0;
  return values.map((v) => {
    if (v === null || !isFinite(v)) return v;
    last = last * weight + (1 - weight) * v;
    n++;
    return last / (1 - Math.pow(weight, n));
  });
}

class MetricCharts {
  constructor(container) {
    this.container = container;
    this.charts = new Map();  // metric name → {chart, box}
    this.xAxis = 'step';
    this.smoothing = 0;
    this.series = new Map();  // run id → {label, metrics, start}
    this.gen = generation;  // the page's
  }
  setRun(id, label, metrics, start) { this.series.set(id, { label, metrics, start }); this.draw(); }
  removeRun(id) { this.series.delete(id); this.draw(); }
  draw() {
    const names = new Set();
    for (const s of this.series.values()) {
      for (const [n, m] of Object.entries(s.metrics)) if (m.values.some((v) => typeof v === 'number' || v === null)) names.add(n);
    }
    for (const [n, c] of this.charts) {
      if (!names.has(n)) { c.chart.destroy(); c.box.remove(); this.charts.delete(n); delete window.amldCharts[n]; }
    }
    if (names.size === 0 && !this.container.querySelector('.empty')) {
      this.container.replaceChildren(h('p', { class: 'muted empty' }, 'No metrics logged yet. A run logs them with Run.get_context().log(name, value).'));
    }
    if (names.size > 0) this.container.querySelector('.empty')?.remove();
    for (const n of [...names].sort()) {
      let c = this.charts.get(n);
      if (!c) {
        const canvas = h('canvas', {});
        const box = h('div', { class: 'chart', 'data-metric': n }, h('h3', {}, n), h('div', { class: 'canvas-box' }, canvas));
        this.container.append(box);
        const chart = new Chart(canvas, {
          type: 'line',
          data: { datasets: [] },
          options: {
            animation: false, maintainAspectRatio: false, parsing: false, normalized: true,
            interaction: { mode: 'nearest', intersect: false },
            scales: { x: { type: 'linear', title: { display: true, text: 'step' } }, y: { type: 'linear' } },
            plugins: { legend: { display: true, labels: { boxWidth: 12 } } },
            elements: { point: { radius: 0, hitRadius: 6 }, line: { borderWidth: 1.5 } },
          },
        });
        c = { chart, box };
        this.charts.set(n, c);
        window.amldCharts[n] = chart;
      }
      this.fill(n, c);
    }
  }
  fill(name, c) {
    const datasets = [];
    let i = 0;
    for (const [id, s] of this.series) {
      const color = COLORS[i++ % COLORS.length];
      const m = s.metrics[name];
      if (!m) continue;
      const xs = this.xAxis === 'step' ? m.steps : m.times.map((t) => t - s.start);
      const ys = m.values.map((v) => (typeof v === 'number' ? v : null));
      const points = (vals) => xs.map((x, k) => ({ x, y: vals[k] })).filter((p) => p.y !== null);
      if (this.smoothing > 0) {
        datasets.push({ label: `${s.label} (raw)`, data: points(ys), borderColor: color + '40', backgroundColor: color + '40', runId: id, raw: true });
      }
      datasets.push({ label: s.label, data: points(smooth(ys, this.smoothing)), borderColor: color, backgroundColor: color, runId: id });
    }
    c.chart.data.datasets = datasets;
    c.chart.options.scales.x.title.text = this.xAxis === 'step' ? 'step' : 'seconds since start';
    c.chart.update('none');
    c.box.setAttribute('data-points', String(datasets.filter((d) => !d.raw).reduce((n, d) => n + d.data.length, 0)));
  }
  controls() {
    return h('div', { class: 'toolbar' },
      h('label', {}, 'x axis ', h('select', { id: 'x-axis', onchange: (e) => { this.xAxis = e.target.value; this.draw(); } },
        h('option', { value: 'step' }, 'step'), h('option', { value: 'time' }, 'time'))),
      h('label', {}, 'smoothing ', h('input', { type: 'range', id: 'smoothing', min: '0', max: '0.99', step: '0.01', value: '0',
        oninput: (e) => { this.smoothing = Number(e.target.value); e.target.nextSibling.textContent = ` ${this.smoothing.toFixed(2)}`; this.draw(); } }),
        h('span', {}, ' 0.00')));
  }
}

// Keeps one run's metrics in `charts`, polled until the run has ended.
async function followMetrics(charts, id, label) {
  let run = (await getJson(`/api/runs/${encodeURIComponent(id)}`)).run;
  const start = tsSeconds(run.created_time);
  const load = async () => {
    const [m, r] = await Promise.all([getJson(`/api/runs/${encodeURIComponent(id)}/metrics`), getJson(`/api/runs/${encodeURIComponent(id)}`)]);
    charts.setRun(id, label || r.run.config.display_name || id, m.metrics, start);
    run = r.run;
    return !TERMINAL.has(run.status);
  };
  if (await load()) onLeave(poll(load, RUN_POLL_MS), charts.gen);
}

// ---------------------------------------------------------------------------
// A run's page.

async function showRun(main, id) {
  const gen = generation;
  const enc = encodeURIComponent(id);
  let { run, user } = await getJson(`/api/runs/${enc}`);
  const title = h('h1', {}, run.config.display_name || run.id, ' ', statusBadge(run.status));
  const overview = h('div', {});
  const panels = { overview, logs: h('div', {}), files: h('div', {}), metrics: h('div', {}) };
  const tabs = h('div', { class: 'tabs' });
  let current = 'overview';
  const select = (name) => {
    current = name;
    for (const [n, p] of Object.entries(panels)) p.hidden = n !== name;
    for (const b of tabs.children) b.classList.toggle('active', b.dataset.tab === name);
    if (name === 'files') loadFiles();
  };
  for (const name of Object.keys(panels)) tabs.append(h('button', { 'data-tab': name, id: `tab-${name}`, onclick: () => select(name) }, name[0].toUpperCase() + name.slice(1)));
  main.replaceChildren(h('div', { class: 'muted' }, h('a', { href: '#/' }, 'Runs'), ' / ', run.config.experiment_name), title, tabs, ...Object.values(panels));

  // Overview: facts, status history, config.
  function renderOverview() {
    const c = run.config;
    const git = c.git || {};
    const facts = [
      ['id', run.id], ['experiment', c.experiment_name], ['user', user], ['target', c.compute_target || 'local'],
      ['placement', run.placement], ['script', c.script || c.command], ['arguments', (c.arguments || []).join(' ')],
      ['exit code', run.exit_code], ['error', run.error], ['parent', run.parent_run_id],
      ['tags', Object.entries(c.tags || {}).map(([k, v]) => `${k}=${v}`).join(', ')],
      ['git', git.commit ? `${git.repository_uri || ''} ${git.branch || '(detached)'} ${git.commit.slice(0, 12)}${git.dirty ? ' (dirty)' : ''}` : ''],
    ].filter(([, v]) => v !== undefined && v !== null && v !== '');
    const history = (run.history || []).map((t, i, all) => {
      const at = tsSeconds(t.time), next = i + 1 < all.length ? tsSeconds(all[i + 1].time) : null;
      return h('tr', {}, h('td', {}, statusBadge(t.status)), h('td', {}, fmtTime(at)),
        h('td', { class: 'num' }, next ? fmtDuration(next - at) : ''), h('td', {}, t.reason || ''));
    });
    const sweepId = c.sweep ? run.id : (run.parent_run_id || null);
    overview.replaceChildren(
      sweepId && (c.sweep || (c.tags || {}).hyperparameters !== undefined)
        ? h('p', {}, h('a', { id: 'sweep-link', href: `#/sweep/${encodeURIComponent(sweepId)}` }, c.sweep ? 'the sweep\'s children' : 'this run\'s sweep'))
        : null,
      h('div', { class: 'card' }, h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]))),
      h('h2', {}, 'Status history'), h('table', { id: 'history' }, h('tbody', {}, history)),
      h('h2', {}, 'Config'), h('div', { class: 'card' }, h('pre', { id: 'config' }, JSON.stringify(c, null, 2))));
  }
  renderOverview();

  // Logs: the chosen log from an offset, appended as it grows.
  const logPre = h('pre', { class: 'log', id: 'log' });
  const logSelect = h('select', { id: 'log-file' }, h('option', { value: 'user_logs/std_log.txt' }, 'user_logs/std_log.txt'));
  const follow = h('input', { type: 'checkbox', id: 'follow', checked: true });
  const search = h('input', { type: 'search', id: 'log-search', placeholder: 'search the log' });
  const download = h('a', { id: 'log-download', href: `/api/runs/${enc}/log?download=1&path=user_logs/std_log.txt` }, 'download');
  const logInfo = h('span', { class: 'muted' });
  panels.logs.append(h('div', { class: 'toolbar' }, logSelect, h('label', {}, follow, ' follow'), search, download, logInfo), logPre);
  let logText = '', logOffset = 0, logPath = 'user_logs/std_log.txt', logDone = false, decoder = new TextDecoder();
  function renderLog() {
    const term = search.value;
    if (!term) {
      logPre.textContent = logText;
      logInfo.textContent = `${fmtBytes(logOffset)}`;
    } else {
      const lines = logText.split('\n').filter((l) => l.includes(term));
      logPre.replaceChildren(...lines.flatMap((l) => {
        const parts = l.split(term);
        return [...parts.flatMap((p, i) => (i ? [h('mark', {}, term), p] : [p])), '\n'];
      }));
      logInfo.textContent = `${lines.length} matching line${lines.length === 1 ? '' : 's'}`;
    }
    if (follow.checked) logPre.scrollTop = logPre.scrollHeight;
  }
  let pulling = null;
  function pullLog() {
    if (!pulling) pulling = pullLogOnce().finally(() => { pulling = null; });
    return pulling;
  }
  async function pullLogOnce() {
    const path = logPath;
    while (true) {
      const res = await fetch(`/api/runs/${enc}/log?path=${encodeURIComponent(path)}&offset=${logOffset}`, { credentials: 'same-origin' });
      if (path !== logPath) return;
      if (!res.ok) { logInfo.textContent = (await res.text()).slice(0, 200); return; }
      const bytes = new Uint8Array(await res.arrayBuffer());
      const next = Number(res.headers.get('X-Log-Next'));
      if (bytes.length === 0) break;
      logText += decoder.decode(bytes, { stream: true });
      if (logText.length > MAX_LOG_CHARS) logText = '[… earlier output left out; download the log for all of it]\n' + logText.slice(-MAX_LOG_CHARS);
      logOffset = next;
      renderLog();
    }
  }
  logSelect.addEventListener('change', () => {
    logPath = logSelect.value; logText = ''; logOffset = 0; decoder = new TextDecoder();
    download.href = `/api/runs/${enc}/log?download=1&path=${encodeURIComponent(logPath)}`;
    renderLog(); pulling = null; pullLog();
  });
  search.addEventListener('input', renderLog);
  await pullLog();

  // Files: the stored files, each a download.
  let filesShown = null;
  async function loadFiles() {
    const { files } = await getJson(`/api/runs/${enc}/files`);
    const key = JSON.stringify(files);
    if (key === filesShown) return;  // unchanged: keep the table (and a pending click) as it is
    filesShown = key;
    panels.files.replaceChildren(files.length === 0 ? h('p', { class: 'muted' }, 'No stored files yet.')
      : h('table', { id: 'files' }, h('thead', {}, h('tr', {}, h('th', {}, 'path'), h('th', {}, 'size'))),
        h('tbody', {}, files.map((f) => h('tr', {},
          h('td', {}, h('a', { href: `/api/runs/${enc}/file?path=${encodeURIComponent(f.path)}`, download: f.path.split('/').pop() }, f.path)),
          h('td', { class: 'num' }, fmtBytes(f.size)))))));
    const logs = files.map((f) => f.path).filter((p) => /^(user_logs|logs|system_logs)\//.test(p) && p !== 'user_logs/std_log.txt');
    for (const p of logs) if (![...logSelect.options].some((o) => o.value === p)) logSelect.append(h('option', { value: p }, p));
  }
  await loadFiles();

  // Metrics: this run, plus any run added to compare with it.
  const chartBox = h('div', { class: 'charts', id: 'charts' });
  const charts = new MetricCharts(chartBox);
  const addInput = h('input', { type: 'text', id: 'overlay-run', placeholder: 'overlay another run (id)' });
  const addButton = h('button', { id: 'overlay-add', onclick: async () => {
    const other = addInput.value.trim();
    if (!other) return;
    try { await followMetrics(charts, other); addInput.value = ''; } catch (e) { addInput.setCustomValidity(e.message); addInput.reportValidity(); }
  } }, 'Overlay');
  addInput.addEventListener('input', () => addInput.setCustomValidity(''));
  panels.metrics.append(h('div', { class: 'toolbar' }, charts.controls(), addInput, addButton), chartBox);
  const firstMetrics = await getJson(`/api/runs/${enc}/metrics`);
  charts.setRun(run.id, run.config.display_name || run.id, firstMetrics.metrics, tsSeconds(run.created_time));
  select(Object.keys(firstMetrics.metrics).length > 0 ? 'metrics' : 'logs');

  // Live: the run, its log and its metrics until it has ended, then once more.
  onLeave(poll(async () => {
    const fresh = await getJson(`/api/runs/${enc}`);
    const ended = TERMINAL.has(fresh.run.status);
    run = fresh.run;
    title.replaceChildren(run.config.display_name || run.id, ' ', statusBadge(run.status));
    renderOverview();
    const [m] = await Promise.all([getJson(`/api/runs/${enc}/metrics`), pullLog()]);
    charts.setRun(run.id, run.config.display_name || run.id, m.metrics, tsSeconds(run.created_time));
    if (ended && !logDone) { logDone = true; if (current === 'files') loadFiles(); }
    return !ended;
  }, RUN_POLL_MS), gen);
}

// ---------------------------------------------------------------------------
// Several runs' metrics overlaid: #/compare?runs=a,b,c

async function showCompare(main, ids) {
  const box = h('div', { class: 'charts', id: 'charts' });
  const charts = new MetricCharts(box);
  const input = h('input', { type: 'text', id: 'compare-runs', placeholder: 'run ids, comma separated', value: ids.join(',') });
  main.replaceChildren(h('h1', {}, 'Compare runs'),
    h('div', { class: 'toolbar' }, input, h('button', { onclick: () => { location.hash = `#/compare?runs=${input.value.split(',').map((s) => encodeURIComponent(s.trim())).filter(Boolean).join(',')}`; } }, 'Show'), charts.controls()),
    box);
  if (ids.length === 0) { box.replaceChildren(h('p', { class: 'muted' }, 'Pick runs in the runs table, or give their ids above.')); return; }
  for (const id of ids) {
    try { await followMetrics(charts, id); } catch (e) { box.prepend(h('p', { class: 'error' }, `${id}: ${e.message}`)); }
  }
}

// ---------------------------------------------------------------------------
// A sweep's page: #/sweep/<id>. Its children as a table (status, each
// hyperparameter a column, the primary metric's best value), the best child
// marked, and every child's curves overlaid; live until the sweep has ended.

async function showSweep(main, id) {
  const gen = generation;
  let sweep = (await getJson(`/api/runs/${encodeURIComponent(id)}`)).run;
  const spec = sweep.config.sweep || {};
  const metric = spec.primary_metric_name || '';
  const maximize = spec.primary_metric_goal === 'MAXIMIZE' || spec.primary_metric_goal === 1;
  const table = h('table', { id: 'sweep-children' });
  const summary = h('p', { class: 'muted', id: 'sweep-summary' });
  const box = h('div', { class: 'charts', id: 'charts' });
  const charts = new MetricCharts(box);
  main.replaceChildren(
    h('div', { class: 'muted' }, h('a', { href: '#/' }, 'Runs'), ' / ', sweep.config.experiment_name, ' / ',
      h('a', { href: `#/run/${encodeURIComponent(id)}` }, id)),
    h('h1', {}, 'Sweep ', sweep.config.display_name || id, ' ', statusBadge(sweep.status)),
    summary, table, h('h2', {}, 'Curves'), charts.controls(), box);
  const followed = new Set();
  // Child id → best value, for children that had ended when it was read: an
  // ended run's metrics are final (stored before its terminal status), so
  // each poll reads only the children still running.
  const settled = new Map();
  const best = (values) => {
    const nums = (values || []).filter((v) => typeof v === 'number' && isFinite(v));
    if (nums.length === 0) return undefined;
    return maximize ? Math.max(...nums) : Math.min(...nums);
  };
  const load = async () => {
    const [parent, listed] = await Promise.all([
      getJson(`/api/runs/${encodeURIComponent(id)}`),
      getJson(`/api/runs?${new URLSearchParams({ experiment: sweep.config.experiment_name, limit: '10000' })}`)]);
    sweep = parent.run;
    const children = listed.runs.filter((r) => r.parent === id).sort((a, b) => (a.id < b.id ? -1 : 1));
    const values = new Map();  // child id → best value of the primary metric
    await Promise.all(children.map(async (c) => {
      if (settled.has(c.id)) return values.set(c.id, settled.get(c.id));
      const m = await getJson(`/api/runs/${encodeURIComponent(c.id)}/metrics`);
      values.set(c.id, best(m.metrics[metric] && m.metrics[metric].values));
      if (TERMINAL.has(c.status)) settled.set(c.id, values.get(c.id));
    }));
    const params = [];
    const hyper = new Map();
    for (const c of children) {
      let hp = {};
      try { hp = JSON.parse(c.tags.hyperparameters || '{}'); } catch (e) { hp = {}; }
      hyper.set(c.id, hp);
      for (const k of Object.keys(hp)) if (!params.includes(k)) params.push(k);
    }
    let bestId = null;
    for (const c of children) {
      const v = values.get(c.id);
      if (v === undefined) continue;
      if (bestId === null || (maximize ? v > values.get(bestId) : v < values.get(bestId))) bestId = c.id;
    }
    table.replaceChildren(
      h('thead', {}, h('tr', {}, h('th', {}, ''), h('th', {}, 'status'), h('th', {}, 'run'),
        params.map((k) => h('th', {}, k)), h('th', {}, `${maximize ? 'max' : 'min'} ${metric}`))),
      h('tbody', {}, children.map((c) => h('tr', { 'data-run': c.id, class: c.id === bestId ? 'best' : null },
        h('td', {}, c.id === bestId ? h('span', { class: 'best-mark', title: 'best run' }, '★ best') : ''),
        h('td', {}, statusBadge(c.status)),
        h('td', {}, h('a', { href: `#/run/${encodeURIComponent(c.id)}` }, c.id)),
        params.map((k) => h('td', { class: 'num' }, k in hyper.get(c.id) ? String(hyper.get(c.id)[k]) : '')),
        h('td', { class: 'num' }, fmtNumber(values.get(c.id)))))));
    summary.textContent = `${children.length} child run${children.length === 1 ? '' : 's'}; primary metric ${metric} ` +
      `(${maximize ? 'maximize' : 'minimize'})${bestId ? `; best: ${bestId}` : ''}`;
    for (const c of children) {
      if (followed.has(c.id)) continue;
      followed.add(c.id);
      followMetrics(charts, c.id).catch((e) => console.warn(e));
    }
    return !TERMINAL.has(sweep.status);
  };
  if (await load()) onLeave(poll(load, RUNS_POLL_MS), gen);
}

// ---------------------------------------------------------------------------

async function route() {
  generation++;
  for (const stop of pageStops) stop();
  pageStops = [];
  for (const c of Object.values(window.amldCharts)) c.destroy();
  window.amldCharts = {};
  const main = document.getElementById('main');
  const hash = location.hash || '#/';
  try {
    let m;
    if ((m = hash.match(/^#\/run\/(.+)$/))) await showRun(main, decodeURIComponent(m[1]));
    else if ((m = hash.match(/^#\/sweep\/(.+)$/))) await showSweep(main, decodeURIComponent(m[1]));
    else if ((m = hash.match(/^#\/compare(?:\?runs=(.*))?$/))) await showCompare(main, (m[1] || '').split(',').map(decodeURIComponent).filter(Boolean));
    else await showRuns(main);
  } catch (e) {
    main.replaceChildren(h('p', { class: 'error' }, e.message));
  }
  document.body.dataset.ready = hash;
}

window.addEventListener('hashchange', route);
getJson('/api/info').then((i) => { document.getElementById('whoami').textContent = `${i.user} · amld ${i.version}`; }).catch(() => {});
route();
