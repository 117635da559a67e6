// Konsol Prokus: the little script the pages need (no inline scripts: the CSP forbids them).
"use strict";

// Every htmx request carries the session's CSRF token (the server refuses a POST without it).
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) {
    event.detail.headers["X-CSRF-Token"] = meta.content;
  }
});

// <form data-confirm="Yakin?">: ask before submitting (htmx elements use hx-confirm instead).
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (form instanceof HTMLFormElement && form.dataset.confirm &&
      !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
    event.stopImmediatePropagation();
  }
}, true);
