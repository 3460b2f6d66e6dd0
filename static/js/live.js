// Live mission page: on every (re)connect tell the server the last event we
// have, so it replays whatever we missed while the socket was down.
(function () {
  function lastSeq() {
    var last = 0;
    document.querySelectorAll("#timeline [data-seq]").forEach(function (el) {
      var seq = parseInt(el.getAttribute("data-seq"), 10);
      if (seq > last) last = seq;
    });
    return last;
  }
  function setState(text) {
    var el = document.getElementById("live-state");
    if (el) el.textContent = text;
  }
  function ours(evt) {
    return evt.target && evt.target.id === "live"; // not the notification socket every page also has
  }
  document.addEventListener("htmx:wsOpen", function (evt) {
    if (!ours(evt)) return;
    setState("Live: connected.");
    // Text streamed over the old socket may be stale or finished: the server shows this socket's afresh.
    var streams = document.getElementById("transcript-live");
    if (streams) streams.replaceChildren();
    evt.detail.socketWrapper.send(JSON.stringify({ type: "resume", after: lastSeq() }));
  });
  document.addEventListener("htmx:wsClose", function (evt) {
    if (!ours(evt)) return;
    setState("Live: reconnecting…");
  });
  // Every event re-renders the sections, so a <details> the person opened or closed would snap back to
  // the server's default. Remember what they chose, by the element's id, and re-apply it after each swap.
  var chosen = {};
  document.addEventListener("click", function (evt) {
    var summary = evt.target.closest && evt.target.closest("#live details[id] > summary");
    if (!summary) return;
    var details = summary.parentElement;
    chosen[details.id] = !details.open; // the click toggles it just after this handler
  });
  function restoreChosen() {
    Object.keys(chosen).forEach(function (id) {
      var details = document.getElementById(id);
      if (details && details.tagName === "DETAILS" && details.open !== chosen[id]) details.open = chosen[id];
    });
  }
  document.addEventListener("htmx:wsAfterMessage", function (evt) {
    var live = document.getElementById("live");
    if (live) live.setAttribute("data-last-seq", String(lastSeq()));
    if (ours(evt)) restoreChosen();
  });
})();
