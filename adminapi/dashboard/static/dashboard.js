// dynup dashboard: polls the admin API's JSON endpoints and renders them. No framework, nothing fetched
// from elsewhere; every value goes into the page as text, never as HTML (NACK details come from nodes).
'use strict';
(() => {
  // ?refresh=SECONDS changes the poll interval (0.5 to 60; default 2).
  const POLL_MS = Math.round(1000 * Math.min(60, Math.max(0.5, Number(new URLSearchParams(location.search).get('refresh')) || 2)));
  const CHANGES = 20;        // recent changes shown
  const SERVER_CHIPS = 40;   // servers shown per upstream before "+N more"

  const TYPE_NAMES = {
    'type.googleapis.com/envoy.config.listener.v3.Listener': 'LDS',
    'type.googleapis.com/envoy.config.route.v3.RouteConfiguration': 'RDS',
    'type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration': 'SRDS',
    'type.googleapis.com/envoy.config.route.v3.VirtualHost': 'VHDS',
    'type.googleapis.com/envoy.config.cluster.v3.Cluster': 'CDS',
    'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment': 'EDS',
    'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret': 'SDS',
    'type.googleapis.com/envoy.service.runtime.v3.Runtime': 'RTDS',
    'type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig': 'ECDS',
  };
  const TYPE_ORDER = ['LDS', 'RDS', 'SRDS', 'VHDS', 'CDS', 'EDS', 'SDS', 'RTDS', 'ECDS'];
  const typeName = (url) => TYPE_NAMES[url] || url.slice(url.lastIndexOf('.') + 1);
  const byType = (a, b) => TYPE_ORDER.indexOf(typeName(a)) - TYPE_ORDER.indexOf(typeName(b)) || a.localeCompare(b);

  const STATE_LABEL = { 'in-sync': 'in sync', pending: 'pending', nacked: 'NACKed' };

  // ---- how state is derived (docs/dashboard.md says the same) ----

  // A type is NACKed while the last version sent was rejected (a newer send supersedes the NACK), pending
  // while the last version sent is not ACKed yet, and in sync when it is.
  function typeState(ts) {
    if (ts.last_nack && ts.last_nack.version === ts.sent_version) return 'nacked';
    if (!ts.acked_version || ts.acked_version !== ts.sent_version) return 'pending';
    return 'in-sync';
  }

  // A node is NACKed if any type is, else pending if any type is (or nothing was sent yet), else in sync.
  function nodeState(n) {
    const states = Object.values(n.types || {}).map(typeState);
    if (states.includes('nacked')) return 'nacked';
    if (states.length === 0 || states.includes('pending')) return 'pending';
    return 'in-sync';
  }

  // A change is NACKed if any node rejected it, pending while any node has not ACKed a version that holds
  // it, rolled out once every node of the affected groups has, and "no nodes" when none was connected.
  function changeState(c) {
    const n = c.nodes || {};
    if (n.nacked > 0) return 'nacked';
    if (n.pending > 0) return 'pending';
    if (n.acked > 0) return 'in-sync';
    return 'none';
  }
  const CHANGE_LABEL = { 'in-sync': 'rolled out', pending: 'pending', nacked: 'NACKed', none: 'no nodes' };

  function serverHealth(s) {
    if (s.down) return { state: 'down', label: 'down', why: 'marked down by its definition' };
    if (s.health && s.health.status && s.health.status !== 'healthy') {
      const why = [s.health.source, s.health.reason].filter(Boolean).join(': ');
      return { state: 'unhealthy', label: s.health.status, why: why + (s.health.since ? ' (since ' + s.health.since + ')' : '') };
    }
    return { state: 'healthy', label: 'healthy', why: '' };
  }

  // ---- DOM helpers ----

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }
  const $ = (id) => document.getElementById(id);
  const COLOR = { 'in-sync': 'ok', healthy: 'ok', pending: 'warn', degraded: 'warn', nacked: 'bad', unhealthy: 'bad', down: 'bad', none: 'muted' };
  const badge = (state, label, title) => h('span', { class: 'badge ' + (COLOR[state] || 'muted'), 'data-state': state, title }, label);
  const short = (v) => (v && v.length > 10 ? v.slice(0, 8) + '…' : v || '—');
  const addr = (s) => (s.host.includes(':') ? '[' + s.host + ']' : s.host) + ':' + s.port;

  // Relative times are refreshed every tick without re-rendering, so expanded rows and selections survive.
  function when(iso) {
    if (!iso || iso.startsWith('0001-')) return h('span', {}, '—');
    return h('time', { datetime: iso, title: new Date(iso).toLocaleString() }, ago(iso));
  }
  function ago(iso) {
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return s + 's ago';
    if (s < 3600) return Math.floor(s / 60) + 'm ago';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm ago';
    return Math.floor(s / 86400) + 'd ago';
  }
  function tickTimes() {
    for (const t of document.querySelectorAll('time[datetime]')) t.textContent = ago(t.getAttribute('datetime'));
  }
  const ms = (v) => (v === undefined || v === null ? '—' : v < 1000 ? Math.round(v) + ' ms' : (v / 1000).toFixed(1) + ' s');

  function table(head, rows, empty) {
    if (rows.length === 0) return h('p', { class: 'empty' }, empty);
    return h('table', {}, h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))), h('tbody', {}, rows));
  }

  // ---- sections ----

  // rejections maps an upstream to the nodes whose current NACK is attributed to a change of it.
  function rejections(nodes) {
    const out = {};
    for (const n of nodes) {
      for (const [url, ts] of Object.entries(n.types || {})) {
        if (typeState(ts) !== 'nacked') continue;
        for (const c of ts.last_nack.changes || []) {
          for (const u of c.upstreams || []) (out[u] = out[u] || []).push(n.id + ' (' + typeName(url) + '): ' + ts.last_nack.detail);
        }
      }
    }
    return out;
  }

  function renderUpstreams(upstreams, rejected, filter) {
    const shown = upstreams.filter((u) => !filter || u.name.toLowerCase().includes(filter) ||
      (u.servers || []).some((s) => addr(s).includes(filter)));
    $('upstreams-count').textContent = filter ? shown.length + ' of ' + upstreams.length : upstreams.length;
    const rows = shown.map((u) => {
      const servers = u.servers || [];
      const health = servers.map(serverHealth);
      const up = health.filter((x) => x.state === 'healthy').length;
      const chips = servers.map((s, i) => h('li', {
        class: 'server ' + COLOR[health[i].state], 'data-server': addr(s), 'data-health': health[i].state,
        title: [health[i].why, s.source && 'from ' + s.source, s.zone && 'zone ' + s.zone].filter(Boolean).join(' · ') || null,
      }, h('span', { class: 'addr' }, addr(s)),
      s.weight > 1 ? h('span', { class: 'tag' }, 'w' + s.weight) : null,
      s.level > 0 || s.backup ? h('span', { class: 'tag' }, s.backup && !s.level ? 'backup' : 'level ' + s.level) : null,
      s.zone ? h('span', { class: 'tag' }, s.zone) : null,
      h('span', { class: 'health' }, health[i].label)));
      const list = chips.length > SERVER_CHIPS
        ? [h('ul', { class: 'servers' }, chips.slice(0, SERVER_CHIPS)),
          h('details', { 'data-key': 'servers:' + u.name }, h('summary', {}, '+' + (chips.length - SERVER_CHIPS) + ' more'), h('ul', { class: 'servers' }, chips.slice(SERVER_CHIPS)))]
        : h('ul', { class: 'servers' }, chips);
      const lb = u.lb && u.lb.policy ? u.lb.policy.replace(/_/g, ' ') : 'round robin';
      const rej = rejected[u.name] || [];
      return h('tr', { 'data-upstream': u.name },
        h('th', { scope: 'row' }, h('span', { class: 'name' }, u.name),
          (u.domains || []).length ? h('div', { class: 'sub' }, u.domains.join(', ')) : null),
        h('td', { class: 'num' }, badge(up === servers.length ? 'healthy' : up === 0 ? 'down' : 'degraded',
          up + '/' + servers.length, up + ' of ' + servers.length + ' servers healthy')),
        h('td', {}, list, rej.length ? h('p', { class: 'rejected', 'data-rejected': 'true' }, 'Rejected by ' + rej.join('; ')) : null),
        h('td', { class: 'sub' }, lb, u.health_check ? h('div', {}, 'active checks') : null));
    });
    $('upstreams').replaceChildren(table(['Upstream', 'Healthy', 'Servers', 'Balancing'], rows,
      filter ? 'No upstream matches the filter.' : 'No upstreams yet. Create one with POST /upstream/{name}.'));
  }

  function renderNodes(nodes, filter) {
    const shown = nodes.filter((n) => !filter || n.id.toLowerCase().includes(filter) ||
      groupName(n.group).includes(filter) || (n.cluster || '').toLowerCase().includes(filter));
    $('nodes-count').textContent = filter ? shown.length + ' of ' + nodes.length : nodes.length;
    const rows = shown.map((n) => {
      const state = nodeState(n);
      const urls = Object.keys(n.types || {}).sort(byType);
      const types = urls.map((url) => {
        const ts = n.types[url], st = typeState(ts);
        const title = 'sent ' + (ts.sent_version || '—') + ' (' + ts.sends + ' sends), ACKed ' + (ts.acked_version || '—');
        return h('li', { class: 'type ' + COLOR[st], 'data-type': typeName(url), 'data-state': st, title },
          typeName(url), ' ', h('code', {}, short(ts.acked_version)), st === 'pending' ? ' → ' + short(ts.sent_version) : null);
      });
      const nacks = urls.filter((url) => typeState(n.types[url]) === 'nacked').map((url) => {
        const k = n.types[url].last_nack;
        const culprits = (k.changes || []).map((c) => '#' + c.revision + ((c.upstreams || []).length ? ' (' + c.upstreams.join(', ') + ')' : ''));
        return h('div', { class: 'nack' }, h('strong', {}, typeName(url) + ' ' + short(k.version) + ': '), k.detail,
          culprits.length ? h('div', { class: 'sub' }, 'caused by change ' + culprits.join(', ')) : null, h('div', { class: 'sub' }, when(k.at)));
      });
      return h('tr', { 'data-node': n.id, 'data-stream': n.stream, 'data-state': state },
        h('th', { scope: 'row' }, h('span', { class: 'name' }, n.id), n.cluster ? h('div', { class: 'sub' }, n.cluster) : null),
        h('td', {}, badge(state, STATE_LABEL[state], state === 'pending' && urls.length === 0 ? 'nothing sent yet' : null)),
        h('td', {}, groupName(n.group)),
        h('td', {}, h('ul', { class: 'types' }, types), nacks),
        h('td', { class: 'sub' }, n.user_agent || '—'),
        h('td', { class: 'sub' }, when(n.connected_since)));
    });
    $('nodes').replaceChildren(table(['Node', 'State', 'Group', 'Versions (ACKed)', 'Client', 'Connected'], rows,
      filter ? 'No node matches the filter.' : 'No node is connected.'));
  }

  function groupName(g) { return g ? g.kind + (g.zone ? '/' + g.zone : '') : '—'; }

  function renderChanges(changes, nodes) {
    const byStream = Object.fromEntries(nodes.map((n) => [String(n.stream), n.id]));
    $('changes-count').textContent = changes.length ? 'last ' + changes.length : '';
    const rows = changes.map((c) => {
      const st = changeState(c), n = c.nodes || {};
      const rej = Object.entries(c.rejections || {}).map(([stream, detail]) => h('div', { class: 'nack' }, (byStream[stream] || 'stream ' + stream) + ': ' + detail));
      return h('tr', { 'data-change': c.revision, 'data-state': st },
        h('th', { scope: 'row' }, '#' + c.revision),
        h('td', {}, (c.upstreams || []).length ? c.upstreams.join(', ') : h('span', { class: 'sub' }, 'options')),
        h('td', { class: 'sub' }, c.source || '—'),
        h('td', { class: 'sub' }, when(c.accepted_at)),
        h('td', {}, badge(st, CHANGE_LABEL[st]), ' ',
          h('span', { class: 'counts' }, n.acked + ' ACKed · ' + n.nacked + ' NACKed · ' + n.pending + ' pending'), rej),
        h('td', { class: 'num' }, ms(c.first_ack_ms)),
        h('td', { class: 'num' }, ms(c.last_ack_ms)));
    });
    $('changes').replaceChildren(table(['Change', 'Upstreams', 'Source', 'Accepted', 'Propagation', 'First ACK', 'Last ACK'], rows,
      'No change since dynup started.'));
  }

  function renderGroups(groups, nodes) {
    $('groups-count').textContent = groups.length || '';
    const rows = groups.map((g) => {
      const name = groupName(g.group);
      const members = nodes.filter((n) => groupName(n.group) === name).length;
      const versions = Object.keys(g.versions || {}).sort(byType).map((url) => h('li', { class: 'type' }, typeName(url), ' ', h('code', {}, short(g.versions[url]))));
      return h('tr', { 'data-group': name },
        h('th', { scope: 'row' }, name),
        h('td', { class: 'num' }, members),
        h('td', {}, '#' + g.revision),
        h('td', {}, h('ul', { class: 'types' }, versions)),
        h('td', { class: 'sub' }, when(g.published_at)),
        h('td', {}, g.last_error ? h('span', { class: 'nack' }, 'revision ' + g.failed_revision + ' failed: ' + g.last_error) : '—'));
    });
    $('groups').replaceChildren(table(['Group', 'Nodes', 'Revision', 'Versions', 'Published', 'Last error'], rows,
      'Nothing published yet: a snapshot is built when the first node of a group connects.'));
  }

  function renderSources(src) {
    const list = (src && src.sources) || [];
    $('sources-section').hidden = list.length === 0;
    $('sources-count').textContent = list.length || '';
    $('sources').replaceChildren(table(['Source', 'Index', 'Last success', 'Last error', 'Failures in a row'], list.map((s) =>
      h('tr', { 'data-source': s.name, 'data-state': s.consecutive_failures > 0 ? 'nacked' : 'in-sync' },
        h('th', { scope: 'row' }, s.name), h('td', { class: 'num' }, s.last_index || '—'), h('td', { class: 'sub' }, when(s.last_success)),
        h('td', {}, s.last_error ? h('span', { class: 'nack' }, s.last_error) : '—'), h('td', { class: 'num' }, s.consecutive_failures))), ''));
  }

  function renderSummary(detail, nodes, changes) {
    const servers = detail.upstreams.flatMap((u) => u.servers || []);
    const unhealthy = servers.filter((s) => serverHealth(s).state !== 'healthy').length;
    const count = (st) => nodes.filter((n) => nodeState(n) === st).length;
    const last = changes[0];
    const card = (label, value, sub, state) => h('div', { class: 'card' + (state ? ' ' + state : '') }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), h('div', { class: 'sub' }, sub));
    $('summary').replaceChildren(
      card('Upstreams', detail.upstreams.length, servers.length + (servers.length === 1 ? ' server' : ' servers') + (unhealthy ? ', ' + unhealthy + ' unhealthy or down' : ''), unhealthy ? 'warn' : ''),
      card('Nodes', nodes.length, count('in-sync') + ' in sync · ' + count('pending') + ' pending · ' + count('nacked') + ' NACKed', count('nacked') ? 'bad' : count('pending') ? 'warn' : ''),
      last ? card('Last change', '#' + last.revision, CHANGE_LABEL[changeState(last)] + ' · ' + (last.upstreams || []).join(', '), COLOR[changeState(last)])
        : card('Last change', '—', 'none since start', ''));
    $('meta').textContent = 'revision ' + detail.revision + ' · state ' + short(detail.version) + ' · ' + (detail.store || '');
  }

  function renderBanners(detail) {
    const out = [];
    for (const g of detail.xds || []) {
      if (g.last_error) out.push(h('p', { class: 'banner error' }, 'Group ' + groupName(g.group) + ': revision ' + g.failed_revision +
        ' could not be published (' + g.last_error + '); nodes keep revision ' + g.revision + '.'));
    }
    const warnings = detail.warnings || [];
    if (warnings.length) {
      out.push(h('details', { class: 'banner warn', 'data-key': 'warnings' }, h('summary', {}, warnings.length + ' warning' + (warnings.length > 1 ? 's' : '') + ': objects dropped from what is served'),
        h('ul', {}, warnings.map((w) => h('li', {}, h('code', {}, w.object), ' ', w.msg)))));
    }
    $('banners').replaceChildren(...out);
  }

  // ---- polling ----

  let paused = false, timer = 0, data = null;
  const open = new Set(); // data-key of expanded <details>, kept across re-renders

  document.addEventListener('toggle', (e) => {
    const k = e.target.getAttribute && e.target.getAttribute('data-key');
    if (k) e.target.open ? open.add(k) : open.delete(k);
  }, true);

  function render() {
    if (!data) return;
    const filter = $('filter').value.trim().toLowerCase();
    const nodes = (data.nodes.nodes || []).slice().sort((a, b) => a.id.localeCompare(b.id) || a.stream - b.stream);
    const upstreams = data.detail.upstreams || [];
    const changes = data.changes.changes || [];
    renderBanners(data.detail);
    renderSummary({ ...data.detail, upstreams }, nodes, changes);
    renderUpstreams(upstreams, rejections(nodes), filter);
    renderNodes(nodes, filter);
    renderChanges(changes, nodes);
    renderGroups(data.detail.xds || [], nodes);
    renderSources(data.sources);
    for (const d of document.querySelectorAll('details[data-key]')) d.open = open.has(d.getAttribute('data-key'));
  }

  // With admin tokens configured (and reads not open), dynup answers 401: the page asks for a token once,
  // keeps it in this tab only (sessionStorage), and stops polling until it has one, so a page left open
  // does not fill the audit log with refused requests.
  let token = sessionStorage.getItem('dynup-admin-token') || '';
  class NeedsToken extends Error {}

  async function getJSON(path) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = 'Bearer ' + token;
    const r = await fetch(path, { cache: 'no-store', headers });
    if (r.status === 401) throw new NeedsToken(token ? 'the admin token was refused' : 'this dynup needs an admin token');
    if (!r.ok) throw new Error('GET /' + path + ': HTTP ' + r.status);
    return r.json();
  }

  $('auth').addEventListener('submit', (e) => {
    e.preventDefault();
    token = $('token').value.trim();
    sessionStorage.setItem('dynup-admin-token', token);
    $('token').value = '';
    $('auth').hidden = true;
    refresh();
  });

  function setStatus(state, text) {
    $('status').dataset.state = state;
    $('status-text').textContent = text;
  }

  let last = '';
  async function refresh() {
    clearTimeout(timer);
    try {
      const [detail, nodes, changes, sources] = await Promise.all([
        getJSON('detail'), getJSON('nodes'), getJSON('changes?limit=' + CHANGES), getJSON('sources').catch(() => null)]);
      const key = JSON.stringify([detail, nodes, changes, sources]);
      data = { detail, nodes, changes, sources };
      if (key !== last) { last = key; render(); } else tickTimes();
      setStatus(paused ? 'paused' : 'ok', (paused ? 'Paused · ' : 'Live · ') + 'updated ' + new Date().toLocaleTimeString());
    } catch (e) {
      if (e instanceof NeedsToken) {
        $('auth').hidden = false;
        setStatus('error', 'Needs an admin token: ' + e.message);
        return; // until a token is entered
      }
      setStatus('error', 'Cannot reach dynup (' + e.message + '), retrying; the data shown may be stale');
    }
    schedule();
  }

  function schedule() {
    clearTimeout(timer);
    if (!paused && !document.hidden) timer = setTimeout(refresh, POLL_MS);
  }

  $('pause').addEventListener('click', () => {
    paused = !paused;
    $('pause').setAttribute('aria-pressed', String(paused));
    $('pause').textContent = paused ? 'Resume' : 'Pause';
    if (paused) { clearTimeout(timer); setStatus('paused', 'Paused'); } else refresh();
  });
  document.addEventListener('visibilitychange', () => { if (!document.hidden && !paused) refresh(); });
  $('filter').addEventListener('input', render);

  $('interval').textContent = POLL_MS / 1000 + ' seconds';
  refresh();
})();
