// The floor board, live: listens to /floor/events and swaps in /floor/board when the floor
// changes; ticks the countdowns every second. Progressive enhancement: without it the page
// refreshes every 30 seconds.
(function () {
  "use strict";
  var root = document.getElementById("floor-board");
  if (!root || !window.EventSource || !window.fetch) { return; }
  var live = document.getElementById("floor-live");
  var query = "?location=" + encodeURIComponent(root.getAttribute("data-location") || "");
  var counter = root.getAttribute("data-counter");
  var busy = false;
  var again = false;

  function say(text) { if (live) { live.textContent = text; } }

  function tick() {
    var now = Date.now() / 1000;
    var spans = root.querySelectorAll(".countdown[data-due-at]");
    for (var i = 0; i < spans.length; i++) {
      var s = Math.round(Number(spans[i].getAttribute("data-due-at")) - now);
      var a = Math.abs(s);
      var text = Math.floor(a / 60) + ":" + ("0" + (a % 60)).slice(-2);
      spans[i].textContent = s >= 0 ? "in " + text : text + " late";
      var line = spans[i].parentNode;
      if (s < 0 && line && line.className.indexOf("late") < 0) { line.className += " late"; }
    }
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch("/floor/board" + query, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.text(); })
      .then(function (html) {
        root.innerHTML = html;
        root.setAttribute("data-counter", counter);
        tick();
        var at = document.getElementById("floor-generated");
        say("Live: updated" + (at ? " at " + at.textContent : "") + ".");
      })
      .catch(function () { say("Could not update the board; retrying."); })
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  var events = new EventSource("/floor/events" + query);
  events.addEventListener("ready", function (e) {
    if (e.data !== counter) { counter = e.data; refresh(); }
  });
  events.addEventListener("change", function (e) { counter = e.data; refresh(); });
  events.onerror = function () { say("Connection lost; reconnecting…"); };
  events.onopen = function () { say("Live: this board updates itself."); };
  setInterval(tick, 1000);
  tick();
})();
