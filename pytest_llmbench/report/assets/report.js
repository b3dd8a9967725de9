(function () {
  "use strict";
  function key(row, index) {
    var cell = row.cells[index];
    if (!cell) { return ""; }
    var value = cell.getAttribute("data-sort");
    return value === null ? cell.textContent.trim() : value;
  }
  function sortTable(table, index, th) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    Array.prototype.forEach.call(th.parentNode.cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    rows.sort(function (a, b) {
      var x = key(a, index), y = key(b, index);
      if (x === "" || y === "") { return x === y ? 0 : (x === "" ? 1 : -1); }
      var nx = Number(x), ny = Number(y);
      var cmp = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return dir * cmp;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortTable(table, index, th); });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter") { sortTable(table, index, th); }
      });
    });
  });
  function value(id) { var el = document.getElementById(id); return el ? el.value : ""; }
  function applyFilters() {
    var text = value("filter-text").toLowerCase();
    var rating = value("filter-rating"), status = value("filter-status"), usecase = value("filter-usecase");
    var shown = 0;
    document.querySelectorAll("#results-table tbody tr").forEach(function (row) {
      var ok = (!text || row.textContent.toLowerCase().indexOf(text) >= 0) &&
        (!rating || row.getAttribute("data-rating") === rating) &&
        (!status || row.getAttribute("data-status") === status) &&
        (!usecase || (" " + row.getAttribute("data-profiles") + " ").indexOf(" " + usecase + " ") >= 0);
      row.hidden = !ok;
      if (ok) { shown += 1; }
    });
    var count = document.getElementById("filter-count");
    if (count) { count.textContent = shown + " shown"; }
  }
  document.querySelectorAll("[data-filter]").forEach(function (el) {
    el.addEventListener("input", applyFilters);
    el.addEventListener("change", applyFilters);
  });
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  });
})();
