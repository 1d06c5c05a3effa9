// Live view: a read-only xterm fed over a WebSocket with asciicast events.
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
  var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + el.dataset.stream;
  var ws = new WebSocket(url);
  ws.onopen = function () { state.textContent = "live"; };
  ws.onmessage = function (m) {
    var ev = JSON.parse(m.data);
    if (ev[1] === "o") { term.write(ev[2]); }
    if (ev[1] === "r") {
      var p = ev[2].split("x");
      term.resize(parseInt(p[0], 10), parseInt(p[1], 10));
    }
  };
  ws.onclose = function () { state.textContent = "session ended"; };
})();
