// A host's page, live: when this host beats or has an event, the page is fetched again
// and its live sections swapped (rendered and escaped by the server). Numeric readings
// get a trend line drawn from the values seen while the page is open.
'use strict';
(function () {
  var hbd = window.hbd;
  var head = document.getElementById('host-head');
  if (!hbd || !head) return;
  var name = head.getAttribute('data-host');
  var trends = new Map();   // reading key -> recent values
  var MAX = 60;
  var lastSeen = null, timer = null, busy = false, again = false;

  function sample() {
    var rows = document.querySelectorAll('#readings tr[data-key]');
    for (var i = 0; i < rows.length; i++) {
      var key = rows[i].getAttribute('data-key');
      var raw = rows[i].getAttribute('data-v');
      var a = trends.get(key);
      if (!a) { a = []; trends.set(key, a); }
      a.push(raw === null ? null : +raw);
      if (a.length > MAX) a.shift();
    }
  }
  function draw() {
    var rows = document.querySelectorAll('#readings tr[data-key]');
    for (var i = 0; i < rows.length; i++) {
      var a = trends.get(rows[i].getAttribute('data-key')) || [];
      var cell = rows[i].querySelector('td.trend');
      if (!cell || a.length < 2 || a.every(function (v) { return v === null; })) continue;
      var lo = Infinity, hi = -Infinity;
      a.forEach(function (v) { if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
      // Scale to the range seen, so small changes show.
      var span = hi - lo || Math.abs(hi) || 1;
      var shifted = a.map(function (v) { return v === null ? null : v - lo + span * 0.05; });
      var svg = hbd.spark('spark');
      svg.firstChild.setAttribute('d', hbd.pathD(shifted, 60, 16, span * 1.1));
      svg.setAttribute('aria-hidden', 'true');
      cell.replaceChildren(svg);
      cell.title = 'lowest ' + lo + ', highest ' + hi + ' (' + a.length + ' samples while open)';
    }
  }
  // Keep the open/closed state of the plugin groups across refreshes.
  function closedGroups() {
    var s = new Set();
    document.querySelectorAll('#readings details[data-plugin]').forEach(function (d) { if (!d.open) s.add(d.getAttribute('data-plugin')); });
    return s;
  }
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    var closed = closedGroups();
    hbd.refreshParts('section[data-live][id]', function () {
      document.querySelectorAll('#readings details[data-plugin]').forEach(function (d) {
        if (closed.has(d.getAttribute('data-plugin'))) d.open = false;
      });
      sample();
      draw();
    }).catch(function () { /* the banner tells about a lost connection */ })
      .then(function () { busy = false; if (again) { again = false; schedule(); } });
  }
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 300);
  }
  hbd.on('beat', function (s) {
    if (s.name !== name) return;
    if (s.last_seen_ms !== lastSeen) { lastSeen = s.last_seen_ms; schedule(); }
  });
  hbd.on('event', function (e) { if (e.host === name) schedule(); });
  // After a reconnect the page may have missed changes.
  hbd.on('connect', function (n) { if (n > 1) schedule(); });
  sample();
})();

// Silences of this host: listed from GET /api/v1/silences, created and ended through the
// same API with the API token the operator types (sent as a bearer header, never kept),
// so the server's token and cross-site checks apply unchanged.
(function () {
  var hbd = window.hbd;
  var box = document.getElementById('silences');
  var form = document.getElementById('silence-form');
  if (!hbd || !box || !form) return;
  var host = box.getAttribute('data-host');
  var list = document.getElementById('silence-list');
  var empty = document.getElementById('silence-empty');
  var status = document.getElementById('silence-status');
  form.hidden = false;

  // The server's glob (hbd_notify::rules::glob): `*`, `?`, ASCII case-insensitive.
  function glob(pattern, name) {
    var re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
    return new RegExp('^' + re + '$', 'i').test(name);
  }
  function say(text, bad) {
    status.textContent = text;
    status.className = 'silence-status' + (bad ? ' bad' : '');
  }
  function token() {
    var t = form.elements.token.value.trim();
    if (!t) { say('Enter the API token first.', true); form.elements.token.focus(); }
    return t;
  }
  // The API's JSON error, or the status line.
  function failure(r) {
    return r.json().then(function (b) { return b && b.error ? b.error : r.status + ' ' + r.statusText; },
      function () { return r.status + ' ' + r.statusText; });
  }
  function call(method, path, body) {
    var t = token();
    if (!t) return Promise.reject(null);
    var init = { method: method, credentials: 'same-origin', headers: { 'Authorization': 'Bearer ' + t } };
    if (body) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (r) {
      if (r.ok) return r;
      return failure(r).then(function (m) { throw new Error(m); });
    });
  }
  function item(s, now) {
    var li = hbd.el('li', 'silence');
    li.setAttribute('data-id', s.id);
    li.appendChild(hbd.el('code', null, s.hosts));
    var when = s.from_ms > now ? ' from ' + hbd.fmtTime(s.from_ms) + ' until ' : ' until ';
    li.appendChild(document.createTextNode(when + hbd.fmtTime(s.until_ms) + ': '));
    li.appendChild(hbd.el('span', 'why', s.reason));
    li.appendChild(hbd.el('span', 'who muted', s.by ? ' (by ' + s.by + ')' : ' (by –)'));
    var end = hbd.el('button', 'end', 'End');
    end.type = 'button';
    end.addEventListener('click', function () {
      call('DELETE', '/api/v1/silences/' + encodeURIComponent(s.id)).then(function () {
        say('Silence ' + s.id + ' ended.');
        load();
      }, function (e) { if (e) say('Could not end the silence: ' + e.message, true); });
    });
    li.appendChild(end);
    return li;
  }
  function load() {
    return fetch('/api/v1/silences', { credentials: 'same-origin' }).then(function (r) {
      if (!r.ok) return failure(r).then(function (m) { throw new Error(m); });
      return r.json();
    }).then(function (b) {
      var mine = (b.silences || []).filter(function (s) { return glob(s.hosts, host); });
      list.replaceChildren.apply(list, mine.map(function (s) { return item(s, b.now_ms); }));
      empty.hidden = mine.length > 0;
    }, function (e) { say('Silences could not be read: ' + e.message, true); });
  }
  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    var f = form.elements;
    var body = { hosts: f.hosts.value.trim(), duration: f.duration.value, reason: f.reason.value.trim() };
    if (f.by.value.trim()) body.by = f.by.value.trim();
    call('POST', '/api/v1/silences', body).then(function (r) { return r.json(); }).then(function (s) {
      say('Silenced ' + s.hosts + ' until ' + hbd.fmtTime(s.until_ms) + '.');
      f.reason.value = '';
      load();
    }, function (e) { if (e) say('Could not silence: ' + e.message, true); });
  });
  load();
})();
