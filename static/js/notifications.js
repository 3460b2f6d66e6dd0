// The per-user notification socket (#notifications): the queue page says which gates it shows on every
// (re)connect, so the server sends only what changed; toasts can be dismissed with their button or Escape.
(function () {
  var MAX_TOASTS = 4;
  function ours(evt) {
    return evt.target && evt.target.id === "notifications";
  }
  function queueFrame() {
    var list = document.getElementById("gate-queue");
    if (!list) return null;
    var shown = [];
    list.querySelectorAll("[data-gate]").forEach(function (el) {
      shown.push(parseInt(el.getAttribute("data-gate"), 10));
    });
    return JSON.stringify({
      type: "queue",
      shown: shown,
      kind: list.getAttribute("data-kind") || "",
      appends: list.getAttribute("data-appends") !== "false",
    });
  }
  function tidy() {
    var list = document.getElementById("gate-queue");
    var empty = document.getElementById("gate-queue-empty");
    if (list && empty) empty.hidden = list.querySelector("[data-gate]") !== null;
    var toasts = document.querySelectorAll("#toasts [data-toast]");
    for (var i = 0; i < toasts.length - MAX_TOASTS; i++) toasts[i].remove();
  }
  document.addEventListener("htmx:wsOpen", function (evt) {
    if (!ours(evt)) return;
    evt.target.setAttribute("data-live", "connected");
    var frame = queueFrame();
    if (frame) evt.detail.socketWrapper.send(frame);
    // The home dashboard asks for its live parts on every (re)connect, so it catches up on what it missed.
    if (document.getElementById("home-dashboard")) evt.detail.socketWrapper.send('{"type": "home"}');
  });
  document.addEventListener("htmx:wsClose", function (evt) {
    if (ours(evt)) evt.target.setAttribute("data-live", "reconnecting");
  });
  document.addEventListener("htmx:wsAfterMessage", function (evt) {
    if (ours(evt)) tidy();
  });
  document.addEventListener("click", function (evt) {
    var button = evt.target.closest && evt.target.closest("[data-dismiss]");
    if (button) button.closest("[data-toast]").remove();
  });
  document.addEventListener("keydown", function (evt) {
    if (evt.key !== "Escape" || !document.activeElement) return;
    var toast = document.activeElement.closest && document.activeElement.closest("[data-toast]");
    if (toast) toast.remove();
  });
})();
