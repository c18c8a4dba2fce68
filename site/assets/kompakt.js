// kompakt's site behaviour: every generated table becomes a Tabulator grid, plots are drawn from embedded JSON.
//
// The page holds a plain HTML table (readable without JavaScript); its headings carry what the grid
// needs (leaderboard/columns.py defines it): the column's key, group, kind, CSV heading and whether it
// starts hidden; each cell its raw value (data-v, else its text) beside the escaped HTML the reader sees.
// Nothing from the data is ever inserted as HTML here: grid cells are copies of the table's own nodes,
// everything else is built with createElement and textContent, and figures come from JSON script tags.
(function () {
  "use strict";

  // ------------------------------------------------------------------------------------ helpers

  function make(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) { node.setAttribute(name, attrs[name]); });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function escapeHTML(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  }

  // ------------------------------------------------------------------------------------ number filters
  // A number filter reads ">0.5", "<= 1 GiB", "0.4..0.6", "95%" or a bare number (equal to the digits typed).

  var UNITS = {
    "": 1, "%": 0.01, "x": 1, "×": 1, "k": 1e3, "kb": 1e3, "kib": 1024, "m": 1e6, "mb": 1e6, "mib": 1048576,
    "g": 1e9, "gb": 1e9, "gib": 1073741824, "t": 1e12, "tb": 1e12, "tib": 1099511627776
  };

  function parseQuantity(text) {
    var m = /^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*([a-z%×]*)\s*$/i.exec(text);
    if (!m) return null;
    var unit = UNITS[m[2].toLowerCase()];
    if (unit === undefined) return null;
    var decimals = (m[1].split(/e/i)[0].split(".")[1] || "").length;
    return { value: parseFloat(m[1]) * unit, tolerance: 0.5 * Math.pow(10, -decimals) * unit };
  }

  function numberTest(expression) {
    var text = (expression || "").trim();
    if (!text) return function () { return true; };
    var range = text.split("..");
    if (range.length === 2) {
      var lo = range[0].trim() ? parseQuantity(range[0]) : { value: -Infinity };
      var hi = range[1].trim() ? parseQuantity(range[1]) : { value: Infinity };
      if (!lo || !hi) return null;
      return function (v) { return v !== null && v >= lo.value && v <= hi.value; };
    }
    var m = /^(>=|<=|>|<|=)?(.*)$/.exec(text);
    var q = parseQuantity(m[2]);
    if (!q) return null;
    switch (m[1]) {
      case ">=": return function (v) { return v !== null && v >= q.value; };
      case "<=": return function (v) { return v !== null && v <= q.value; };
      case ">": return function (v) { return v !== null && v > q.value; };
      case "<": return function (v) { return v !== null && v < q.value; };
      default: return function (v) { return v !== null && Math.abs(v - q.value) <= q.tolerance + 1e-12 * Math.abs(q.value); };
    }
  }

  // ------------------------------------------------------------------------------------ reading the table

  function readTable(table) {
    var headRows = table.tHead.rows;
    var groups = {};
    Array.prototype.forEach.call(headRows[0].cells, function (th) {
      groups[th.getAttribute("data-group")] = { label: th.textContent, description: th.getAttribute("title") || "" };
    });
    var columns = Array.prototype.map.call(headRows[headRows.length - 1].cells, function (th, index) {
      return {
        index: index,
        key: th.getAttribute("data-key"),
        group: th.getAttribute("data-group"),
        kind: th.getAttribute("data-kind") || "text",
        multi: th.hasAttribute("data-multi"),
        hidden: th.hasAttribute("data-hidden"),
        csv: th.getAttribute("data-csv") || th.textContent,
        extras: JSON.parse(th.getAttribute("data-extras") || "[]").map(function (e) { return { suffix: e[0], csv: e[1], kind: e[2], inTitle: e[3] }; }),
        title: th.textContent,
        description: th.getAttribute("title") || ""
      };
    });
    var cells = [];
    var data = Array.prototype.map.call(table.tBodies[0].rows, function (tr, rowIndex) {
      var item = { _row: rowIndex, _t: [] };
      cells.push(tr.cells);
      columns.forEach(function (c) {
        var td = tr.cells[c.index];
        var raw = td.hasAttribute("data-v") ? td.getAttribute("data-v") : td.textContent;
        if (c.kind === "number") {
          var n = parseFloat(raw);
          item[c.key] = raw === "" || isNaN(n) ? null : n;
        } else {
          item[c.key] = raw === "" ? null : raw;
        }
        c.extras.forEach(function (e) {
          var holder = e.inTitle ? td.querySelector('[data-x="' + e.suffix + '"]') : null;
          var x = e.inTitle ? (holder ? holder.getAttribute("title") : null) : td.getAttribute("data-x-" + e.suffix);
          item[c.key + "__" + e.suffix] = x === null ? null : (e.kind === "number" ? parseFloat(x) : x);
        });
        item._t.push(td.textContent.toLowerCase());
      });
      return item;
    });
    return { groups: groups, columns: columns, data: data, cells: cells };
  }

  // ------------------------------------------------------------------------------------ the address bar

  function urlState(prefix) {
    var params = new URLSearchParams(window.location.search);
    var state = { q: "", filters: {}, sort: [], cols: {} };
    params.forEach(function (value, name) {
      if (prefix && name.indexOf(prefix) !== 0) return;
      if (!prefix && /^t\d+\./.test(name)) return;
      var key = name.slice(prefix.length);
      if (key === "q") state.q = value;
      else if (key === "sort") {
        value.split(",").forEach(function (part) {
          var bits = part.split(":");
          if (bits[0]) state.sort.push({ column: bits[0], dir: bits[1] === "asc" ? "asc" : "desc" });
        });
      } else if (key === "cols") {
        value.split(",").forEach(function (part) {
          if (part.length > 1) state.cols[part.slice(1)] = part.charAt(0) !== "-";
        });
      } else state.filters[key] = value;
    });
    return state;
  }

  function writeUrl(prefix, grid) {
    var params = new URLSearchParams(window.location.search);
    var names = [];
    params.forEach(function (value, name) {
      var mine = prefix ? name.indexOf(prefix) === 0 : !/^t\d+\./.test(name);
      if (mine) names.push(name);
    });
    names.forEach(function (name) { params.delete(name); });
    var q = grid.search.value.trim();
    if (q) params.set(prefix + "q", q);
    grid.table.getHeaderFilters().forEach(function (f) {
      if (f.value !== "" && f.value !== null && f.value !== undefined) params.set(prefix + f.field, f.value);
    });
    var sort = grid.table.getSorters().map(function (s) { return s.field + ":" + s.dir; });
    if (sort.length) params.set(prefix + "sort", sort.join(","));
    var cols = [];
    grid.columns.forEach(function (c) {
      var visible = grid.table.getColumn(c.key).isVisible();
      if (visible === c.hidden) cols.push((visible ? "+" : "-") + c.key);
    });
    if (cols.length) params.set(prefix + "cols", cols.join(","));
    var query = params.toString();
    var url = window.location.pathname + (query ? "?" + query : "") + window.location.hash;
    window.history.replaceState(window.history.state, "", url);
  }

  // ------------------------------------------------------------------------------------ header filters

  function choiceValues(data, c) {
    var seen = {};
    data.forEach(function (item) {
      var v = item[c.key];
      if (v === null) return;
      (c.multi ? v.split("|") : [v]).forEach(function (part) { if (part) seen[part] = true; });
    });
    return Object.keys(seen).sort(function (a, b) { return a.localeCompare(b); });
  }

  var MAX_CHOICES = 60;

  function choiceEditor(values) {
    return function (cell, onRendered, success) {
      var select = make("select", { "aria-label": "filter " + cell.getColumn().getDefinition().field });
      select.appendChild(new Option("all", ""));
      values.forEach(function (v) { select.appendChild(new Option(v, v)); });
      var initial = cell.getValue();
      if (initial && values.indexOf(initial) === -1) select.appendChild(new Option(initial, initial));
      select.value = initial || "";
      select.addEventListener("change", function () { success(select.value); });
      return select;
    };
  }

  function inputEditor(placeholder, validate) {
    return function (cell, onRendered, success) {
      var input = make("input", { type: "search", placeholder: placeholder, "aria-label": "filter " + cell.getColumn().getDefinition().field });
      input.value = cell.getValue() || "";
      function check() {
        var ok = !validate || validate(input.value);
        input.classList.toggle("kompakt-invalid", !ok);
        input.title = ok ? "" : "not understood: try >0.5, <=100, 0.4..0.6, <1 GiB or 95%";
      }
      input.addEventListener("input", check);
      input.addEventListener("change", function () { success(input.value); });
      onRendered(check);
      return input;
    };
  }

  function headerFilter(c, data) {
    if (c.kind === "number") {
      return {
        headerFilter: inputEditor("e.g. >0.5", function (text) { return numberTest(text) !== null; }),
        headerFilterFunc: function (expression, value) {
          var test = numberTest(expression);
          return test === null ? true : test(value === undefined ? null : value);
        }
      };
    }
    var values = c.kind === "choice" ? choiceValues(data, c) : [];
    if (c.kind === "choice" && values.length <= MAX_CHOICES) {
      return {
        headerFilter: choiceEditor(values),
        headerFilterFunc: function (wanted, value) {
          if (!wanted) return true;
          if (value === null || value === undefined) return false;
          return c.multi ? value.split("|").indexOf(wanted) !== -1 : value === wanted;
        }
      };
    }
    return {
      headerFilter: inputEditor("filter"),
      headerFilterFunc: function (text, value, rowData) {
        return rowData._t[c.index].indexOf(String(text).trim().toLowerCase()) !== -1;
      }
    };
  }

  // ------------------------------------------------------------------------------------ CSV

  function csvValue(c) {
    return function (value) {
      if (value === null || value === undefined) return "";
      if (c.kind === "number") return value;
      var text = c.multi ? String(value).split("|").join(", ") : String(value);
      // a spreadsheet would run a cell that starts like a formula: keep it text
      return /^[=+\-@\t\r]/.test(text) ? "'" + text : text;
    };
  }

  // ------------------------------------------------------------------------------------ the grid

  function gridColumns(parsed, state, tableRef) {
    var byGroup = [];
    var groupIndex = {};
    parsed.columns.forEach(function (c) {
      var visible = Object.prototype.hasOwnProperty.call(state.cols, c.key) ? state.cols[c.key] : !c.hidden;
      var def = {
        title: escapeHTML(c.title),
        field: c.key,
        visible: visible,
        headerSortStartingDir: c.kind === "number" ? "desc" : "asc",
        sorter: c.kind === "number" ? "number" : "string",
        sorterParams: { alignEmptyValues: "bottom" },
        formatter: function (cell) {
          var td = parsed.cells[cell.getData()._row][c.index];
          var span = make("span", { "class": "kompakt-cell" });
          Array.prototype.forEach.call(td.childNodes, function (n) { span.appendChild(n.cloneNode(true)); });
          return span;
        },
        titleDownload: c.csv,
        accessorDownload: csvValue(c),
        headerFilterPlaceholder: ""
      };
      var filter = headerFilter(c, parsed.data);
      def.headerFilter = filter.headerFilter;
      def.headerFilterFunc = filter.headerFilterFunc;
      if (c.key === "variant") def.maxWidth = 300;
      if (c.kind === "text" && c.key !== "variant") def.maxWidth = 260;
      var members = [def];
      c.extras.forEach(function (e) {
        members.push({
          title: escapeHTML(e.csv), field: c.key + "__" + e.suffix, visible: false, titleDownload: e.csv,
          accessorDownload: csvValue({ kind: e.kind, multi: false }),
          download: function () { return tableRef.table.getColumn(c.key).isVisible(); }
        });
      });
      if (!Object.prototype.hasOwnProperty.call(groupIndex, c.group)) {
        groupIndex[c.group] = byGroup.length;
        var g = parsed.groups[c.group] || { label: c.group };
        byGroup.push({ title: escapeHTML(g.label), columns: [], frozen: byGroup.length === 0, headerHozAlign: "left" });
      }
      Array.prototype.push.apply(byGroup[groupIndex[c.group]].columns, members);
    });
    return byGroup;
  }

  function matchesSearch(item, words) {
    var text = item._t.join(" ");
    return words.every(function (w) { return text.indexOf(w) !== -1; });
  }

  function toolbar(grid, parsed) {
    var bar = make("div", { "class": "kompakt-toolbar" });
    grid.search = make("input", { type: "search", "class": "kompakt-search", placeholder: "Search all columns", "aria-label": "search all columns" });
    bar.appendChild(grid.search);

    var chooser = make("div", { "class": "kompakt-chooser" });
    var toggle = make("button", { type: "button", "class": "kompakt-button", "aria-expanded": "false", title: "show or hide columns" }, "Columns ▾");
    chooser.appendChild(toggle);
    var panel = make("div", { "class": "kompakt-chooser-panel", role: "group", "aria-label": "columns shown" });
    panel.hidden = true;
    toggle.addEventListener("click", function () {
      panel.hidden = !panel.hidden;
      toggle.setAttribute("aria-expanded", panel.hidden ? "false" : "true");
    });
    document.addEventListener("click", function (e) {
      if (!panel.hidden && !chooser.contains(e.target)) { panel.hidden = true; toggle.setAttribute("aria-expanded", "false"); }
    });
    var boxes = {};
    var groupOrder = [];
    parsed.columns.forEach(function (c) { if (groupOrder.indexOf(c.group) === -1) groupOrder.push(c.group); });
    groupOrder.forEach(function (key) {
      var set = make("fieldset", {});
      set.appendChild(make("legend", {}, (parsed.groups[key] || { label: key }).label));
      parsed.columns.filter(function (c) { return c.group === key; }).forEach(function (c) {
        var label = make("label", { title: c.description });
        var box = make("input", { type: "checkbox", "data-column": c.key });
        boxes[c.key] = box;
        box.addEventListener("change", function () {
          if (box.checked) grid.table.showColumn(c.key); else grid.table.hideColumn(c.key);
          grid.changed();
        });
        label.appendChild(box);
        label.appendChild(document.createTextNode(" " + c.title));
        set.appendChild(label);
      });
      panel.appendChild(set);
    });
    chooser.appendChild(panel);
    bar.appendChild(chooser);
    grid.syncBoxes = function () {
      Object.keys(boxes).forEach(function (key) { boxes[key].checked = grid.table.getColumn(key).isVisible(); });
    };

    var csv = make("button", { type: "button", "class": "kompakt-button", title: "the rows and columns shown, in this order, as CSV" }, "Export CSV");
    csv.addEventListener("click", function () {
      grid.table.download("csv", grid.csvName + ".csv", { bom: true });
    });
    bar.appendChild(csv);

    var reset = make("button", { type: "button", "class": "kompakt-button", title: "clear the search, filters and sort; default columns" }, "Reset view");
    reset.addEventListener("click", function () {
      grid.search.value = "";
      grid.table.clearHeaderFilter();
      grid.table.clearSort();
      parsed.columns.forEach(function (c) {
        if (c.hidden) grid.table.hideColumn(c.key); else grid.table.showColumn(c.key);
      });
      grid.table.refreshFilter();
      grid.syncBoxes();
      grid.changed();
    });
    bar.appendChild(reset);

    grid.count = make("span", { "class": "kompakt-count", "aria-live": "polite" });
    bar.appendChild(grid.count);
    return bar;
  }

  function buildGrid(table, position) {
    if (typeof Tabulator === "undefined" || !table.tHead || !table.tBodies.length) return;
    var parsed = readTable(table);
    var prefix = position === 0 ? "" : "t" + (position + 1) + ".";
    var state = urlState(prefix);
    var grid = { columns: parsed.columns, csvName: table.getAttribute("data-csv-name") || "table", ready: false };
    grid.changed = function () { if (grid.ready) writeUrl(prefix, grid); };

    var wrap = table.closest(".kompakt-table-wrap") || table;
    var host = make("div", { "class": "kompakt-grid", "data-grid-for": table.id });
    var bar = toolbar(grid, parsed);
    grid.search.value = state.q;
    wrap.parentNode.insertBefore(bar, wrap);
    wrap.parentNode.insertBefore(host, wrap);

    var known = {};
    parsed.columns.forEach(function (c) { known[c.key] = true; });
    var words = function () { return grid.search.value.trim().toLowerCase().split(/\s+/).filter(Boolean); };

    grid.table = new Tabulator(host, {
      data: parsed.data,
      columns: gridColumns(parsed, state, grid),
      layout: "fitData",
      maxHeight: "78vh",
      renderVertical: "virtual",
      columnHeaderVertAlign: "bottom",
      sortOrderReverse: true,  // the first sort clicked stays the main one; shift-click adds the next
      initialSort: state.sort.filter(function (s) { return known[s.column]; }),
      initialHeaderFilter: Object.keys(state.filters).filter(function (k) { return known[k]; }).map(function (k) { return { field: k, value: state.filters[k] }; }),
      downloadConfig: { columnGroups: false, rowGroups: false, columnCalcs: false },
      downloadRowRange: "active",
      placeholder: "No rows match the search and filters."
    });
    grid.table.on("tableBuilt", function () {
      grid.table.setFilter(function (item) {
        var w = words();
        return !w.length || matchesSearch(item, w);
      });
      // headings' tooltips as plain text (Tabulator's own tooltips would take HTML)
      parsed.columns.forEach(function (c) {
        var col = grid.table.getColumn(c.key);
        if (col) col.getElement().setAttribute("title", c.description);
      });
      var groupKeys = Object.keys(parsed.groups);
      grid.table.getColumns(true).forEach(function (group, i) {
        var g = parsed.groups[groupKeys[i]];
        if (g) group.getElement().setAttribute("title", g.description);
      });
      grid.syncBoxes();
      wrap.hidden = true;
      grid.ready = true;
      update();
      host.setAttribute("data-ready", "1");
    });
    function update() {
      var shown = grid.table.getDataCount("active"), total = grid.table.getDataCount();
      grid.count.textContent = shown + " of " + total + " rows";
      grid.changed();
    }
    grid.table.on("dataFiltered", function () { if (grid.ready) setTimeout(update, 0); });
    grid.table.on("dataSorted", function () { if (grid.ready) setTimeout(update, 0); });
    var typing = null;
    grid.search.addEventListener("input", function () {
      clearTimeout(typing);
      typing = setTimeout(function () { grid.table.refreshFilter(); }, 150);
    });
    table.kompaktGrid = grid;
  }

  // ------------------------------------------------------------------------------------ plots

  function drawPlots() {
    if (typeof Plotly === "undefined") return;
    document.querySelectorAll(".kompakt-plot[data-figure]").forEach(function (div) {
      var source = document.getElementById(div.getAttribute("data-figure"));
      if (!source || div.getAttribute("data-drawn")) return;
      var figure = JSON.parse(source.textContent);
      Plotly.newPlot(div, figure.data, figure.layout, figure.config || { displaylogo: false, responsive: true });
      div.setAttribute("data-drawn", "1");
    });
  }

  function init() {
    document.querySelectorAll("table.kompakt-table").forEach(function (table, i) { buildGrid(table, i); });
    drawPlots();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
