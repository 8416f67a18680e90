// weibao console: countdowns, the as-of slider's label, print, and the reports' charts.
(function () {
  "use strict";
  var CST = 8 * 3600 * 1000;

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function cst(ms, seconds) {
    var d = new Date(ms + CST);
    var s = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
    return seconds ? s + ":" + pad(d.getUTCSeconds()) : s;
  }
  function span(ms) {
    var s = Math.floor(Math.abs(ms) / 1000), d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600),
      m = Math.floor(s % 3600 / 60);
    if (d) return d + " d " + h + " h";
    if (h) return h + " h " + pad(m) + " min";
    return m + " min";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-deadline]").forEach(function (el) {
      var left = Date.parse(el.getAttribute("data-deadline")) - now;
      el.textContent = left >= 0 ? span(left) + " left" : "overdue by " + span(left);
      el.classList.toggle("overdue", left < 0);
    });
  }

  function sliderLabel(input) {
    var out = document.getElementById("as-of-label");
    if (!out) return;
    var v = parseInt(input.value, 10);
    out.textContent = v >= parseInt(input.max, 10) ? "now" : cst(v * 1000, true) + " (UTC+8)";
  }

  function charts(root) {
    if (!window.echarts) return;
    root.querySelectorAll("[data-chart-for]").forEach(function (el) {
      if (el.getAttribute("data-drawn")) return;
      var src = document.getElementById("chart-" + el.getAttribute("data-chart-for"));
      if (!src) return;
      var data = JSON.parse(src.textContent);
      var chart = window.echarts.init(el, null, { renderer: "svg" });
      chart.setOption({
        animation: false,
        tooltip: { trigger: "axis" },
        legend: { top: 0 },
        grid: { left: 40, right: 16, top: 40, bottom: 60, containLabel: true },
        xAxis: { type: "category", data: data.categories, axisLabel: { interval: 0, rotate: data.categories.length > 4 ? 20 : 0 } },
        yAxis: { type: "value", minInterval: 1 },
        series: data.series.map(function (s) {
          return { name: s.name, type: "bar", data: s.data, label: { show: true, position: "top" } };
        })
      });
      el.setAttribute("data-drawn", "1");
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 30000);
    var slider = document.getElementById("as-of");
    if (slider) {
      slider.addEventListener("input", function () { sliderLabel(slider); });
      sliderLabel(slider);
    }
    document.querySelectorAll("[data-print]").forEach(function (b) {
      b.addEventListener("click", function () { window.print(); });
    });
    charts(document);
  });
  document.addEventListener("htmx:afterSwap", function (e) { tick(); charts(e.target); });
})();
