// Replay page: the asciinema player, opened on the session's last screen
// (the poster), and the command list as markers.
(function () {
  "use strict";
  var el = document.getElementById("player");
  if (!el) { return; }
  var opts = { idleTimeLimit: 2, speed: 1, fit: "width", controls: true, preload: true };
  if (el.dataset.finalFrame) { opts.poster = el.dataset.finalFrame; }
  var player = AsciinemaPlayer.create(el.dataset.src, el, opts);
  window.gatehousePlayer = player;
  document.querySelectorAll("button.marker").forEach(function (b) {
    b.addEventListener("click", function () {
      player.seek(parseFloat(b.dataset.t));
    });
  });
})();
