// Konsol Prokus, broadcast composer: a character counter under the text, and the confirm
// button switched off once pressed (no second broadcast from a double click).
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  var text = document.getElementById("text");
  var hint = document.getElementById("text-hint");
  if (text && hint && hint.dataset.max) {
    var counter = document.createElement("span");
    counter.className = "char-count";
    hint.appendChild(document.createTextNode(" "));
    hint.appendChild(counter);
    var update = function () {
      counter.textContent = "(" + text.value.length + "/" + hint.dataset.max + ")";
    };
    text.addEventListener("input", update);
    update();
  }
  var confirmForm = document.getElementById("confirm-form");
  if (confirmForm) {
    confirmForm.addEventListener("submit", function (event) {
      if (event.defaultPrevented) { return; }
      var button = document.getElementById("confirm-send");
      if (button) {
        // after this event's default action: a disabled button would not be submitted
        window.setTimeout(function () { button.disabled = true; }, 0);
      }
    });
  }
});
