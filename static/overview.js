// The fleet overview, live: keeps every host from the WebSocket in memory, filters,
// sorts and pages in the browser with the same rules as the server (server/src/query.rs), and
// applies updates once per animation frame, touching only cells whose text changed.
// Rows are built with createElement/textContent: host names and check output stay text.
'use strict';
(function () {
  var hbd = window.hbd, stats = window.hbdStats;
  var tbody = document.getElementById('host-rows');
  var form = document.getElementById('filters');
  if (!hbd || !tbody || !form) return;

  var SPARK = 30;
  var METRICS = ['cpu', 'mem', 'fs', 'load'];
  var RANK_UP = { CRITICAL: 1, UNKNOWN: 2, WARNING: 3, OK: 5 };
  var SEV = { OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3 };
  var DESC_FIRST = { cpu: true, mem: true, fs: true, load: true };
  var PER = [50, 100, 250, 500, 1000];
  var STATUS_LABEL = { UP: 'UP', DOWN: 'DOWN', NEVER_SEEN: 'NEVER SEEN' };
  var STATUS_CLASS = { UP: 'up', DOWN: 'down', NEVER_SEEN: 'never' };

  // ---- The view (mirrors OverviewQuery) ----
  function readView(params) {
    var sort = params.get('sort') || 'state';
    if (!/^(state|name|address|seen|cpu|mem|fs|load|check)$/.test(sort)) sort = 'state';
    var dir = params.get('dir');
    var per = parseInt(params.get('per'), 10);
    var status = (params.get('status') || '').toUpperCase();
    var level = (params.get('level') || '').toUpperCase();
    return {
      q: (params.get('q') || '').trim(),
      status: /^(UP|DOWN|NEVER_SEEN)$/.test(status) ? status : '',
      level: /^(OK|WARNING|CRITICAL|UNKNOWN)$/.test(level) ? level : '',
      sort: sort,
      desc: dir === 'desc' ? true : dir === 'asc' ? false : !!DESC_FIRST[sort],
      per: PER.indexOf(per) >= 0 ? per : 250,
      page: Math.max(1, parseInt(params.get('page'), 10) || 1)
    };
  }
  var view = readView(new URLSearchParams(location.search));

  function query(v, page) {
    var p = new URLSearchParams();
    if (v.q) p.set('q', v.q);
    if (v.status) p.set('status', v.status);
    if (v.level) p.set('level', v.level);
    if (v.sort !== 'state') p.set('sort', v.sort);
    if (v.desc !== !!DESC_FIRST[v.sort]) p.set('dir', v.desc ? 'desc' : 'asc');
    if (v.per !== 250) p.set('per', String(v.per));
    if (page > 1) p.set('page', String(page));
    var s = p.toString();
    return s ? '/?' + s : '/';
  }

  // ---- Order (mirrors query::compare in server/src/query.rs) ----
  function rank(s) {
    if (s.status === 'DOWN') return 0;
    if (s.status === 'NEVER_SEEN') return 4;
    return RANK_UP[s.level];
  }
  function cmpStr(a, b) { return a < b ? -1 : a > b ? 1 : 0; }
  function fin(v) { return typeof v === 'number' && isFinite(v); }
  function opt(a, b, flip) {
    var ha = a != null, hb = b != null;
    if (ha && hb) return flip(typeof a === 'number' ? (a < b ? -1 : a > b ? 1 : 0) : cmpStr(a, b));
    return ha ? -1 : hb ? 1 : 0;
  }
  function compare(a, b) {
    var desc = view.desc;
    var flip = desc ? function (o) { return -o; } : function (o) { return o; };
    var o = 0;
    switch (view.sort) {
      case 'state': o = flip(rank(a) - rank(b)); break;
      case 'name': o = flip(cmpStr(a.name, b.name)); break;
      case 'address': o = opt(a.address, b.address, flip); break;
      case 'seen': o = opt(a.last_seen_ms, b.last_seen_ms, flip); break;
      case 'check': {
        var sa = a.worst ? SEV[a.worst.level] + 1 : 0, sb = b.worst ? SEV[b.worst.level] + 1 : 0;
        o = flip(sb - sa);
        if (!o) {
          var ka = a.worst ? a.worst.key : null, kb = b.worst ? b.worst.key : null;
          // Option<String> order: None before Some.
          o = flip(ka === kb ? 0 : ka == null ? -1 : kb == null ? 1 : cmpStr(ka, kb));
        }
        break;
      }
      default: {
        var x = a[view.sort], y = b[view.sort];
        var fx = fin(x), fy = fin(y);
        if (fx && fy) o = desc ? (y < x ? -1 : y > x ? 1 : 0) : (x < y ? -1 : x > y ? 1 : 0);
        else o = fx ? -1 : fy ? 1 : 0;
      }
    }
    return o || cmpStr(a.name, b.name);
  }
  // Whether a change of this host can move it in the current order or filter.
  function moves(a, b) {
    if (a.status !== b.status || a.level !== b.level) return true;
    switch (view.sort) {
      case 'state': case 'name': return false;
      case 'address': return a.address !== b.address;
      case 'seen': return a.last_seen_ms !== b.last_seen_ms;
      case 'check': return (a.worst && a.worst.level) !== (b.worst && b.worst.level) || (a.worst && a.worst.key) !== (b.worst && b.worst.key);
      default: return a[view.sort] !== b[view.sort];
    }
  }

  // ---- Model ----
  var model = new Map();   // name -> {s, h: {cpu: [], ...}, row, cells, shown}
  var order = [];          // names on the current page, in order
  var allDirty = true, dirty = new Set(), pending = 0, scheduled = false;
  var historyLoaded = false;

  function entry(s) {
    var m = model.get(s.name);
    if (!m) {
      m = { s: s, h: { cpu: [], mem: [], fs: [], load: [] }, row: null, cells: null, shown: {} };
      model.set(s.name, m);
    }
    return m;
  }
  function pushHistory(m, s) {
    for (var i = 0; i < METRICS.length; i++) {
      var k = METRICS[i], a = m.h[k];
      a.push(fin(s[k]) ? s[k] : null);
      if (a.length > SPARK) a.shift();
    }
  }

  // ---- Rows ----
  var el = hbd.el;
  function fmtPct(v) {
    if (!fin(v)) return '–';
    var r = Math.round(v * 10) / 10;
    return (r === Math.trunc(r) ? String(r) : r.toFixed(1)) + ' %';
  }
  function fmtLoad(v) { return fin(v) ? v.toFixed(2) : '–'; }
  function hrefOf(name) { return '/hosts/' + encodeURIComponent(name); }

  function makeRow(m) {
    var tr = el('tr', 'row');
    tr.setAttribute('data-host', m.s.name);
    var c = {};
    var tdState = el('td', 'c-state');
    c.status = el('span', 'badge');
    c.level = el('span', 'badge');
    tdState.append(c.status, ' ', c.level);
    var tdName = el('td', 'c-name');
    c.name = el('a');
    c.name.href = hrefOf(m.s.name);
    c.name.textContent = m.s.name;
    tdName.appendChild(c.name);
    c.watched = el('span', 'tag', 'watched');
    tdName.append(' ', c.watched);
    c.addr = el('td', 'c-addr');
    var tdSeen = el('td', 'c-seen');
    c.seen = el('time', 'ago');
    c.never = el('span', 'muted', 'never');
    tdSeen.append(c.seen, c.never);
    tr.append(tdState, tdName, c.addr, tdSeen);
    c.v = {}; c.path = {};
    for (var i = 0; i < METRICS.length; i++) {
      var k = METRICS[i];
      var td = el('td', 'num m-' + k);
      c.v[k] = el('span', 'v');
      var svg = hbd.spark();
      c.path[k] = svg.firstChild;
      td.append(c.v[k], svg);
      tr.appendChild(td);
    }
    var tdCheck = el('td', 'c-check');
    c.ckLevel = el('span', 'badge sm');
    c.ckKey = el('span', 'ck');
    c.ckMsg = el('span', 'msg');
    tdCheck.append(c.ckLevel, ' ', c.ckKey, ' ', c.ckMsg);
    tr.appendChild(tdCheck);
    m.row = tr;
    m.cells = c;
    m.shown = {};
    updateRow(m);
    return tr;
  }

  // Sets what changed since the row was last drawn.
  function set(m, key, value, apply) {
    if (m.shown[key] !== value) { m.shown[key] = value; apply(value); }
  }
  function updateRow(m) {
    var s = m.s, c = m.cells, tr = m.row;
    var sc = STATUS_CLASS[s.status] || 'never';
    var lc = (s.level || 'UNKNOWN').toLowerCase();
    set(m, 'cls', 'row s-' + sc + ' l-' + lc, function (v) { tr.className = v; });
    set(m, 'status', s.status, function (v) {
      c.status.className = 'badge st-' + sc;
      c.status.textContent = STATUS_LABEL[v] || v;
    });
    set(m, 'level', s.level + (s.status === 'UP' ? '' : ' stale'), function () {
      c.level.className = 'badge lv-' + lc + (s.status === 'UP' ? '' : ' stale');
      c.level.textContent = s.level;
    });
    set(m, 'watched', !!s.watched, function (v) { c.watched.hidden = !v; });
    set(m, 'addr', s.address || '', function (v) { c.addr.textContent = v; });
    set(m, 'seen', s.last_seen_ms || 0, function (v) {
      c.seen.hidden = !v;
      c.never.hidden = !!v;
      if (v) {
        c.seen.setAttribute('data-ms', String(v));
        c.seen.setAttribute('datetime', new Date(v).toISOString());
        c.seen.textContent = hbd.ago(v);
        c.seen.title = hbd.fmtTime(v) + ' (' + hbd.zone + ')';
      }
    });
    var loadMax = 1;
    for (var j = 0; j < m.h.load.length; j++) if (fin(m.h.load[j]) && m.h.load[j] > loadMax) loadMax = m.h.load[j];
    loadMax = hbd.niceMax(loadMax);
    for (var i = 0; i < METRICS.length; i++) {
      var k = METRICS[i];
      var text = k === 'load' ? fmtLoad(s[k]) : fmtPct(s[k]);
      set(m, 'v' + k, text, (function (node) { return function (v) { node.textContent = v; }; })(c.v[k]));
      var d = hbd.pathD(m.h[k], 60, 16, k === 'load' ? loadMax : 100);
      set(m, 'p' + k, d, (function (node) { return function (v) { node.setAttribute('d', v); }; })(c.path[k]));
    }
    var w = s.worst;
    set(m, 'ck', w ? w.level + '\u0000' + w.key + '\u0000' + w.message : '', function () {
      c.ckLevel.hidden = !w;
      if (w) {
        c.ckLevel.className = 'badge sm lv-' + w.level.toLowerCase();
        c.ckLevel.textContent = w.level;
      }
      c.ckKey.textContent = w ? w.key : '';
      c.ckMsg.textContent = w ? w.message : '';
    });
  }

  // ---- Rendering ----
  var matching = document.getElementById('matching');
  var pager = document.getElementById('pager');
  var ths = document.querySelectorAll('#hosts thead th');
  var pageNow = view.page, pages = 1;

  function matches(s, needle) {
    return (!view.status || s.status === view.status) &&
      (!view.level || s.level === view.level) &&
      (!needle || s.name.toLowerCase().indexOf(needle) >= 0);
  }

  function rebuild() {
    var needle = view.q.toLowerCase();
    var list = [];
    model.forEach(function (m) { if (matches(m.s, needle)) list.push(m.s); });
    list.sort(compare);
    pages = Math.max(1, Math.ceil(list.length / view.per));
    pageNow = Math.min(view.page, pages);
    var start = (pageNow - 1) * view.per;
    var slice = list.slice(start, start + view.per);
    order = slice.map(function (s) { return s.name; });
    // Reuse row elements; move only those out of place.
    var want = new Array(slice.length);
    for (var i = 0; i < slice.length; i++) {
      var m = model.get(slice[i].name);
      if (m.row) updateRow(m); else makeRow(m);
      want[i] = m.row;
    }
    var kids = tbody.children;
    for (var j = 0; j < want.length; j++) {
      if (kids[j] !== want[j]) tbody.insertBefore(want[j], kids[j] || null);
    }
    while (kids.length > want.length) tbody.removeChild(tbody.lastChild);
    var filtered = !!(view.q || view.status || view.level);
    matching.textContent = list.length
      ? 'Hosts ' + (start + 1) + '–' + (start + slice.length) + ' of ' + list.length + (filtered ? ' matching the filter' : '')
      : filtered ? 'No host matches the filter.' : 'No hosts yet: start hbc on a machine and point it at this server.';
    drawPager();
  }

  function drawPager() {
    if (!pager) return;
    var prev = el('button', '', '← Previous');
    prev.type = 'button';
    prev.disabled = pageNow <= 1;
    prev.addEventListener('click', function () { go(pageNow - 1); });
    var next = el('button', '', 'Next →');
    next.type = 'button';
    next.disabled = pageNow >= pages;
    next.addEventListener('click', function () { go(pageNow + 1); });
    pager.replaceChildren(prev, el('span', 'page-of', 'Page ' + pageNow + ' of ' + pages), next);
  }
  function go(page) {
    view.page = page;
    apply(true);
    var top = document.getElementById('hosts');
    if (top) top.scrollIntoView({ block: 'start' });
  }

  function flush() {
    scheduled = false;
    var t0 = performance.now();
    if (allDirty) {
      rebuild();
    } else {
      dirty.forEach(function (m) { if (m.row && m.row.parentNode === tbody) updateRow(m); });
    }
    allDirty = false;
    dirty.clear();
    stats.applied += pending;
    pending = 0;
    var t1 = performance.now();
    stats.busyMs += t1 - t0;
    stats.lastApplyAt = t1;
    if (stats.firstRender === null && stats.snapshots > 0) stats.firstRender = t1;
  }
  function schedule() {
    if (!scheduled) {
      scheduled = true;
      // Hidden tabs get no animation frames; a timer keeps the counters honest there.
      if (document.hidden) setTimeout(flush, 100); else requestAnimationFrame(flush);
    }
  }

  // ---- Headers, filters, tiles ----
  function markHeaders() {
    for (var i = 0; i < ths.length; i++) {
      var a = ths[i].querySelector('a[data-sort]');
      if (!a) continue;
      var k = a.getAttribute('data-sort');
      var active = k === view.sort;
      ths[i].setAttribute('aria-sort', active ? (view.desc ? 'descending' : 'ascending') : 'none');
      var desc = active ? !view.desc : !!DESC_FIRST[k];
      a.setAttribute('href', query({ q: view.q, status: view.status, level: view.level, sort: k, desc: desc, per: view.per }, 1));
    }
    form.elements.sort.value = view.sort;
    form.elements.dir.value = view.desc ? 'desc' : 'asc';
    var tiles = document.querySelectorAll('.tile');
    for (var t = 0; t < tiles.length; t++) {
      var p = new URLSearchParams(tiles[t].getAttribute('href').split('?')[1] || '');
      var on = (p.get('status') || '') === view.status && (p.get('level') || '') === view.level && !view.q;
      tiles[t].classList.toggle('active', on && (view.status !== '' || view.level !== ''));
    }
  }
  function apply(keepPage) {
    if (!keepPage) view.page = 1;
    history.replaceState(null, '', query(view, view.page));
    markHeaders();
    allDirty = true;
    schedule();
  }
  document.getElementById('hosts').addEventListener('click', function (e) {
    var a = e.target.closest('thead a[data-sort]');
    if (!a || e.ctrlKey || e.metaKey || e.shiftKey) return;
    e.preventDefault();
    var k = a.getAttribute('data-sort');
    view.desc = k === view.sort ? !view.desc : !!DESC_FIRST[k];
    view.sort = k;
    apply(false);
  });
  var qTimer = null;
  form.addEventListener('input', function (e) {
    var t = e.target;
    if (t.name === 'q') {
      clearTimeout(qTimer);
      qTimer = setTimeout(function () { view.q = t.value.trim(); apply(false); }, 120);
    }
  });
  form.addEventListener('change', function (e) {
    var t = e.target;
    if (t.name === 'status') view.status = t.value;
    else if (t.name === 'level') view.level = t.value;
    else if (t.name === 'per') view.per = parseInt(t.value, 10) || 250;
    else return;
    apply(false);
  });
  form.addEventListener('submit', function (e) {
    e.preventDefault();
    view.q = form.elements.q.value.trim();
    apply(false);
  });
  var reset = form.querySelector('.reset');
  if (reset) reset.addEventListener('click', function (e) {
    e.preventDefault();
    form.reset();
    form.elements.q.value = '';
    form.elements.status.value = '';
    form.elements.level.value = '';
    form.elements.per.value = '250';
    view = readView(new URLSearchParams(''));
    apply(false);
  });
  var tileBox = document.querySelector('.tiles');
  if (tileBox) tileBox.addEventListener('click', function (e) {
    var a = e.target.closest('a.tile');
    if (!a || e.ctrlKey || e.metaKey || e.shiftKey) return;
    e.preventDefault();
    var p = new URLSearchParams(a.getAttribute('href').split('?')[1] || '');
    view.status = p.get('status') || '';
    view.level = p.get('level') || '';
    view.q = '';
    form.elements.q.value = '';
    form.elements.status.value = view.status;
    form.elements.level.value = view.level;
    apply(false);
  });
  markHeaders();

  // ---- Live data ----
  function loadHistory() {
    fetch('/dashboard/history.json', { cache: 'no-store' })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) {
        if (!j || !j.hosts) return;
        historyLoaded = true;
        model.forEach(function (m, name) {
          var h = j.hosts[name];
          if (h) m.h = { cpu: h.cpu || [], mem: h.mem || [], fs: h.fs || [], load: h.load || [] };
          if (m.row && m.row.parentNode === tbody) dirty.add(m);
        });
        schedule();
      })
      .catch(function () { /* sparklines fill from live data instead */ });
  }

  hbd.on('snapshot', function (list) {
    var seen = new Set();
    for (var i = 0; i < list.length; i++) {
      var m = entry(list[i]);
      m.s = list[i];
      seen.add(list[i].name);
    }
    model.forEach(function (m, name) { if (!seen.has(name)) model.delete(name); });
    allDirty = true;
    schedule();
    loadHistory();
  });
  hbd.on('beat', function (s) {
    var m = model.get(s.name);
    if (!m) {
      m = entry(s);
      allDirty = true;
    } else {
      var old = m.s;
      m.s = s;
      if (moves(old, s)) allDirty = true; else dirty.add(m);
    }
    if (historyLoaded || m.h.cpu.length < SPARK) pushHistory(m, s);
    pending++;
    schedule();
  });
  hbd.on('event', function (e) {
    var m = model.get(e.host);
    if (e.kind === 'host_forgotten') {
      if (m) { model.delete(e.host); allDirty = true; schedule(); }
      return;
    }
    if (!m) return;
    var s = hbd.hosts.get(e.host);
    if (s && s !== m.s) m.s = s;
    if (e.kind === 'host_down' || e.kind === 'host_up' || e.kind === 'host_level') {
      allDirty = true;
      schedule();
    }
  });
  window.addEventListener('popstate', function () {
    view = readView(new URLSearchParams(location.search));
    markHeaders();
    allDirty = true;
    schedule();
  });
})();
