// The mailed link is /points/registration#<token>. Browsers never send the part after
// "#", so the token is in no server log; this posts it in the page's form (with its CSRF
// token), then removes it from the address bar and history.
(function () {
  "use strict";
  var token = window.location.hash.slice(1);
  var form = document.getElementById("registration-form");
  if (!token || !form) { return; }
  history.replaceState(null, "", window.location.pathname);
  form.elements.token.value = decodeURIComponent(token);
  document.getElementById("registration-progress").hidden = false;
  form.submit();
})();
