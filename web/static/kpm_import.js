// Impor KPM: show the upload's own progress, and let htmx show the server's refusal
// (a 400/413 answer carries the explanation) instead of dropping it.
"use strict";

document.addEventListener("htmx:beforeSwap", function (event) {
  var status = event.detail.xhr ? event.detail.xhr.status : 0;
  if (event.detail.target && event.detail.target.id === "kpm-upload-result" &&
      (status === 400 || status === 413 || status === 415)) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});

document.addEventListener("htmx:xhr:progress", function (event) {
  var form = document.getElementById("kpm-upload");
  if (!form || !form.contains(event.target) || !event.detail.lengthComputable) {
    return;
  }
  var box = form.querySelector(".kpm-send-progress");
  var bar = box && box.querySelector("progress");
  if (bar) {
    box.hidden = false;
    bar.value = Math.round(event.detail.loaded * 100 / event.detail.total);
  }
});

document.addEventListener("htmx:afterRequest", function (event) {
  var form = document.getElementById("kpm-upload");
  if (form && event.target === form) {
    var box = form.querySelector(".kpm-send-progress");
    if (box) { box.hidden = true; }
    if (event.detail.successful) { form.reset(); }
  }
});
