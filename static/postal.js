// STEP4: a postal code fills its prefecture as soon as it is complete (the server does
// the same on submit when the prefecture was left empty). POST, so no postal code
// appears in a URL.
(function () {
  "use strict";
  var form = document.getElementById("customer-form");
  if (!form) { return; }
  var csrf = form.elements.csrf.value;
  form.querySelectorAll("input[data-prefecture]").forEach(function (input) {
    input.addEventListener("input", function () {
      var digits = input.value.replace(/[^0-9０-９]/g, "");
      if (digits.length !== 7) { return; }
      var select = document.getElementById(input.dataset.prefecture);
      var body = new URLSearchParams({ csrf: csrf, postal_code: input.value });
      fetch("/points/postal", { method: "POST", body: body, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : { prefecture: null }; })
        .then(function (data) { if (data.prefecture) { select.value = data.prefecture; } })
        .catch(function () { /* the server fills it on submit */ });
    });
  });
})();
