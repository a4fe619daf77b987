// The long-term history page (/dashboard/history/{host}): the chart is drawn on the
// server; this only shows another reading as soon as it is picked from the list.
"use strict";
(function () {
  const select = document.getElementById("history-select");
  const form = document.getElementById("history-form");
  if (select && form) {
    select.addEventListener("change", () => form.submit());
  }
})();
