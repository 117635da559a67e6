// The verification queue: "select all" on the page, the number ticked, and the reason
// required when the bulk action is "Tolak". Event delegation, so it keeps working after
// htmx swaps the results.
"use strict";

(function () {
  function picked(form) {
    return form.querySelectorAll('input[name="pilih"]:checked').length;
  }

  function update(form) {
    var label = form.querySelector(".reg-picked");
    if (label) {
      var n = picked(form);
      label.textContent = n ? "(" + n + " dicentang)" : "";
    }
    var action = form.querySelector(".reg-action");
    var reason = form.querySelector('input[name="alasan"]');
    if (action && reason) {
      reason.required = action.value === "ditolak";
    }
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    var form = target.closest ? target.closest("form.reg-bulk") : null;
    if (!form) {
      return;
    }
    if (target.classList.contains("reg-all")) {
      form.querySelectorAll('input[name="pilih"]').forEach(function (box) {
        box.checked = target.checked;
      });
    }
    update(form);
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("reg-bulk")) {
      return;
    }
    var n = picked(form);
    var action = form.querySelector(".reg-action");
    if (n === 0 || !action || !action.value) {
      return;  // the server explains what is missing
    }
    var label = action.options[action.selectedIndex].text;
    if (!window.confirm(label + " " + n + " pendaftaran? Setiap pendaftar mendapat pemberitahuan.")) {
      event.preventDefault();
    }
  });
})();
