// Draws every <canvas data-chart="…"> from the JSON script it names, with Chart.js.
(function () {
  "use strict";
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var source = document.getElementById(canvas.dataset.chart);
    if (!source || typeof Chart === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    new Chart(canvas, {
      type: canvas.dataset.kind || "bar",
      data: {
        labels: data.labels || [],
        datasets: [{ label: canvas.dataset.label, data: data.values || [],
                     backgroundColor: "rgba(47, 91, 211, 0.6)", borderColor: "#2f5bd3" }]
      },
      options: { responsive: true, animation: false }
    });
    canvas.dataset.drawn = "true";
  });
})();
