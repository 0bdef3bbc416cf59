// The monitoring page keeps itself up to date: ws/monitor/ forwards the run state changes of
// every project the user may view. A change first updates the run's badge where it is shown,
// then the sections are reloaded from the server (at most one request in flight), so runs
// move between "running", "queued" and "failures" as the database says, and a message lost
// while disconnected heals at the next reload.
(function () {
  "use strict";
  var sections = document.getElementById("monitor-sections");
  if (!sections || !window.cadenzaStatus) { return; }
  var status = window.cadenzaStatus;
  var conn = document.getElementById("monitor-conn");
  var attempts = 0, connections = 0, inFlight = false, again = false, timer = null;

  function reload() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    fetch(sections.dataset.url, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        sections.innerHTML = html;
        sections.dataset.reloads = (parseInt(sections.dataset.reloads || "0", 10) + 1).toString();
      })
      .catch(function () { /* the next change or reconnect reloads again */ })
      .finally(function () {
        inFlight = false;
        if (again) { again = false; schedule(250); }
      });
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = setTimeout(reload, delay);
  }

  function apply(run) {
    sections.querySelectorAll('tr[data-run="' + run.id + '"] .status').forEach(function (badge) {
      badge.replaceWith(status.badge(run.status));
    });
    schedule(150);  // a burst of changes costs one reload
  }

  function connect() {
    var opened = false;
    var socket = new WebSocket(status.socketUrl("/ws/monitor/"));
    socket.onopen = function () {
      opened = true;
      attempts = 0;
      connections += 1;
      sections.dataset.connections = connections;
      status.setConnection(conn, "live", "Live");
      schedule(0);  // runs may have changed since the page was rendered or while disconnected
    };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.type === "state") { apply(message.run); }
    };
    socket.onclose = function () {
      var delay = status.backoff(attempts);
      attempts += 1;
      status.setConnection(conn, "reconnecting", (opened ? "Disconnected" : "Cannot connect") +
        " — retrying in " + Math.max(1, Math.round(delay / 1000)) + " s");
      setTimeout(connect, delay);
    };
  }
  connect();
})();
