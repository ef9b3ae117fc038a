// postline dashboard: optional conveniences. Every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // "Select all" checkboxes in dead-letter tables.
  for (const all of document.querySelectorAll("input.select-all")) {
    all.addEventListener("change", () => {
      const table = all.closest("table");
      for (const box of table.querySelectorAll("tbody input[type=checkbox]")) box.checked = all.checked;
    });
  }
});
