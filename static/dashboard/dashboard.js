// jobdeck: the little the dashboard needs beyond htmx. No inline script anywhere (CSP-ready).
(function () {
  "use strict";

  function flash(level, text) {
    var box = document.getElementById("flash");
    if (!box) return;
    var p = document.createElement("p");
    p.className = "msg " + level;
    p.textContent = text;
    box.appendChild(p);
    setTimeout(function () { p.remove(); }, 8000);
  }

  // Messages raised by actions through HX-Trigger.
  document.body.addEventListener("dashboard:message", function (event) {
    flash(event.detail.level || "info", event.detail.text || "");
  });

  // Requests htmx did not swap (403, 404, 500, network down).
  document.body.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status === 400 || xhr.status === 409) return; // swapped: the fragment says what is wrong
    var why = xhr.status === 403 ? "You are not allowed to do that." : "The server answered " + xhr.status + ".";
    flash("error", why);
  });
  document.body.addEventListener("htmx:sendError", function () {
    flash("error", "The dashboard cannot reach the server; retrying on the next refresh.");
  });

  // "Select every job on this page": a checkbox only useful with JavaScript, so hidden without.
  function wirePickAll(root) {
    root.querySelectorAll("input.pick-all").forEach(function (box) {
      box.hidden = false;
      box.addEventListener("change", function () {
        document.querySelectorAll('input[name="ids"][form="bulk-form"]').forEach(function (pick) {
          pick.checked = box.checked;
        });
      });
    });
  }
  wirePickAll(document);
  document.body.addEventListener("htmx:load", function (event) { wirePickAll(event.detail.elt); });
})();
