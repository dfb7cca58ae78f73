// The dashboard's charts, drawn by uPlot (shipped beside this file): the Watchlist page's
// mentions per day, and the Sources page's items per day as one sparkline per source.
(function () {
  "use strict";
  function mentions() {
    var holder = document.getElementById("chart");
    var source = document.getElementById("chart-data");
    if (!holder || !source) return;
    var data = JSON.parse(source.textContent);
    var width = Math.max(320, Math.min(holder.clientWidth || 800, 1000));
    var opts = {
      title: data.label,
      width: width,
      height: 260,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
      axes: [{}, { label: "matches" }],
      series: [
        {},
        { label: "mentions", stroke: "#1f6feb", fill: "rgba(31,111,235,0.15)", width: 2,
          paths: uPlot.paths.bars({ size: [0.7, 40] }) }
      ]
    };
    new uPlot(opts, [data.x, data.y], holder);
    holder.setAttribute("data-drawn", "yes");
  }
  function sparklines() {
    var source = document.getElementById("spark-data");
    if (!source) return;
    var data = JSON.parse(source.textContent);
    var spots = document.querySelectorAll(".spark[data-source]");
    for (var i = 0; i < spots.length; i++) {
      var counts = data.series[spots[i].getAttribute("data-source")];
      if (!counts) continue;
      var opts = {
        width: 140,
        height: 28,
        legend: { show: false },
        cursor: { show: false },
        select: { show: false },
        axes: [{ show: false }, { show: false }],
        // a little below zero, so that a source with no items shows a flat line at 0
        scales: { x: { time: false }, y: { range: function (u, min, max) { var top = Math.max(1, max); return [-0.08 * top, top]; } } },
        series: [{}, { stroke: "#1f6feb", fill: "rgba(31,111,235,0.15)", width: 1.5, points: { show: false } }]
      };
      new uPlot(opts, [data.x, counts], spots[i]);
      spots[i].setAttribute("data-drawn", "yes");
    }
  }
  function draw() {
    if (typeof uPlot === "undefined") return;
    mentions();
    sparklines();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
