// The scenario page's history chart: one bar per run, its height the duration, its colour
// and its tooltip the outcome (the table under the chart says the same in words).
(function () {
  "use strict";
  var canvas = document.getElementById("history-chart");
  var source = document.getElementById("history-data");
  if (!canvas || !source || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var css = getComputedStyle(document.documentElement);
  var colours = {
    success: css.getPropertyValue("--ok").trim(), warning: css.getPropertyValue("--warn").trim(),
    failed: css.getPropertyValue("--bad").trim(), aborted: "#6b7280",
    running: css.getPropertyValue("--accent").trim(), queued: "#9ca3af"
  };
  var chart = new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.labels,
      datasets: [{
        label: "Duration (s)",
        data: data.durations,
        backgroundColor: data.statuses.map(function (s) { return colours[s] || "#9ca3af"; })
      }]
    },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      plugins: {
        legend: { display: false },
        tooltip: { callbacks: { afterLabel: function (item) {
          return "Outcome: " + data.statuses[item.dataIndex];
        } } }
      },
      scales: { y: { beginAtZero: true, title: { display: true, text: "seconds" } } },
      onClick: function (event, elements) {
        if (!elements.length) { return; }
        var row = document.querySelector('#history tr[data-run="' + data.ids[elements[0].index] + '"] a');
        if (row) { window.location = row.href; }
      }
    }
  });
  canvas.dataset.drawn = String(chart.data.labels.length);
})();
