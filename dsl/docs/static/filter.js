// Filters of the index matrix: hide the rows that do not match. Without JavaScript every row stays visible.
"use strict";
(function () {
  var form = document.getElementById("filters");
  var table = document.getElementById("matrix");
  if (!form || !table) {
    return;
  }
  var tag = document.getElementById("filter-tag");
  var policy = document.getElementById("filter-policy");
  var diverging = document.getElementById("filter-diverging");
  var count = document.getElementById("filter-count");
  var rows = table.querySelectorAll("tr.case-row");

  function words(row, name) {
    var value = row.getAttribute(name) || "";
    return value.split(" ").filter(function (word) { return word !== ""; });
  }

  function apply() {
    var shown = 0;
    rows.forEach(function (row) {
      var visible = (!tag.value || words(row, "data-tags").indexOf(tag.value) >= 0)
        && (!policy.value || words(row, "data-policies").indexOf(policy.value) >= 0)
        && (!diverging.checked || row.getAttribute("data-diverges") === "yes");
      row.hidden = !visible;
      if (visible) {
        shown += 1;
      }
    });
    table.querySelectorAll("tbody.topic").forEach(function (group) {
      group.hidden = group.querySelector("tr.case-row:not([hidden]), tr.broken") === null;
    });
    table.querySelectorAll("[data-policy]").forEach(function (cell) {
      cell.classList.toggle("chosen", policy.value !== "" && cell.getAttribute("data-policy") === policy.value);
    });
    count.textContent = shown + " of " + rows.length + " rows";
  }

  form.hidden = false;
  form.addEventListener("change", apply);
  form.addEventListener("submit", function (event) { event.preventDefault(); });
  apply();
})();
