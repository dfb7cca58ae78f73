// The Watchlist page's chart: mentions per day, drawn by uPlot (shipped beside this file).
(function () {
  "use strict";
  function draw() {
    var holder = document.getElementById("chart");
    var source = document.getElementById("chart-data");
    if (!holder || !source || typeof uPlot === "undefined") return;
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
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
