// STEP2: the checkbox is enabled once both documents were opened, and 次へ once it is
// checked. Without scripts both stay enabled and the server checks the same rule.
(function () {
  "use strict";
  var form = document.getElementById("agree-form");
  if (!form) { return; }
  var needed = form.dataset.documents.trim().split(/\s+/);
  var opened = form.dataset.presented.trim().split(/\s+/).filter(Boolean);
  var box = document.getElementById("agree");
  var next = document.getElementById("next");
  function update() {
    var all = needed.every(function (d) { return opened.indexOf(d) >= 0; });
    box.disabled = !all;
    if (!all) { box.checked = false; }
    next.disabled = !box.checked;
  }
  document.querySelectorAll(".document-link").forEach(function (link) {
    link.addEventListener("click", function () {
      if (opened.indexOf(link.dataset.document) < 0) { opened.push(link.dataset.document); }
      // The server records the document when the new tab loads it.
      window.setTimeout(update, 0);
    });
  });
  box.addEventListener("change", update);
  update();
})();
