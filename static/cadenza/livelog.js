// The run page's live log (DESIGN §10).
//
// The socket sends stored lines after ?after=<seq>, then live ones, each with its seq; on a
// reconnect we ask for what follows the last seq we hold, so the log ends with every line
// once, in order. Lines are kept in memory (for the level filter and the search) and
// rendered in chunks, one per animation frame, through a DocumentFragment; the DOM keeps at
// most MAX_ROWS rows, so a 100,000-line log neither freezes the tab nor grows it without end.
(function () {
  "use strict";
  var section = document.getElementById("live-log");
  if (!section || !window.cadenzaStatus) { return; }
  var status = window.cadenzaStatus;
  var LEVELS = { debug: 0, info: 1, warning: 2, error: 3 };
  var MAX_ROWS = 5000;
  var CHUNK = 250;
  var MARKER = /^Step '.*' started/;
  var STEP_EVENT = /^Step '.*' (started|success|warning|failed|skipped|aborted)/;

  var box = document.getElementById("log");
  var conn = document.getElementById("log-conn");
  var levelSelect = document.getElementById("log-level");
  var search = document.getElementById("log-search");
  var count = document.getElementById("log-count");
  var followButton = document.getElementById("log-follow");
  var timeFormat = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit",
                                                  second: "2-digit", hour12: false });
  var lines = [];        // every line received, in seq order
  var lastSeq = 0;
  var pending = [];      // matching lines not rendered yet
  var trimmed = 0;       // matching lines dropped from the top of the DOM
  var shownCount = 0;
  var follow = true;
  var frame = null;
  var socket = null;
  var attempts = 0;
  var connections = 0;
  var ended = false;
  var retryTimer = null;
  var trimNotice = document.createElement("div");
  trimNotice.className = "line trimmed hidden";
  box.appendChild(trimNotice);

  // -- filtering and rendering -------------------------------------------------------------

  function isMarker(line) { return line.step_run !== null && MARKER.test(line.message); }

  function matches(line) {
    if (isMarker(line)) { return true; }  // step markers give context whatever the filter
    if ((LEVELS[line.level] || 0) < LEVELS[levelSelect.value]) { return false; }
    var text = search.value.trim().toLowerCase();
    return !text || line.message.toLowerCase().indexOf(text) !== -1;
  }

  function cell(className, text) {
    var span = document.createElement("span");
    span.className = className;
    span.textContent = text;
    return span;
  }

  function row(line) {
    var element = document.createElement("div");
    element.className = "line level-" + line.level + (isMarker(line) ? " marker" : "");
    element.dataset.seq = line.seq;
    element.appendChild(cell("seq", line.seq));
    element.appendChild(cell("ts", timeFormat.format(new Date(line.ts))));
    element.appendChild(cell("lvl", line.level === "info" ? "" : line.level.toUpperCase()));
    element.appendChild(cell("msg", line.message));
    return element;
  }

  function queue(matching) {
    pending.push.apply(pending, matching);
    if (pending.length > MAX_ROWS) {  // never render rows that would be trimmed at once
      trimmed += pending.length - MAX_ROWS;
      pending = pending.slice(pending.length - MAX_ROWS);
    }
    if (!frame) { frame = requestAnimationFrame(render); }
  }

  function render() {
    frame = null;
    var fragment = document.createDocumentFragment();
    var batch = pending.splice(0, CHUNK);
    batch.forEach(function (line) { fragment.appendChild(row(line)); });
    box.appendChild(fragment);
    shownCount += batch.length;
    trim();
    if (follow) { box.scrollTop = box.scrollHeight; }
    updateCount();
    if (pending.length) { frame = requestAnimationFrame(render); }
  }

  function trim() {
    var excess = shownCount - MAX_ROWS;
    if (excess <= 0) { return; }
    var before = follow ? 0 : box.scrollHeight;  // reading it forces a layout: only if needed
    for (var i = 0; i < excess; i++) { box.removeChild(trimNotice.nextSibling); }
    shownCount -= excess;
    trimmed += excess;
    if (!follow) { box.scrollTop -= before - box.scrollHeight; }  // keep the reader's place
  }

  function updateCount() {
    trimNotice.classList.toggle("hidden", trimmed === 0);
    trimNotice.textContent = trimmed + " earlier matching lines are not shown: narrow the log " +
      "with the level or the search.";
    var matching = shownCount + trimmed + pending.length;
    count.textContent = lines.length + " lines" +
      (matching !== lines.length ? " · " + matching + " match" : "");
  }

  function refilter() {
    while (trimNotice.nextSibling) { box.removeChild(trimNotice.nextSibling); }
    pending = [];
    trimmed = 0;
    shownCount = 0;
    follow = true;
    followButton.classList.add("hidden");
    queue(lines.filter(matches));
    updateCount();
  }

  function receive(batch) {
    var fresh = batch.filter(function (line) { return line.seq > lastSeq; });
    if (!fresh.length) { return; }
    lastSeq = fresh[fresh.length - 1].seq;
    section.dataset.lastSeq = lastSeq;
    lines.push.apply(lines, fresh);
    queue(fresh.filter(matches));
    if (!ended && fresh.some(function (l) { return l.step_run !== null && STEP_EVENT.test(l.message); })) {
      refreshPanels(300);
    }
  }

  // -- following the end of the log ------------------------------------------------------------

  box.addEventListener("scroll", function () {
    var atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
    if (atBottom !== follow) {
      follow = atBottom;
      followButton.classList.toggle("hidden", follow);
    }
  });
  followButton.addEventListener("click", function () {
    follow = true;
    followButton.classList.add("hidden");
    box.scrollTop = box.scrollHeight;
    box.focus();
  });
  levelSelect.addEventListener("change", refilter);
  var searchTimer = null;
  search.addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(refilter, 200);
  });

  // -- run header and panels -------------------------------------------------------------------

  var panels = document.getElementById("panels");
  var panelsTimer = null;

  function refreshPanels(delay) {
    clearTimeout(panelsTimer);
    panelsTimer = setTimeout(function () {
      fetch(panels.dataset.url, { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) { if (html !== null) { panels.innerHTML = html; } })
        .catch(function () { /* the next step event or the final state tries again */ });
    }, delay);
  }

  var header = document.getElementById("run-header");
  var durationCell = document.getElementById("run-duration");

  function formatDuration(seconds) {
    if (seconds < 60) { return seconds.toFixed(1) + " s"; }
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) { return minutes + " min " + Math.round(seconds % 60) + " s"; }
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function tick() {
    var started = header.dataset.started, finished = header.dataset.finished;
    if (!started) { return; }
    var end = finished ? new Date(finished) : new Date();
    durationCell.textContent = formatDuration(Math.max(0, (end - new Date(started)) / 1000));
  }
  var ticker = setInterval(tick, 1000);

  function applyState(run) {
    var cellStatus = document.getElementById("run-status");
    cellStatus.replaceChildren(status.badge(run.status));
    section.dataset.status = run.status;
    header.dataset.started = run.started_at || "";
    header.dataset.finished = run.finished_at || "";
    tick();
    var message = document.getElementById("run-message");
    message.textContent = run.outcome_message || "";
    message.classList.toggle("hidden", !run.outcome_message);
    if (status.FINAL.indexOf(run.status) !== -1) { finish(run.status); }
  }

  function finish(outcome) {
    // The consumer sends every stored line before the final state: the log is complete.
    ended = true;
    clearInterval(ticker);
    var abort = document.getElementById("abort-form");
    if (abort) { abort.remove(); }
    status.setConnection(conn, "ended", "Run ended: " + outcome + " — the log is complete");
    if (socket) { socket.close(1000); }
    refreshPanels(0);
    // End reporters create their deliveries just after the final state is published.
    setTimeout(function () { refreshPanels(0); }, 2500);
  }

  // -- the socket --------------------------------------------------------------------------------

  function connect() {
    retryTimer = null;
    var opened = false;
    socket = new WebSocket(status.socketUrl(section.dataset.ws + "?after=" + lastSeq));
    socket.onopen = function () {
      opened = true;
      attempts = 0;
      connections += 1;
      section.dataset.connections = connections;
      status.setConnection(conn, "live", connections > 1 ? "Live (reconnected)" : "Live");
    };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.type === "lines") { receive(message.lines); }
      else if (message.type === "state") { applyState(message.run); }
    };
    socket.onclose = function (event) {
      socket = null;
      if (ended) { return; }
      if (event.code === 4404) {
        status.setConnection(conn, "refused", "Not allowed to follow this log");
        return;
      }
      var delay = status.backoff(attempts);
      attempts += 1;
      var seconds = Math.max(1, Math.round(delay / 1000));
      status.setConnection(conn, "reconnecting", (opened ? "Disconnected" : "Cannot connect") +
        " — retrying in " + seconds + " s (attempt " + attempts + ")");
      retryTimer = setTimeout(connect, delay);
    };
  }

  window.addEventListener("online", function () {
    if (retryTimer && !ended) { clearTimeout(retryTimer); connect(); }
  });
  connect();
})();
