// A run or step state as the pages show it: a symbol and a word, never colour alone.
// The same markup as templates/runs/_status.html (the run_display template tag).
(function () {
  "use strict";
  var SYMBOLS = { queued: "◷", pending: "○", running: "▶", success: "✓", warning: "!",
                  failed: "✗", aborted: "■", skipped: "↷" };
  window.cadenzaStatus = {
    FINAL: ["success", "warning", "failed", "aborted"],
    badge: function (status) {
      var badge = document.createElement("span");
      badge.className = "status status-" + status;
      badge.dataset.status = status;
      var symbol = document.createElement("span");
      symbol.setAttribute("aria-hidden", "true");
      symbol.textContent = SYMBOLS[status] || "·";
      badge.appendChild(symbol);
      badge.appendChild(document.createTextNode(" " + status.charAt(0).toUpperCase() + status.slice(1)));
      return badge;
    },
    // Reconnect delays: 0.5 s, 1 s, 2 s … up to 15 s, with jitter so that a restarted web
    // server is not hit by every page at the same instant.
    backoff: function (attempt) {
      var base = Math.min(15000, 500 * Math.pow(2, attempt));
      return Math.round(base * (0.75 + Math.random() * 0.5));
    },
    socketUrl: function (path) {
      return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
    },
    setConnection: function (element, state, text) {
      element.dataset.state = state;
      element.textContent = text;
    }
  };
})();
