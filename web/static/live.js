// Live view: a read-only xterm fed by Server-Sent Events of asciicast lines.
(function () {
  "use strict";
  var el = document.getElementById("terminal");
  if (!el) { return; }
  var state = document.getElementById("live-state");
  // disableStdin: the viewer never types into the session. No clipboard
  // addon is loaded, so OSC 52 in the stream cannot reach the clipboard.
  var term = new Terminal({ disableStdin: true, convertEol: false, cols: 80, rows: 24, scrollback: 2000 });
  term.open(el);
  window.gatehouseTerm = term;
  var es = new EventSource(el.dataset.stream);
  es.onopen = function () { state.textContent = "live"; };
  es.onmessage = function (m) {
    var ev = JSON.parse(m.data);
    if (ev[1] === "o") { term.write(ev[2]); }
    if (ev[1] === "r") {
      var p = ev[2].split("x");
      term.resize(parseInt(p[0], 10), parseInt(p[1], 10));
    }
  };
  es.addEventListener("end", function () { state.textContent = "session ended"; es.close(); });
  es.onerror = function () { state.textContent = "disconnected"; };
})();
