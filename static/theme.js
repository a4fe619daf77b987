// Applies the saved colour theme before the page paints (loaded in <head>, not deferred).
'use strict';
(function () {
  var t = null;
  try { t = localStorage.getItem('hbd-theme'); } catch (e) { /* storage blocked */ }
  if (t === 'light' || t === 'dark') document.documentElement.setAttribute('data-theme', t);
})();
