// 登録する: after the first submit the button is disabled. The hidden idempotency key
// is what makes a second submission (scripts off, or a resent form) register once.
(function () {
  "use strict";
  var form = document.getElementById("register-form");
  if (!form) { return; }
  form.addEventListener("submit", function () {
    var button = document.getElementById("register");
    window.setTimeout(function () { button.disabled = true; }, 0);
  });
})();
