// kompakt's site behaviour: sortable and filterable tables, plots drawn from embedded JSON.
// No data is ever inserted as HTML here: figures come from JSON script tags and table
// cells were escaped when the page was generated.
(function () {
  "use strict";

  function sortValue(cell, numeric) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null || raw === "") return null;
    if (numeric) { var n = parseFloat(raw); return isNaN(n) ? null : n; }
    return raw.toLowerCase();
  }

  function makeSortable(table) {
    var headers = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(headers, function (th, index) {
      if (!th.hasAttribute("data-sortable")) return;
      th.addEventListener("click", function () {
        var numeric = th.hasAttribute("data-numeric");
        var dir = th.getAttribute("data-sort-dir") === "desc" ? "asc" : "desc";
        if (!numeric && !th.hasAttribute("data-sort-dir")) dir = "asc";
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("data-sort-dir"); });
        th.setAttribute("data-sort-dir", dir);
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var va = sortValue(a.cells[index], numeric), vb = sortValue(b.cells[index], numeric);
          if (va === null && vb === null) return 0;
          if (va === null) return 1;  // empty cells last, whatever the direction
          if (vb === null) return -1;
          var c = va < vb ? -1 : va > vb ? 1 : 0;
          return dir === "asc" ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }

  function applyFilters(bar) {
    var table = document.getElementById(bar.getAttribute("data-table"));
    if (!table) return;
    var selects = bar.querySelectorAll("select[data-filter]");
    var shown = 0, rows = table.tBodies[0].rows;
    Array.prototype.forEach.call(rows, function (row) {
      var ok = Array.prototype.every.call(selects, function (s) {
        if (!s.value) return true;
        var values = (row.getAttribute("data-filter-" + s.getAttribute("data-filter")) || "").split("|");
        return values.indexOf(s.value) !== -1;
      });
      row.style.display = ok ? "" : "none";
      if (ok) shown += 1;
    });
    var count = bar.querySelector(".kompakt-count");
    if (count) count.textContent = shown + " of " + rows.length + " rows";
  }

  function drawPlots() {
    if (typeof Plotly === "undefined") return;
    document.querySelectorAll(".kompakt-plot[data-figure]").forEach(function (div) {
      var source = document.getElementById(div.getAttribute("data-figure"));
      if (!source || div.getAttribute("data-drawn")) return;
      var figure = JSON.parse(source.textContent);
      Plotly.newPlot(div, figure.data, figure.layout, { displaylogo: false, responsive: true });
      div.setAttribute("data-drawn", "1");
    });
  }

  function init() {
    document.querySelectorAll("table.kompakt-table").forEach(makeSortable);
    document.querySelectorAll(".kompakt-filters").forEach(function (bar) {
      bar.querySelectorAll("select").forEach(function (s) { s.addEventListener("change", function () { applyFilters(bar); }); });
      applyFilters(bar);
    });
    drawPlots();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
