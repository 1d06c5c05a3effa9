// Replay page: the asciinema player, and the command list as markers.
(function () {
  "use strict";
  var el = document.getElementById("player");
  if (!el) { return; }
  var player = AsciinemaPlayer.create(el.dataset.src, el, {
    idleTimeLimit: 2, speed: 1, fit: "width", controls: true, preload: true
  });
  window.gatehousePlayer = player;
  document.querySelectorAll("button.marker").forEach(function (b) {
    b.addEventListener("click", function () {
      player.seek(parseFloat(b.dataset.t));
    });
  });
})();
