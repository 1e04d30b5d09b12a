// The Weft operator dashboard (docs/dashboard.md). Plain JavaScript, no
// dependencies, nothing loaded from another host.
//
// Data flow: every view reads one page of a REST list (always with `limit`,
// paged with the API's cursors) and counts through `total` of limit=1 queries,
// so nothing grows with the fleet. /api/ws events and `stats` messages keep
// it live: an event patches the row it names at once and marks its view
// dirty; a dirty view refetches its page (coalesced, at most about once a
// second). After a reconnect every view refetches, because events sent while
// disconnected are not replayed and agent events may be coalesced.
(function () {
  'use strict';

  const TOKEN_KEY = 'weft.dashboard.token';
  const HISTORY_KEY = 'weft.dashboard.history.v1';
  const PAGE = 50;
  const WORK_STATUSES = ['pending', 'assigned', 'in-progress', 'completed', 'failed', 'cancelled'];
  const FINAL = new Set(['completed', 'failed', 'cancelled']);
  const MECH_SETTING = {
    ssh: 'spinup.allowSsh', 'github-actions': 'spinup.allowGithubActions', local: 'spinup.allowLocal',
    webhook: 'spinup.allowWebhook', kubernetes: 'spinup.allowKubernetes',
  };

  // Counters the browser tests read (window.weftDashboard).
  const probe = { renders: 0, events: 0, refetches: 0, connects: 0, lastRender: null };
  window.weftDashboard = probe;

  const $ = (sel, root) => (root || document).querySelector(sel);
  const esc = (v) => String(v == null ? '' : v).replace(/[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  const badge = (text, cls) => `<span class="badge ${esc(cls || 's-' + text)}">${esc(text)}</span>`;
  const when = (ts) => {
    if (!ts) return '';
    const d = new Date(ts);
    if (isNaN(d)) return esc(ts);
    const age = (Date.now() - d.getTime()) / 1000;
    let rel;
    if (age < 0) rel = 'in ' + fmtAge(-age);
    else rel = fmtAge(age) + ' ago';
    return `<span title="${esc(ts)}">${esc(rel)}</span>`;
  };
  function fmtAge(s) {
    if (s < 60) return Math.round(s) + ' s';
    if (s < 3600) return Math.round(s / 60) + ' min';
    if (s < 86400) return (s / 3600).toFixed(1) + ' h';
    return (s / 86400).toFixed(1) + ' d';
  }
  const qs = (params) => {
    const parts = [];
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== '') parts.push(encodeURIComponent(k) + '=' + encodeURIComponent(v));
    }
    return parts.length ? '?' + parts.join('&') : '';
  };

  // ---- auth and REST ---------------------------------------------------------
  let token = sessionStorage.getItem(TOKEN_KEY) || '';

  class ApiError extends Error {
    constructor(status, body) {
      super((body && (body.message || body.error)) || ('HTTP ' + status));
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const headers = {};
    if (token) headers.Authorization = 'Bearer ' + token;
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    let data = null;
    const text = await res.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (res.status === 401) {
      needToken(token ? 'The token was rejected.' : '');
      throw new ApiError(401, data);
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }
  const total = async (path, params) => (await api('GET', path + qs(Object.assign({ limit: 1 }, params)))).total;

  function needToken(message) {
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    stopSocket();
    document.body.dataset.auth = 'needed';
    $('#main').hidden = true;
    $('#main').innerHTML = '';
    $('#login').hidden = false;
    $('#logout').hidden = true;
    const err = $('#login-error');
    err.hidden = !message;
    err.textContent = message || '';
    $('#token').value = '';
    $('#token').focus();
  }

  async function checkAccess() {
    try {
      await api('GET', '/api/stats');
      return true;
    } catch (e) {
      if (e.status === 401) return false;
      // Anything else (backend down, 503) is not an auth problem: open the
      // dashboard and let the views show the error.
      return true;
    }
  }

  async function start() {
    document.body.dataset.auth = 'checking';
    if (!(await checkAccess())) return;  // needToken() has shown the prompt
    document.body.dataset.auth = 'ok';
    $('#login').hidden = true;
    $('#main').hidden = false;
    $('#logout').hidden = !token;
    connectSocket();
    route();
  }

  $('#login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const given = $('#token').value.trim();
    if (!given) return;
    token = given;
    $('#login-submit').disabled = true;
    try {
      if (await checkAccess()) {
        sessionStorage.setItem(TOKEN_KEY, token);
        $('#token').value = '';
        await start();
      }
    } finally {
      $('#login-submit').disabled = false;
    }
  });
  $('#logout').addEventListener('click', () => needToken(''));

  // ---- confirmation dialog ---------------------------------------------------
  function confirmDialog(title, html, okText) {
    return new Promise((resolve) => {
      $('#modal-title').textContent = title;
      $('#modal-body').innerHTML = html;
      $('#modal-ok').textContent = okText || 'Confirm';
      $('#modal').hidden = false;
      const done = (value) => {
        $('#modal').hidden = true;
        $('#modal-ok').onclick = null;
        $('#modal-cancel').onclick = null;
        resolve(value);
      };
      $('#modal-ok').onclick = () => done(true);
      $('#modal-cancel').onclick = () => done(false);
      $('#modal-ok').focus();
    });
  }
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !$('#modal').hidden) $('#modal-cancel').click();
  });

  function flash(message, isError) {
    const b = $('#banner');
    b.textContent = message;
    b.className = 'banner' + (isError ? '' : ' ok');
    b.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { if (!socketDown) b.hidden = true; }, 6000);
  }

  // ---- live history (Overview charts) ---------------------------------------
  // The API keeps no history of throughput or queue depth, and rebuilding it
  // from the work list would mean reading every item. So the charts start
  // when the dashboard does: work:submitted and work:completed events are
  // counted per minute, queue depth is sampled from `stats` messages and
  // /api/stats reads, and the last hour is kept in sessionStorage so a reload
  // in the same tab keeps it.
  const history = loadHistory();
  function loadHistory() {
    try {
      const h = JSON.parse(sessionStorage.getItem(HISTORY_KEY) || 'null');
      if (h && h.submitted && h.completed && h.depth) return h;
    } catch (e) { /* start afresh */ }
    return { since: Date.now(), submitted: {}, completed: {}, depth: {} };
  }
  const minuteOf = (t) => Math.floor(t / 60000);
  function pruneHistory() {
    const oldest = minuteOf(Date.now()) - 60;
    for (const series of [history.submitted, history.completed, history.depth]) {
      for (const k of Object.keys(series)) if (Number(k) < oldest) delete series[k];
    }
    if (history.since < (oldest * 60000)) history.since = oldest * 60000;
  }
  function saveHistory() {
    pruneHistory();
    try { sessionStorage.setItem(HISTORY_KEY, JSON.stringify(history)); } catch (e) { /* full */ }
  }
  function countEvent(series, ts) {
    const t = ts ? Date.parse(ts) : Date.now();
    const m = minuteOf(isNaN(t) ? Date.now() : t);
    series[m] = (series[m] || 0) + 1;
    saveHistory();
  }
  function sampleDepth(pending) {
    if (typeof pending !== 'number') return;
    history.depth[minuteOf(Date.now())] = pending;
    saveHistory();
  }

  function barChart(values, color, label) {
    const w = 360, h = 110, pad = 22;
    const max = Math.max(1, ...values);
    const bw = (w - pad) / values.length;
    let bars = '';
    values.forEach((v, i) => {
      if (!v) return;
      const bh = (h - 20) * v / max;
      bars += `<rect x="${(pad + i * bw).toFixed(1)}" y="${(h - 14 - bh).toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${bh.toFixed(1)}" fill="${color}"><title>${v} ${esc(label)}, ${60 - i} min ago</title></rect>`;
    });
    return `<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(label)} per minute">
      <line x1="${pad}" y1="${h - 14}" x2="${w}" y2="${h - 14}" stroke="#c8ced8"/>
      <text x="0" y="10" font-size="10" fill="#667085">${max}</text>
      <text x="${pad}" y="${h - 2}" font-size="10" fill="#667085">-60 min</text>
      <text x="${w - 24}" y="${h - 2}" font-size="10" fill="#667085">now</text>${bars}</svg>`;
  }
  function lineChart(points, color, label) {
    const w = 360, h = 110, pad = 22;
    const vals = points.filter((p) => p != null);
    const max = Math.max(1, ...vals);
    const step = (w - pad) / (points.length - 1);
    let d = '';
    let dots = '';
    points.forEach((v, i) => {
      if (v == null) return;
      const x = pad + i * step, y = h - 14 - (h - 20) * v / max;
      d += (d ? ' L' : 'M') + x.toFixed(1) + ' ' + y.toFixed(1);
      dots += `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="2" fill="${color}"><title>${v} ${esc(label)}, ${points.length - 1 - i} min ago</title></circle>`;
    });
    return `<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(label)}">
      <line x1="${pad}" y1="${h - 14}" x2="${w}" y2="${h - 14}" stroke="#c8ced8"/>
      <text x="0" y="10" font-size="10" fill="#667085">${max}</text>
      <text x="${pad}" y="${h - 2}" font-size="10" fill="#667085">-60 min</text>
      <text x="${w - 24}" y="${h - 2}" font-size="10" fill="#667085">now</text>
      <path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"/>${dots}</svg>`;
  }
  function lastHour(series) {
    const now = minuteOf(Date.now());
    const out = [];
    for (let m = now - 59; m <= now; m++) out.push(series[m] != null ? series[m] : null);
    return out;
  }

  // ---- WebSocket -------------------------------------------------------------
  let ws = null;
  let socketDown = false;
  let retries = 0;
  let reconnectTimer = null;
  let everConnected = false;
  let lastStats = null;

  function setConn(state, text) {
    const c = $('#conn');
    c.dataset.state = state;
    c.textContent = text;
  }

  function stopSocket() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (ws) {
      ws.onclose = null;
      ws.close();
      ws = null;
    }
    setConn('idle', 'not connected');
  }

  function connectSocket() {
    if (ws) return;
    clearTimeout(reconnectTimer);
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/ws';
    setConn('connecting', 'connecting…');
    let socket;
    try {
      // The token travels as the subprotocol after `bearer` (never in the URL).
      socket = token ? new WebSocket(url, ['bearer', token]) : new WebSocket(url);
    } catch (e) {
      // A token with characters a subprotocol cannot carry: the query
      // parameter the server also accepts.
      socket = new WebSocket(url + '?token=' + encodeURIComponent(token));
    }
    ws = socket;
    socket.onopen = () => {
      retries = 0;
      probe.connects++;
      socketDown = false;
      $('#banner').hidden = true;
      setConn('live', 'live');
      for (const topic of ['work', 'agents', 'targets', 'stats']) {
        socket.send(JSON.stringify({ type: 'subscribe', topic, filter: {} }));
      }
      if (everConnected) {
        // Events of the gap are not replayed: read everything again.
        markDirty('all');
      }
      everConnected = true;
    };
    socket.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch (e) { return; }
      if (msg.type === 'event') onEvent(msg);
      else if (msg.type === 'stats') onStats(msg.data || {});
    };
    socket.onclose = () => {
      if (ws !== socket) return;
      ws = null;
      socketDown = true;
      const delay = Math.min(15000, 500 * Math.pow(2, retries)) * (0.75 + Math.random() * 0.5);
      retries++;
      setConn('disconnected', 'disconnected');
      const b = $('#banner');
      b.className = 'banner';
      b.textContent = `Disconnected from the live event stream; reconnecting in ${Math.round(delay / 1000)} s. ` +
        'What is shown may be out of date.';
      b.hidden = false;
      reconnectTimer = setTimeout(async () => {
        if (token && !(await checkAccess())) return;
        connectSocket();
      }, delay);
    };
  }

  const EVENT_STATUS = {
    'work:submitted': 'pending', 'work:assigned': 'assigned', 'work:started': 'in-progress',
    'work:progress': 'in-progress', 'work:completed': 'completed', 'work:cancelled': 'cancelled',
  };

  function onEvent(msg) {
    probe.events++;
    const ev = msg.event || '';
    const d = msg.data || {};
    if (ev === 'work:submitted') countEvent(history.submitted, d.timestamp || msg.timestamp);
    if (ev === 'work:completed') countEvent(history.completed, d.timestamp || msg.timestamp);
    if (ev.startsWith('work:')) {
      let status = EVENT_STATUS[ev];
      if (ev === 'work:failed') status = d.retrying ? 'pending' : 'failed';
      // Patch the row at once; the refetch that follows confirms it.
      const row = d.workId && document.querySelector(`tr[data-work-id="${CSS.escape(d.workId)}"]`);
      if (row && status) {
        row.dataset.status = status;
        const cell = row.querySelector('td.status');
        if (cell) cell.innerHTML = badge(status);
      }
      markDirty('work');
      markDirty('overview');
      if ((ev === 'work:failed' && d.deadLettered) || (ev === 'work:submitted' && d.requeued)) markDirty('dlq');
      if (view.name === 'item' && view.id === d.workId) markDirty('item');
    } else if (ev.startsWith('agent:')) {
      markDirty('fleet');
    } else if (ev.startsWith('target:') || ev.startsWith('spin-up:')) {
      markDirty('targets');
    }
  }

  let lastStale = null;  // the REST stats have no stale count; keep the last one heard
  function onStats(data) {
    lastStats = data;
    if (data.agents && data.agents.stale != null) lastStale = data.agents.stale;
    if (data.work) sampleDepth(data.work.pending);
    if (view.name === 'overview') renderOverview();
  }

  // ---- refresh scheduling ------------------------------------------------------
  const dirty = new Set();
  let refreshTimer = null;
  let refreshing = false;
  let lastRefresh = 0;
  const VIEW_TOPIC = { overview: 'overview', fleet: 'fleet', work: 'work', item: 'item', dlq: 'dlq', targets: 'targets' };

  function markDirty(topic) {
    if (topic === 'all') for (const t of Object.values(VIEW_TOPIC)) dirty.add(t);
    else dirty.add(topic);
    scheduleRefresh();
  }
  function scheduleRefresh() {
    if (refreshTimer || refreshing) return;
    // Coalesce bursts: wait 200 ms for more events, and refetch at most once
    // a second per burst.
    const wait = Math.max(200, 1000 - (Date.now() - lastRefresh));
    refreshTimer = setTimeout(async () => {
      refreshTimer = null;
      const topic = VIEW_TOPIC[view.name];
      if (!dirty.has(topic)) return;
      dirty.delete(topic);
      refreshing = true;
      lastRefresh = Date.now();
      probe.refetches++;
      try { await loadView(false); } finally {
        refreshing = false;
        if (dirty.has(VIEW_TOPIC[view.name])) scheduleRefresh();
      }
    }, wait);
  }

  // ---- routing -----------------------------------------------------------------
  // Per view: its filters and the cursor of the page shown, so a live refetch
  // reads the same page again.
  const state = {
    fleet: { status: '', type: '', projectId: '', capability: '', cursor: '' },
    work: { status: '', projectId: '', capability: '', text: '', cursor: '' },
    dlq: { projectId: '', capability: '', cursor: '' },
    targets: { projectId: '', cursor: '' },
  };
  let view = { name: '', id: '' };
  let loadSeq = 0;

  function route() {
    if (document.body.dataset.auth !== 'ok') return;
    // A message about the previous view's action does not belong here.
    if (!socketDown) $('#banner').hidden = true;
    const hash = location.hash.replace(/^#\/?/, '');
    const [name, id] = hash.split('/');
    if (name === 'work' && id) view = { name: 'item', id: decodeURIComponent(id) };
    else view = { name: VIEW_TOPIC[name] && name !== 'item' ? name : 'overview', id: '' };
    for (const a of document.querySelectorAll('#nav a')) {
      a.classList.toggle('active', a.dataset.nav === (view.name === 'item' ? 'work' : view.name));
    }
    dirty.delete(VIEW_TOPIC[view.name]);
    loadView(true);
  }
  window.addEventListener('hashchange', route);

  async function loadView(fresh) {
    const seq = ++loadSeq;
    const main = $('#main');
    main.dataset.view = view.name;
    if (fresh) main.dataset.state = 'loading';
    try {
      const html = await VIEWS[view.name]();
      if (seq !== loadSeq) return;  // a newer load replaced this one
      const focused = document.activeElement && document.activeElement.id;
      main.innerHTML = html;
      if (focused && $('#' + focused) && $('#' + focused).tagName === 'INPUT') {
        const input = $('#' + focused);
        input.focus();
        input.setSelectionRange(input.value.length, input.value.length);
      }
      main.dataset.state = 'ready';
      probe.renders++;
      probe.lastRender = performance.now();
    } catch (e) {
      if (seq !== loadSeq) return;
      if (e.status === 401) return;
      if (e.status === 400 && /cursor/i.test(e.message || '')) {
        // The page moved under us (filters changed): start from the first.
        const s = state[view.name];
        if (s && s.cursor) { s.cursor = ''; return loadView(fresh); }
      }
      main.innerHTML = `<p class="error">Could not load this view: ${esc(e.message)}</p>`;
      main.dataset.state = 'error';
    }
  }

  function pager(page, s) {
    const from = page.total === 0 ? 0 : (s.offset || 0) + 1;
    return `<div class="pager"><button data-page="prev" ${page.prevCursor ? '' : 'disabled'}>&larr; Previous</button>
      <span data-role="range">${from}&ndash;${(s.offset || 0) + page.count} of ${page.total}</span>
      <button data-page="next" ${page.nextCursor ? '' : 'disabled'}>Next &rarr;</button></div>`;
  }
  // The array of a list page, whatever the list calls it.
  const listOf = (page) => page.workItems || page.items || page.agents || page.targets || page.entries || [];
  function rememberPage(s, page) {
    s.next = page.nextCursor;
    s.prev = page.prevCursor;
  }

  let projectsCache = { at: 0, list: [] };
  async function projects() {
    if (Date.now() - projectsCache.at > 10000) {
      const p = await api('GET', '/api/stats/projects');
      projectsCache = { at: Date.now(), list: p.projects || [] };
    }
    return projectsCache.list;
  }
  const options = (values, selected, all) =>
    `<option value="">${esc(all)}</option>` +
    values.map((v) => `<option value="${esc(v)}" ${v === selected ? 'selected' : ''}>${esc(v)}</option>`).join('');

  // ---- Overview ----------------------------------------------------------------
  let overviewStats = null;
  async function overview() {
    overviewStats = await api('GET', '/api/stats');
    lastStats = null;  // the read is newer than the last stats message
    if (overviewStats.totals) sampleDepth(overviewStats.totals.pendingWork);
    return overviewHtml();
  }
  function overviewHtml() {
    const t = (overviewStats && overviewStats.totals) || {};
    const live = lastStats || {};
    const w = live.work || {};
    const a = live.agents || {};
    const pick = (liveV, restV) => (liveV != null ? liveV : (restV != null ? restV : 0));
    const card = (n, l, href) => `<a class="card" ${href ? `href="${href}"` : ''} data-count="${esc(l)}"><div class="n">${esc(n)}</div><div class="l">${esc(l)}</div></a>`;
    const minutes = Math.max(1, Math.round((Date.now() - history.since) / 60000));
    return `<h2>Overview</h2>
      <div class="cards">
        ${card(pick(a.total != null && a.byStatus ? a.total - (a.byStatus.offline || 0) : null, t.agents), 'agents online or busy', '#/fleet')}
        ${card(a.stale != null ? a.stale : (lastStale != null ? lastStale : '–'), 'stale agents', '#/fleet')}
        ${card(pick(w.pending, t.pendingWork), 'pending', '#/work')}
        ${card(pick(w.active, t.activeWork), 'assigned or in progress', '#/work')}
        ${card(pick(w.completed, t.completedWork), 'completed', '#/work')}
        ${card(pick(w.failed, t.failedWork), 'failed', '#/work')}
        ${card(pick(w.cancelled, t.cancelledWork), 'cancelled', '#/work')}
        ${card(pick(w.deadLettered, t.deadLettered), 'dead letters', '#/dlq')}
        ${card(t.targets != null ? t.targets : 0, 'targets', '#/targets')}
        ${card(overviewStats ? overviewStats.totalProjects : 0, 'projects')}
      </div>
      <div class="charts">
        <div class="chart" data-chart="submitted"><div class="t">Submitted per minute</div>${barChart(lastHour(history.submitted).map((v) => v || 0), '#2f5fd0', 'submitted')}</div>
        <div class="chart" data-chart="completed"><div class="t">Completed per minute</div>${barChart(lastHour(history.completed).map((v) => v || 0), '#1e8a4c', 'completed')}</div>
        <div class="chart" data-chart="depth"><div class="t">Queue depth (pending)</div>${lineChart(lastHour(history.depth), '#b76e00', 'pending')}</div>
      </div>
      <p class="note muted">Charts cover the last hour, counted live by this tab from the event stream
        (${minutes < 60 ? 'history since ' + minutes + ' min ago' : 'full hour'}); the server keeps no history.</p>`;
  }
  function renderOverview() {
    if (view.name !== 'overview' || !overviewStats) return;
    $('#main').innerHTML = overviewHtml();
  }

  // ---- Fleet ---------------------------------------------------------------------
  async function fleet() {
    const s = state.fleet;
    const filter = { status: s.status, type: s.type, projectId: s.projectId, capability: s.capability };
    const [page, projs, overall, online, busy, offline, copilot, claude] = await Promise.all([
      api('GET', '/api/agents' + qs(Object.assign({ limit: PAGE, cursor: s.cursor }, filter))),
      projects(), api('GET', '/api/stats'),
      total('/api/agents', { status: 'online' }), total('/api/agents', { status: 'busy' }),
      total('/api/agents', { status: 'offline' }),
      total('/api/agents', { type: 'copilot-cli' }), total('/api/agents', { type: 'claude-code' }),
    ]);
    rememberPage(s, page);
    const stats = overall && overall.byProject;
    const byProject = projs.slice(0, 12).map((p) => `<span class="badge">${esc(p)}: ${stats && stats[p] ? esc(stats[p].agents) : '?'}</span>`).join('');
    const rows = listOf(page).map((a) => {
      const sd = a.shutdownRequested;
      return `<tr data-agent-guid="${esc(a.guid)}" data-status="${esc(a.status || '')}" data-stale="${a.stale ? 'true' : 'false'}">
        <td><div>${esc(a.handle || '')}</div><div class="mono muted">${esc(a.guid)}</div></td>
        <td>${esc(a.agentType)}${a.role ? `<div class="muted">${esc(a.role)}</div>` : ''}</td>
        <td>${badge(a.status || 'unknown')}${a.stale ? badge('stale', 'stale') : ''}</td>
        <td>${esc(a.projectId || 'default')}</td>
        <td>${(a.capabilities || []).map((c) => badge(c, '')).join('')}</td>
        <td>${(a.boundaries || []).length ? a.boundaries.map((c) => badge(c, '')).join('') : '<span class="muted">any</span>'}</td>
        <td>${esc(a.currentTaskCount != null ? a.currentTaskCount : 0)}${a.maxConcurrentTasks ? ' / ' + esc(a.maxConcurrentTasks) : ''}</td>
        <td>${when(a.lastHeartbeat)}</td>
        <td>${sd ? `<span class="muted">shutdown requested ${when(sd.requestedAt)} (${esc(sd.reason || '')})</span>`
                 : (a.status === 'offline' ? '' : `<button data-action="shutdown" data-guid="${esc(a.guid)}">Request shutdown</button>`)}</td></tr>`;
    }).join('');
    return `<h2>Fleet</h2>
      <div class="cards">
        ${[['online', online], ['busy', busy], ['offline', offline]].map(([k, n]) => `<div class="card link ${s.status === k ? 'sel' : ''}" data-filter-status="${k}"><div class="n">${n}</div><div class="l">${k}</div></div>`).join('')}
        ${[['copilot-cli', copilot], ['claude-code', claude]].map(([k, n]) => `<div class="card link ${s.type === k ? 'sel' : ''}" data-filter-type="${k}"><div class="n">${n}</div><div class="l">${k}</div></div>`).join('')}
      </div>
      <div class="muted" style="margin-bottom:8px">By project: ${byProject || '–'}</div>
      <div class="filters">
        <select id="f-agent-status">${options(['online', 'busy', 'offline'], s.status, 'any status')}</select>
        <select id="f-agent-type">${options(['copilot-cli', 'claude-code'], s.type, 'any type')}</select>
        <select id="f-agent-project">${options(projs, s.projectId, 'all projects')}</select>
        <input id="f-agent-cap" placeholder="capability" value="${esc(s.capability)}">
      </div>
      ${pager(page, s)}
      <table id="agents"><thead><tr><th>Agent</th><th>Type</th><th>Status</th><th>Project</th><th>Capabilities</th><th>Boundaries</th><th>Tasks</th><th>Heartbeat</th><th></th></tr></thead>
      <tbody>${rows || '<tr><td colspan="9" class="empty">No agents.</td></tr>'}</tbody></table>`;
  }

  // ---- Work board ----------------------------------------------------------------
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
  async function work() {
    const s = state.work;
    const filter = { status: s.status, projectId: s.projectId, capability: s.capability };
    const base = { projectId: s.projectId, capability: s.capability };
    const text = s.text.trim().toLowerCase();
    const listing = UUID.test(text)
      ? api('GET', '/api/work/' + text).then((item) => ({ items: [item], count: 1, total: 1 }),
        (e) => { if (e.status === 404) return { items: [], count: 0, total: 0 }; throw e; })
      : api('GET', '/api/work' + qs(Object.assign({ limit: PAGE, cursor: s.cursor }, filter)));
    const [page, projs, ...counts] = await Promise.all([listing, projects(),
      ...WORK_STATUSES.map((st) => total('/api/work', Object.assign({ status: st }, base)))]);
    rememberPage(s, page);
    let items = listOf(page);
    if (text && !UUID.test(text)) {
      items = items.filter((w) => [w.id, w.taskId, w.description, w.assignedTo, w.capability, w.boundary,
        w.assignedToAgent && w.assignedToAgent.handle].some((f) => f && String(f).toLowerCase().includes(text)));
    }
    const rows = items.map((w) => `<tr data-work-id="${esc(w.id)}" data-status="${esc(w.status)}">
        <td><a href="#/work/${esc(w.id)}" class="mono">${esc(w.id.slice(0, 8))}</a><div class="muted">${esc(w.taskId)}</div></td>
        <td class="status">${badge(w.status)}${w.status === 'pending' && w.nextAttemptAt ? `<div class="muted" data-due="${esc(w.nextAttemptAt)}">due ${when(w.nextAttemptAt)}</div>` : ''}</td>
        <td>${esc((w.description || '').slice(0, 120))}</td>
        <td>${esc(w.capability)}</td><td>${esc(w.boundary)}</td><td>${esc(w.projectId)}</td>
        <td>${esc(w.priority)}</td><td>${esc(w.attempts)} / ${esc(w.maxAttempts)}</td>
        <td>${w.assignedToAgent ? esc(w.assignedToAgent.handle || w.assignedTo) : esc(w.assignedTo || '')}</td>
        <td>${when(w.updatedAt || w.offeredAt)}</td></tr>`).join('');
    return `<h2>Work</h2>
      <div class="cards">${WORK_STATUSES.map((st, i) => `<div class="card link ${s.status === st ? 'sel' : ''}" data-filter-work="${st}" data-count="${st}"><div class="n">${counts[i]}</div><div class="l">${st}</div></div>`).join('')}</div>
      <div class="filters">
        <select id="f-work-status">${options(WORK_STATUSES, s.status, 'any status')}</select>
        <select id="f-work-project">${options(projs, s.projectId, 'all projects')}</select>
        <input id="f-work-cap" placeholder="capability" value="${esc(s.capability)}">
        <input id="f-work-text" type="search" placeholder="text on this page, or an item id" value="${esc(s.text)}">
      </div>
      ${pager(page, s)}
      <table id="work"><thead><tr><th>Item</th><th>Status</th><th>Description</th><th>Capability</th><th>Boundary</th><th>Project</th><th>Priority</th><th>Attempts</th><th>Assigned to</th><th>Updated</th></tr></thead>
      <tbody>${rows || '<tr><td colspan="10" class="empty">No work items.</td></tr>'}</tbody></table>
      ${text && !UUID.test(text) ? '<p class="muted">The text filter applies to the page shown; paste an item id to look it up directly.</p>' : ''}`;
  }

  // ---- Work item -------------------------------------------------------------------
  async function item() {
    let w;
    try {
      w = await api('GET', '/api/work/' + encodeURIComponent(view.id));
    } catch (e) {
      if (e.status === 404) return `<h2>Work item</h2><p class="error">No work item ${esc(view.id)} (it may have been removed by retention).</p><p><a href="#/work">Back to the work board</a></p>`;
      throw e;
    }
    const errors = w.errors || [];
    const used = new Set();
    const steps = (w.transitions || []).map((t) => {
      let text = '';
      if (t.event === 'submitted') {
        text = t.requeued ? 'submitted again (re-queued' + (t.recreated ? ', recreated' : '') + ')' : 'submitted';
        if (t.nextAttemptAt) text += `, not claimable before ${esc(t.nextAttemptAt)}`;
      }
      else if (t.event === 'assigned') text = `assigned to ${esc(t.agentGuid || '?')} (attempt ${esc(t.attempt)})`;
      else if (t.event === 'started') text = `started by ${esc(t.agentGuid || '?')}`;
      else if (t.event === 'completed') text = `completed by ${esc(t.agentGuid || '?')}`;
      else if (t.event === 'cancelled') text = 'cancelled' + (t.agentGuid ? ` (was with ${esc(t.agentGuid)})` : '');
      else if (t.event === 'failed') {
        const e = typeof t.error === 'number' ? errors[t.error] : null;
        if (e) used.add(t.error);
        text = `failed (attempt ${esc(t.attempt)})${t.retrying ? ', retrying' : ''}` +
          `${t.retrying && t.nextAttemptAt ? ` from ${esc(t.nextAttemptAt)}` : ''}${t.deadLettered ? ', dead-lettered' : ''}` +
          (e ? `: <span class="error">${esc(e.message)}</span>${e.code ? ` <span class="mono">${esc(e.code)}</span>` : ''}` : '');
      } else text = esc(t.event);
      return `<li class="${esc(t.event)}" data-step="${esc(t.event)}"><span class="when">${esc(t.at)}</span>${text}</li>`;
    });
    if (w.status === 'in-progress' && w.progress != null) {
      steps.push(`<li data-step="progress"><span class="when">${esc(w.updatedAt || '')}</span>progress ${esc(w.progress)}%</li>`);
    }
    const others = errors.filter((_, i) => !used.has(i));
    const row = (k, v) => (v === undefined || v === null || v === '' ? '' : `<dt>${esc(k)}</dt><dd>${v}</dd>`);
    return `<p><a href="#/work">&larr; Work board</a></p>
      <h2>Work item <span class="mono">${esc(w.id)}</span> ${badge(w.status)}</h2>
      <div class="cols"><div>
        <dl class="kv" id="item" data-status="${esc(w.status)}">
          ${row('task', esc(w.taskId))}${row('description', esc(w.description))}
          ${row('project', esc(w.projectId))}${row('capability', esc(w.capability))}${row('boundary', esc(w.boundary))}
          ${row('priority', esc(w.priority))}${row('attempts', esc(w.attempts) + ' / ' + esc(w.maxAttempts))}
          ${row('assigned to', w.assignedTo ? esc(w.assignedTo) + (w.assignedToAgent && w.assignedToAgent.handle ? ' (' + esc(w.assignedToAgent.handle) + ')' : '') : '')}
          ${row('lease expires', w.leaseExpiresAt ? when(w.leaseExpiresAt) : '')}
          ${row('next attempt', w.status === 'pending' && w.nextAttemptAt ? when(w.nextAttemptAt) + ' (not claimable before)' : '')}
          ${row('retry policy', w.retry ? esc(Object.entries(w.retry).map(([k, v]) => k + ' ' + v).join(', ')) : '')}
          ${row('result', w.result && w.result.summary ? esc(w.result.summary) : '')}
          ${row('cancel reason', esc(w.cancelReason))}
        </dl>
        <p>${FINAL.has(w.status) ? '' : `<button class="danger" data-action="cancel" data-id="${esc(w.id)}">Cancel this item</button>`}</p>
      </div><div>
        <h3>Timeline</h3><ol class="timeline" id="timeline">${steps.join('') || '<li>No transitions recorded.</li>'}</ol>
        ${others.length ? `<h3>Other errors</h3><ul class="errs">${others.map((e) => `<li>${esc(e.occurredAt)} attempt ${esc(e.attempt)}: ${esc(e.message)}${e.code ? ' (' + esc(e.code) + ')' : ''}</li>`).join('')}</ul>` : ''}
      </div></div>`;
  }

  // ---- Dead letters ------------------------------------------------------------------
  async function dlq() {
    const s = state.dlq;
    const filter = { projectId: s.projectId, capability: s.capability };
    const [page, projs] = await Promise.all([
      api('GET', '/api/dlq' + qs(Object.assign({ limit: PAGE, cursor: s.cursor }, filter))), projects()]);
    rememberPage(s, page);
    const rows = listOf(page).map((d) => {
      const w = d.workItem || {};
      const errs = d.errors || [];
      return `<tr data-dlq-id="${esc(d.id)}">
        <td><a href="#/work/${esc(d.id)}" class="mono">${esc(d.id.slice(0, 8))}</a><div class="muted">${esc(w.taskId)}</div></td>
        <td>${esc((w.description || '').slice(0, 100))}</td>
        <td>${esc(w.capability)}</td><td>${esc(w.projectId)}</td>
        <td>${esc(d.reason)}</td><td>${esc(d.attempts)}</td><td>${when(d.failedAt)}</td>
        <td>${errs.length ? `<details><summary>${errs.length} failure${errs.length > 1 ? 's' : ''}: ${esc(errs[errs.length - 1].message)}</summary>
          <ol class="errs">${errs.map((e) => `<li>${esc(e.occurredAt)} attempt ${esc(e.attempt)}${e.agentGuid ? ' on ' + esc(e.agentGuid) : ''}: ${esc(e.message)}${e.code ? ' (' + esc(e.code) + ')' : ''}${e.recoverable ? '' : ' [not recoverable]'}</li>`).join('')}</ol></details>` : ''}</td>
        <td><button data-action="retry" data-id="${esc(d.id)}">Retry</button>
            <button data-action="discard" data-id="${esc(d.id)}" class="danger">Discard</button></td></tr>`;
    }).join('');
    return `<h2>Dead letters</h2>
      <div class="filters">
        <select id="f-dlq-project">${options(projs, s.projectId, 'all projects')}</select>
        <input id="f-dlq-cap" placeholder="capability" value="${esc(s.capability)}">
      </div>
      ${pager(page, s)}
      <table id="dlq"><thead><tr><th>Item</th><th>Description</th><th>Capability</th><th>Project</th><th>Reason</th><th>Attempts</th><th>Failed</th><th>Failure history</th><th></th></tr></thead>
      <tbody>${rows || '<tr><td colspan="9" class="empty">No dead letters.</td></tr>'}</tbody></table>`;
  }

  // ---- Targets -------------------------------------------------------------------------
  let mechanisms = null;
  async function targets() {
    const s = state.targets;
    const [page, projs, mech] = await Promise.all([
      api('GET', '/api/targets' + qs(Object.assign({ limit: PAGE, cursor: s.cursor }, { projectId: s.projectId }))),
      projects(), mechanisms ? Promise.resolve(mechanisms) : api('GET', '/api/spinup/mechanisms')]);
    mechanisms = mech;
    rememberPage(s, page);
    const allowed = (m) => mech.mechanisms && mech.mechanisms[m] === true;
    const rows = listOf(page).map((t) => {
      const ls = t.lastSpinUp;
      const on = allowed(t.mechanism);
      const disabled = t.status === 'disabled';
      return `<tr data-target-id="${esc(t.id)}" data-status="${esc(t.status)}" data-mechanism-allowed="${on}">
        <td><b>${esc(t.name)}</b><div class="muted">${esc(t.description || '')}</div></td>
        <td>${esc(t.projectId)}</td><td>${esc(t.agentType)}</td>
        <td>${esc(t.mechanism)}${on ? '' : `<div class="off">off on this server (${esc(MECH_SETTING[t.mechanism] || 'spinup.allow*')})</div>`}</td>
        <td>${badge(t.status)}</td>
        <td>${badge(t.healthStatus || 'unknown')}${t.lastHealthCheck ? `<div class="muted">${when(t.lastHealthCheck)}</div>` : ''}${t.lastError ? `<div class="error">${esc(t.lastError)}</div>` : ''}</td>
        <td>${esc(t.useCount)}${t.lastUsedAt ? `<div class="muted">${when(t.lastUsedAt)}</div>` : ''}</td>
        <td>${ls ? `${when(ls.time)} ${badge(ls.outcome || '?')}${ls.error ? `<div class="error">${esc(ls.error)}</div>` : ''}` : '<span class="muted">never</span>'}</td>
        <td>${disabled ? `<button data-action="enable" data-id="${esc(t.id)}">Enable</button>` : `<button data-action="disable" data-id="${esc(t.id)}">Disable</button>`}
          ${on ? `<button data-action="test" data-id="${esc(t.id)}">Test</button>` : ''}
          ${on && !disabled ? `<button data-action="spin-up" data-id="${esc(t.id)}">Spin up</button>` : ''}
          ${on ? '' : '<span class="off">test and spin-up off</span>'}</td></tr>`;
    }).join('');
    const mechList = Object.entries(mech.mechanisms || {}).map(([m, v]) => badge(m + (v ? ' on' : ' off'), v ? 's-available' : 's-disabled')).join('');
    return `<h2>Targets</h2>
      <div class="muted" style="margin-bottom:8px">Spin-up mechanisms on this server: ${mechList}; at most ${esc(mech.maxConcurrent)} at once.</div>
      <div class="filters"><select id="f-target-project">${options(projs, s.projectId, 'all projects')}</select></div>
      ${pager(page, s)}
      <table id="targets"><thead><tr><th>Target</th><th>Project</th><th>Agent type</th><th>Mechanism</th><th>Status</th><th>Health</th><th>Uses</th><th>Last spin-up</th><th></th></tr></thead>
      <tbody>${rows || '<tr><td colspan="9" class="empty">No targets.</td></tr>'}</tbody></table>`;
  }

  const VIEWS = { overview, fleet, work, item, dlq, targets };

  // ---- interaction -----------------------------------------------------------------------
  const FILTERS = {
    'f-agent-status': ['fleet', 'status'], 'f-agent-type': ['fleet', 'type'], 'f-agent-project': ['fleet', 'projectId'],
    'f-agent-cap': ['fleet', 'capability'], 'f-work-status': ['work', 'status'], 'f-work-project': ['work', 'projectId'],
    'f-work-cap': ['work', 'capability'], 'f-work-text': ['work', 'text'], 'f-dlq-project': ['dlq', 'projectId'],
    'f-dlq-cap': ['dlq', 'capability'], 'f-target-project': ['targets', 'projectId'],
  };
  let inputTimer = null;
  function setFilter(viewName, key, value) {
    const s = state[viewName];
    if (s[key] === value) return;
    s[key] = value;
    s.cursor = '';
    s.offset = 0;
    loadView(false);
  }
  $('#main').addEventListener('change', (e) => {
    const f = FILTERS[e.target.id];
    if (f && e.target.tagName === 'SELECT') setFilter(f[0], f[1], e.target.value);
  });
  $('#main').addEventListener('input', (e) => {
    const f = FILTERS[e.target.id];
    if (!f || e.target.tagName !== 'INPUT') return;
    clearTimeout(inputTimer);
    inputTimer = setTimeout(() => setFilter(f[0], f[1], e.target.value), 300);
  });

  async function act(label, fn) {
    try {
      await fn();
      flash(label, false);
    } catch (e) {
      if (e.status !== 401) flash(label + ' failed: ' + e.message, true);
    }
    markDirty(VIEW_TOPIC[view.name]);
  }

  $('#main').addEventListener('click', async (e) => {
    const el = e.target.closest('button, .card.link');
    if (!el) return;
    const s = state[view.name];
    if (el.dataset.page && s) {
      const cursor = el.dataset.page === 'next' ? s.next : s.prev;
      if (!cursor) return;
      s.offset = Math.max(0, (s.offset || 0) + (el.dataset.page === 'next' ? PAGE : -PAGE));
      s.cursor = cursor;
      return loadView(false);
    }
    if (el.dataset.filterStatus !== undefined) return setFilter('fleet', 'status', state.fleet.status === el.dataset.filterStatus ? '' : el.dataset.filterStatus);
    if (el.dataset.filterType !== undefined) return setFilter('fleet', 'type', state.fleet.type === el.dataset.filterType ? '' : el.dataset.filterType);
    if (el.dataset.filterWork !== undefined) return setFilter('work', 'status', state.work.status === el.dataset.filterWork ? '' : el.dataset.filterWork);
    const id = el.dataset.id;
    switch (el.dataset.action) {
      case 'shutdown':
        if (await confirmDialog('Request shutdown', `Ask agent <span class="mono">${esc(el.dataset.guid)}</span> to shut down (gracefully)? Weft records the request; the agent decides when to stop.`, 'Request shutdown')) {
          await act('Shutdown requested', () => api('POST', `/api/agents/${encodeURIComponent(el.dataset.guid)}/shutdown`, { graceful: true }));
        }
        break;
      case 'cancel':
        if (await confirmDialog('Cancel work item', `Cancel <span class="mono">${esc(id)}</span>? An agent working on it gets 409 on its next report.`, 'Cancel item')) {
          await act('Work item cancelled', () => api('POST', `/api/work/${encodeURIComponent(id)}/cancel`));
        }
        break;
      case 'retry':
        if (await confirmDialog('Retry dead letter', `Put <span class="mono">${esc(id)}</span> back to pending? <label><input type="checkbox" id="reset-attempts"> reset attempts to 0</label>`, 'Retry')) {
          // The dialog is hidden, not removed: the checkbox is still readable.
          const reset = !!($('#reset-attempts') && $('#reset-attempts').checked);
          await act('Re-queued', () => api('POST', `/api/dlq/${encodeURIComponent(id)}/retry`, { resetAttempts: reset }));
        }
        break;
      case 'discard':
        if (await confirmDialog('Discard dead letter', `Delete the dead-letter entry <span class="mono">${esc(id)}</span>? The work item stays failed.`, 'Discard')) {
          await act('Discarded', () => api('DELETE', `/api/dlq/${encodeURIComponent(id)}`));
        }
        break;
      case 'enable':
      case 'disable':
        await act(`Target ${el.dataset.action}d`, () => api('POST', `/api/targets/${encodeURIComponent(id)}/${el.dataset.action}`));
        break;
      case 'test':
        el.disabled = true;
        try {
          const r = await api('POST', `/api/targets/${encodeURIComponent(id)}/test`);
          flash(r.healthy ? `Healthy (${r.latencyMs} ms)` : `Unhealthy: ${r.error || 'no detail'}`, !r.healthy);
        } catch (err) {
          if (err.status !== 401) flash('Test failed: ' + err.message, true);
        }
        markDirty('targets');
        break;
      case 'spin-up':
        if (await confirmDialog('Spin up', 'Start an agent from this target now?', 'Spin up')) {
          await act('Spin-up started', () => api('POST', `/api/targets/${encodeURIComponent(id)}/spin-up`));
        }
        break;
      default:
    }
  });

  // Relative times drift; the Overview charts move with the clock.
  setInterval(() => { if (view.name === 'overview') renderOverview(); }, 30000);

  start();
})();
