// Kotak masuk: keep the conversation scrolled to the newest message when it was there
// already, and count what is left of a reply (no inline scripts: the CSP forbids them).
"use strict";

(function () {
  function atBottom(box) {
    return box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  }

  function toBottom() {
    var box = document.getElementById("percakapan");
    if (box) { box.scrollTop = box.scrollHeight; }
  }

  var follow = true;
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "percakapan") {
      follow = atBottom(event.detail.target);
    }
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (follow) { toBottom(); }
  });

  function counter() {
    var area = document.querySelector("textarea[data-counter]");
    if (!area) { return; }
    var hint = document.getElementById(area.dataset.counter);
    var max = parseInt(hint.dataset.max, 10);
    var update = function () {
      var left = max - area.value.length;
      hint.textContent = "Sisa " + left.toLocaleString("id-ID") + " dari " +
        max.toLocaleString("id-ID") + " karakter.";
    };
    area.addEventListener("input", update);
  }

  document.addEventListener("DOMContentLoaded", function () {
    toBottom();
    counter();
  });
})();
