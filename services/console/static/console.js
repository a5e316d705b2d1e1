// The console's own script (no inline scripts: the Content-Security-Policy forbids them).
// Dialogs for the actions that need a few more fields (cancel, reschedule, ride).
document.addEventListener("click", function (event) {
  var opener = event.target.closest("[data-open-dialog]");
  if (opener) {
    var dialog = document.getElementById(opener.getAttribute("data-open-dialog"));
    if (dialog && dialog.showModal) { dialog.showModal(); }
  }
  var closer = event.target.closest("[data-close-dialog]");
  if (closer) {
    var own = closer.closest("dialog");
    if (own) { own.close(); }
  }
});
document.addEventListener("htmx:afterRequest", function (event) {
  var dialog = event.target.closest && event.target.closest("dialog");
  if (dialog && event.detail.successful && dialog.open) { dialog.close(); }
});
document.addEventListener("htmx:afterSwap", function (event) {
  if (event.detail.target && event.detail.target.id === "dialog-slot") {
    var dialog = event.detail.target.querySelector("dialog");
    if (dialog && dialog.showModal) { dialog.showModal(); }
  }
});
// Live updates: mark the stream open or closed (a page, and its tests, can tell).
document.addEventListener("htmx:sseOpen", function (event) {
  event.detail.elt.setAttribute("data-live", "open");
});
document.addEventListener("htmx:sseError", function (event) {
  event.detail.elt.setAttribute("data-live", "closed");
});
