// hbd dashboard, common to every page: the WebSocket (snapshot, then live changes) with
// reconnection and a visible banner while it is down, fleet counts and favicon, times in
// the viewer's time zone, ticking "ago" texts and the theme button.
// Text from the wire only ever reaches the page through textContent / attributes.
'use strict';
(function () {
  var stats = window.hbdStats = {
    messages: 0, beats: 0, events: 0, snapshots: 0, snapshotHosts: 0,
    applied: 0, busyMs: 0, lastApplyAt: 0, firstRender: null,
    connected: false, connects: 0, cspViolations: 0
  };
  document.addEventListener('securitypolicyviolation', function () { stats.cspViolations++; });
  var root = document.documentElement;
  root.classList.add('js');

  var listeners = { snapshot: [], beat: [], event: [], connect: [], fleet: [] };
  var hosts = new Map();            // name -> Summary (from the WebSocket)
  var hbd = window.hbd = { hosts: hosts, stats: stats };
  hbd.on = function (type, fn) { listeners[type].push(fn); };
  function emit(type, arg) {
    var l = listeners[type];
    for (var i = 0; i < l.length; i++) {
      try { l[i](arg); } catch (e) { console.error('hbd: ' + type + ' handler failed', e); }
    }
  }

  // ---- DOM helpers: elements and text only, never markup strings ----
  hbd.el = function (tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  };
  var SVG = 'http://www.w3.org/2000/svg';
  // An SVG path through values in a w×h box, y scaled to 0..max (same as format::path).
  hbd.pathD = function (values, w, h, max) {
    var d = '', n = values.length, pen = false;
    if (!n || !(max > 0)) return d;
    var step = n > 1 ? w / (n - 1) : 0;
    for (var i = 0; i < n; i++) {
      var v = values[i];
      if (v == null || !isFinite(v)) { pen = false; continue; }
      var x = n > 1 ? i * step : w;
      var y = h - (Math.min(Math.max(v, 0), max) / max) * h;
      d += (pen ? 'L' : 'M') + (Math.round(x * 10) / 10) + ',' + (Math.round(y * 10) / 10);
      pen = true;
    }
    return d;
  };
  hbd.niceMax = function (v) {
    if (!(v > 0) || !isFinite(v)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var ms = [1, 2, 5, 10];
    for (var i = 0; i < ms.length; i++) if (ms[i] * p >= v) return ms[i] * p;
    return 10 * p;
  };
  hbd.spark = function (cls) {
    var svg = document.createElementNS(SVG, 'svg');
    svg.setAttribute('class', cls || 'spark');
    svg.setAttribute('viewBox', '0 0 60 16');
    svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('aria-hidden', 'true');
    svg.appendChild(document.createElementNS(SVG, 'path'));
    return svg;
  };

  // ---- Times ----
  var dtf = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit'
  });
  hbd.zone = (function () {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time'; } catch (e) { return 'local time'; }
  })();
  hbd.fmtTime = function (ms) { return dtf.format(new Date(ms)); };
  hbd.span = function (ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    if (s < 120) return s + ' s';
    if (s < 7200) return Math.floor(s / 60) + ' min';
    if (s < 172800) return Math.floor(s / 3600) + ' h';
    return Math.floor(s / 86400) + ' d';
  };
  hbd.ago = function (ms) { return hbd.span(Date.now() - ms) + ' ago'; };
  // Rewrites every server-rendered UTC time into the viewer's zone.
  hbd.localize = function (scope) {
    var ts = (scope || document).querySelectorAll('time[data-ms]:not(.ago)');
    for (var i = 0; i < ts.length; i++) {
      var ms = +ts[i].getAttribute('data-ms');
      if (ms > 0) {
        var text = hbd.fmtTime(ms);
        if (ts[i].textContent !== text) ts[i].textContent = text;
      }
    }
    var ag = (scope || document).querySelectorAll('time.ago[data-ms]');
    for (var j = 0; j < ag.length; j++) {
      var t = +ag[j].getAttribute('data-ms');
      if (t > 0) ag[j].title = hbd.fmtTime(t) + ' (' + hbd.zone + ')';
    }
  };
  function tick() {
    var now = Date.now();
    var ag = document.querySelectorAll('time.ago[data-ms]');
    for (var i = 0; i < ag.length; i++) {
      var ms = +ag[i].getAttribute('data-ms');
      if (ms > 0) {
        var text = hbd.span(now - ms) + ' ago';
        if (ag[i].textContent !== text) ag[i].textContent = text;
      }
    }
  }
  hbd.tick = tick;

  // ---- Fleet counts, header pill, favicon ----
  var lastState = null, fleetQueued = false;
  function fleetState() {
    var c = { total: 0, up: 0, down: 0, never: 0, ok: 0, warning: 0, critical: 0, unknown: 0 };
    hosts.forEach(function (s) {
      c.total++;
      if (s.status === 'UP') {
        c.up++;
        if (s.level === 'OK') c.ok++;
        else if (s.level === 'WARNING') c.warning++;
        else if (s.level === 'CRITICAL') c.critical++;
        else c.unknown++;
      } else if (s.status === 'DOWN') c.down++;
      else c.never++;
    });
    c.state = c.down + c.critical > 0 ? 'down'
      : c.warning + c.unknown + c.never > 0 ? 'warn'
      : c.total > 0 ? 'ok' : 'empty';
    return c;
  }
  function updateFleet() {
    fleetQueued = false;
    var c = fleetState();
    var els = document.querySelectorAll('[data-count]');
    for (var i = 0; i < els.length; i++) {
      var k = els[i].getAttribute('data-count');
      var text = String(c[k]);
      if (els[i].textContent !== text) els[i].textContent = text;
      var tile = els[i].closest('.tile');
      if (tile) {
        tile.classList.toggle('zero', c[k] === 0);
        tile.classList.toggle('nonzero', c[k] > 0);
      }
    }
    var pill = document.getElementById('fleet');
    if (pill) pill.className = 'fleet fleet-' + c.state;
    if (c.state !== lastState) {
      lastState = c.state;
      var icon = document.getElementById('favicon');
      if (icon) icon.setAttribute('href', '/favicon.svg?s=' + c.state);
    }
    emit('fleet', c);
  }
  hbd.fleetChanged = function () {
    if (!fleetQueued) { fleetQueued = true; setTimeout(updateFleet, 250); }
  };

  // ---- The WebSocket ----
  var ws = null, attempt = 0, retryAt = 0, retryTimer = null, countdown = null;
  var banner = document.getElementById('conn');
  var bannerText = document.getElementById('conn-text');
  var live = document.getElementById('live');
  function setLive(state, text) {
    if (!live) return;
    live.setAttribute('data-state', state);
    var t = live.querySelector('.live-text');
    if (t) t.textContent = text;
  }
  function showBanner(reason) {
    root.classList.add('stale');
    if (!banner) return;
    banner.hidden = false;
    function update() {
      var s = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      bannerText.textContent = (reason ? 'hbd closed the connection (' + reason + '). ' : 'The connection to hbd dropped; what you see may be out of date. ') +
        (s > 0 ? 'Reconnecting in ' + s + ' s…' : 'Reconnecting…');
    }
    update();
    clearInterval(countdown);
    countdown = setInterval(update, 1000);
  }
  function hideBanner() {
    root.classList.remove('stale');
    clearInterval(countdown);
    if (banner) banner.hidden = true;
  }
  function scheduleRetry(reason) {
    // 1, 2, 4 … 30 s, with jitter so a restarted hbd is not hit by every page at once.
    var base = Math.min(30, Math.pow(2, attempt));
    attempt++;
    var delay = base * 1000 * (0.8 + Math.random() * 0.4);
    retryAt = Date.now() + delay;
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
    setLive('lost', 'Offline');
    showBanner(reason);
  }
  function dispatch(m) {
    if (!m || typeof m !== 'object') return;
    var d = m.data;
    if (m.type === 'snapshot') {
      stats.snapshots++;
      hosts.clear();
      var list = (d && d.hosts) || [];
      for (var i = 0; i < list.length; i++) hosts.set(list[i].name, list[i]);
      stats.snapshotHosts = list.length;
      emit('snapshot', list);
      updateFleet();
    } else if (m.type === 'beat') {
      stats.beats++;
      var prev = hosts.get(d.name);
      hosts.set(d.name, d);
      emit('beat', d);
      if (!prev || prev.status !== d.status || prev.level !== d.level) hbd.fleetChanged();
    } else if (m.type === 'event') {
      stats.events++;
      var s = hosts.get(d.host);
      if (s) {
        if (d.kind === 'host_down') { s.status = 'DOWN'; s.since_ms = d.ts_ms; }
        else if (d.kind === 'host_up') { s.status = 'UP'; s.since_ms = d.ts_ms; }
        else if (d.kind === 'host_level' && d.to) { s.level = d.to; }
        else if (d.kind === 'host_forgotten') { hosts.delete(d.host); }
      }
      emit('event', d);
      hbd.fleetChanged();
    }
  }
  function connect() {
    clearTimeout(retryTimer);
    if (ws) return;
    setLive('connecting', 'Connecting…');
    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
    try { ws = new WebSocket(url); } catch (e) { ws = null; scheduleRetry(); return; }
    var opened = false;
    ws.onopen = function () {
      opened = true;
      attempt = 0;
      stats.connected = true;
      stats.connects++;
      hideBanner();
      setLive('live', 'Live');
      emit('connect', stats.connects);
    };
    ws.onmessage = function (e) {
      var t0 = performance.now();
      var m;
      try { m = JSON.parse(e.data); } catch (err) { return; }
      stats.messages++;
      dispatch(m);
      stats.busyMs += performance.now() - t0;
    };
    ws.onclose = function (e) {
      ws = null;
      stats.connected = false;
      scheduleRetry(opened && e.reason ? e.reason : '');
    };
  }
  hbd.reconnectNow = function () { attempt = 0; if (!ws) connect(); };
  var retry = document.getElementById('conn-retry');
  if (retry) retry.addEventListener('click', hbd.reconnectNow);

  // ---- Theme button: auto → light → dark ----
  var themeBtn = document.getElementById('theme');
  function showTheme() {
    var t = root.getAttribute('data-theme') || 'auto';
    themeBtn.textContent = 'Theme: ' + t;
    themeBtn.setAttribute('aria-label', 'Colour theme: ' + t + ' (change)');
  }
  if (themeBtn) {
    themeBtn.hidden = false;
    showTheme();
    themeBtn.addEventListener('click', function () {
      var t = root.getAttribute('data-theme') || 'auto';
      var next = t === 'auto' ? 'light' : t === 'light' ? 'dark' : 'auto';
      if (next === 'auto') root.removeAttribute('data-theme'); else root.setAttribute('data-theme', next);
      try { if (next === 'auto') localStorage.removeItem('hbd-theme'); else localStorage.setItem('hbd-theme', next); } catch (e) { /* ignore */ }
      showTheme();
    });
  }

  // Fetches this page again and swaps its live parts (server-rendered, so escaped there;
  // a parsed document never runs scripts). Used by the host and events pages.
  hbd.refreshParts = function (selector, done) {
    return fetch(location.href, { headers: { Accept: 'text/html' }, cache: 'no-store' })
      .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.text(); })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, 'text/html');
        var olds = document.querySelectorAll(selector);
        var news = doc.querySelectorAll(selector);
        var sameShape = olds.length === news.length;
        for (var i = 0; sameShape && i < olds.length; i++) if (olds[i].id !== news[i].id) sameShape = false;
        if (sameShape) {
          for (var j = 0; j < olds.length; j++) olds[j].replaceWith(document.adoptNode(news[j]));
        } else {
          var main = document.getElementById('main'), nmain = doc.getElementById('main');
          if (main && nmain) main.replaceChildren.apply(main, Array.prototype.map.call(nmain.childNodes, function (n) { return document.adoptNode(n); }));
        }
        hbd.localize(document);
        tick();
        if (done) done(doc);
      });
  };

  document.addEventListener('DOMContentLoaded', function () {
    hbd.localize(document);
    tick();
    setInterval(tick, 1000);
    var foot = document.querySelector('.foot p');
    if (foot) foot.appendChild(document.createTextNode(' · times in ' + hbd.zone));
    connect();
  });
})();
