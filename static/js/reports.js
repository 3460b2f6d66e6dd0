// Draws the KPI report's charts from the JSON the page carries (json_script #kpi-charts); every chart's
// numbers are also in the table below it, so the page says everything without JavaScript.
(function () {
  "use strict";
  var PALETTE = ["#2453d4", "#176b3a", "#a15c00", "#b42318", "#5b2bb5", "#0e7490", "#be185d", "#4d7c0f", "#5d6675"];

  function draw() {
    var source = document.getElementById("kpi-charts");
    if (!source || typeof window.Chart === "undefined") return;
    JSON.parse(source.textContent).forEach(function (spec) {
      var canvas = document.getElementById(spec.canvas);
      if (!canvas || window.Chart.getChart(canvas)) return;
      var round = spec.type === "doughnut";
      var datasets = spec.datasets.map(function (set, i) {
        var colour = round ? spec.labels.map(function (_, j) { return PALETTE[j % PALETTE.length]; }) : PALETTE[i % PALETTE.length];
        return { label: set.label, data: set.data, backgroundColor: colour, borderColor: colour };
      });
      var scales = round ? {} : {
        x: { stacked: spec.stacked, ticks: { autoSkip: true, maxRotation: 0 } },
        y: { stacked: spec.stacked, beginAtZero: true },
      };
      new window.Chart(canvas, {
        type: spec.type,
        data: { labels: spec.labels, datasets: datasets },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          scales: scales,
          plugins: { legend: { display: round || datasets.length > 1, position: "bottom" } },
        },
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
