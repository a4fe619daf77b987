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
