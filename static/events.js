// The events page: times entered in the filter are read in the viewer's time zone, and
// on the first page new events appear live (the page's rows are fetched again from the
// server, which escapes them).
'use strict';
(function () {
  var hbd = window.hbd;
  var table = document.getElementById('events');
  var tz = document.getElementById('tz');
  var note = document.getElementById('tz-note');
  var form = document.getElementById('event-filters');
  if (!hbd || !table) return;
  var hasTimes = form && (form.elements.from.value || form.elements.to.value);
  if (tz && (tz.value !== '' || !hasTimes)) {
    tz.value = String(new Date().getTimezoneOffset());
    if (note) note.textContent = 'Times in your time zone (' + hbd.zone + ').';
  }
  if (table.getAttribute('data-live-events') !== 'yes') return;
  var timer = null, busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    var before = new Set();
    table.querySelectorAll('tbody tr[data-id]').forEach(function (r) { before.add(r.getAttribute('data-id')); });
    hbd.refreshParts('#event-rows', function () {
      table = document.getElementById('events');
      if (!table) return;
      table.querySelectorAll('tbody tr[data-id]').forEach(function (r) {
        if (!before.has(r.getAttribute('data-id'))) r.classList.add('fresh');
      });
    }).catch(function () { /* the banner tells */ })
      .then(function () { busy = false; if (again) { again = false; schedule(); } });
  }
  function schedule() { clearTimeout(timer); timer = setTimeout(refresh, 400); }
  hbd.on('event', schedule);
  hbd.on('connect', function (n) { if (n > 1) schedule(); });
})();
