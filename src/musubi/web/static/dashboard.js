// MUSUBI dashboard: CSRF header for htmx, the usage chart, live run updates.
// Loaded as a file (the CSP allows no inline script).
(function () {
  "use strict";

  function cookie(name) {
    var found = document.cookie.split("; ").find(function (c) { return c.indexOf(name + "=") === 0; });
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  // Double-submit CSRF: echo the musubi_csrf cookie on every state-changing htmx call.
  document.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-CSRF-Token"] = cookie("musubi_csrf");
  });
  // A refused action (403, 404, 422) still swaps in the server's explanation.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var s = e.detail.xhr.status;
    if (s === 403 || s === 404 || s === 400 || s === 409 || s === 422) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });

  var COLOURS = ["#0b5cad", "#b00020", "#1d6b2f", "#8a5300", "#6a1b9a", "#00695c"];

  function drawChart() {
    var el = document.getElementById("usage-chart");
    var data = document.getElementById("usage-data");
    if (!el || !data || typeof uPlot === "undefined") { return; }
    var d = JSON.parse(data.textContent);
    var xs = d.days.map(function (day) { return Date.parse(day + "T00:00:00Z") / 1000; });
    var names = Object.keys(d.series);
    var series = [{}].concat(names.map(function (n, i) {
      return { label: n, stroke: COLOURS[i % COLOURS.length], width: 2,
               value: function (u, v) { return v == null ? "" : "$" + v.toFixed(4); } };
    }));
    var opts = { width: Math.max(320, el.clientWidth), height: 300, series: series,
                 axes: [{}, { values: function (u, vals) { return vals.map(function (v) { return "$" + v; }); } }] };
    new uPlot(opts, [xs].concat(names.map(function (n) { return d.series[n]; })), el);
    el.setAttribute("data-drawn", "true");
  }

  var RUN_EVENTS = ["run.created", "run.started", "run.awaiting_approval", "run.approved",
    "run.cancelled", "run.succeeded", "run.failed", "step.started", "step.attempt",
    "step.done", "step.failed", "step.repaired", "message"];
  var FINISHED = ["succeeded", "failed", "cancelled"];
  var source = null;

  function followRun() {
    var panel = document.getElementById("run-panel");
    if (!panel || typeof htmx === "undefined") { return; }
    var id = panel.getAttribute("data-run");
    if (FINISHED.indexOf(panel.getAttribute("data-status")) >= 0) {
      if (source) { source.close(); source = null; }
      return;
    }
    if (source) { return; }
    // The API's own event stream (the session cookie authenticates it).
    source = new EventSource("/v1/runs/" + encodeURIComponent(id) + "/events?follow=true");
    var refresh = function () {
      htmx.ajax("GET", "/ui/runs/" + encodeURIComponent(id) + "/panel",
                { target: "#run-panel", swap: "outerHTML" });
    };
    RUN_EVENTS.forEach(function (t) { source.addEventListener(t, refresh); });
  }

  document.addEventListener("htmx:afterSettle", followRun);
  document.addEventListener("DOMContentLoaded", function () { drawChart(); followRun(); });
})();
