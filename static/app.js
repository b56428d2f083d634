// Charts and live updates for the KD dashboard.
// The server renders each chart's spec as JSON (<script type="application/json" id=...>) and a
// <div data-chart="that id">; this file only draws them, applies the page-wide log/smoothing
// controls, and on a run page appends epochs that arrive over server-sent events.
(() => {
  "use strict";
  const charts = [];
  const PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2",
                   "#eeca3b", "#9d755d", "#ff9da6", "#79706e"];
  const stored = (() => { try { return JSON.parse(localStorage.getItem("kd-chart-prefs")) || {}; } catch { return {}; } })();
  const prefs = { log: !!stored.log, smooth: Number(stored.smooth) || 0, axis: stored.axis || null };

  // The leaderboard's accuracy-against-cost chart: the axis chosen (kept across refreshes and visits) when
  // the chart has points on it, else the spec's own.
  const costAxis = (spec) => (prefs.axis && spec.axes[prefs.axis] && spec.axes[prefs.axis].points ? prefs.axis : spec.axis);

  const cssVar = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  // TensorBoard's debiased exponential moving average: the first points are not dragged to zero.
  function smooth(ys, weight) {
    if (!weight) return ys;
    let last = 0, n = 0;
    return ys.map((y) => {
      if (y == null || !Number.isFinite(y)) return y;
      last = last * weight + (1 - weight) * y;
      n += 1;
      return last / (1 - Math.pow(weight, n));
    });
  }

  function pick(obj, path) {
    return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
  }

  // "#4c78a8" -> "rgba(76,120,168,alpha)": a band in its line's colour.
  function fade(hex, alpha) {
    const m = /^#?([0-9a-f]{6})$/i.exec(hex || "");
    if (!m) return `rgba(128,128,128,${alpha})`;
    const n = parseInt(m[1], 16);
    return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
  }

  // A band's half-width in the chart's units: points for percentages, else 3 significant digits.
  function fmt(spec, value) {
    if (spec.yFormat && spec.yFormat.endsWith("%")) return `${(value * 100).toFixed(1)} pt`;
    return Number(value).toPrecision(3);
  }

  const maxX = (spec) => Math.max(0, ...spec.series.map((s) => (s.x.length ? s.x[s.x.length - 1] : 0)));

  function layout(spec, narrow) {
    const grid = cssVar("--grid"), muted = cssVar("--muted");
    const axis = { gridcolor: grid, zerolinecolor: grid, linecolor: grid, tickfont: { color: muted }, automargin: true };
    const logY = spec.log && prefs.log;
    const heatmap = spec.type === "heatmap";
    // legend: false when the page shows its own (the study page's curves share one).
    const legend = spec.series.length > 1 && !heatmap && spec.legend !== false;
    return {
      // Title and legend each get their own line above the plot, so they never overlap.
      margin: { l: 8, r: 12, t: (spec.title ? 26 : 6) + (legend ? 24 : 0), b: 8 },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: cssVar("--fg"), size: 12, family: getComputedStyle(document.body).fontFamily },
      title: spec.title ? { text: spec.title, x: 0, xanchor: "left", y: 1, yref: "container", yanchor: "top",
                            pad: { t: 6 }, font: { size: 13 } } : undefined,
      xaxis: { ...axis, title: { text: (spec.pareto ? spec.axes[costAxis(spec)].title : spec.xTitle) || "" },
               type: heatmap || spec.xCategory ? "category" : spec.xLog ? "log" : undefined, showgrid: !heatmap,
               tickvals: spec.xTicks ? spec.xTicks.values : undefined, ticktext: spec.xTicks ? spec.xTicks.text : undefined,
               // Room for the first and last axes' names of parallel coordinates, which sit at the plot's edges.
               range: spec.xTicks ? [-0.3, spec.xTicks.values.length - 0.7] : undefined,
               // Epochs are whole numbers: avoid ticks at 1.5 while a run is young.
               dtick: (spec.type === "line" && spec.xTitle === "Epoch" || spec.xWhole) && maxX(spec) <= 12 ? 1 : undefined },
      // An accuracy (yAccuracy) is never negative: with every point equal, autorange would reach below 0 %.
      yaxis: { ...axis, title: { text: spec.yTitle || "" }, type: heatmap ? "category" : logY ? "log" : "linear",
               rangemode: spec.yAccuracy ? "nonnegative" : undefined, showgrid: !heatmap, tickformat: logY || heatmap ? undefined : spec.yFormat },
      legend: { orientation: "h", x: 0, y: 1.0, yanchor: "bottom", bgcolor: "rgba(0,0,0,0)",
                font: { size: narrow ? 10 : 12 } },
      hovermode: spec.type === "line" ? "x unified" : "closest",
      // A search's parallel coordinates: their y is each axis's own 0..1, not a figure to read off.
      ...(spec.xTicks ? { yaxis: { ...axis, title: { text: spec.yTitle || "" }, showticklabels: false, range: [-0.05, 1.05] } } : {}),
      hoverlabel: { bgcolor: cssVar("--panel"), bordercolor: grid, font: { color: cssVar("--fg") } },
      showlegend: legend,
      bargap: 0.35,
      // Plotly.react keeps user zoom/pan while this stays the same; a log/linear switch resets the ranges.
      uirevision: (logY ? "log" : "linear") + (spec.pareto ? costAxis(spec) : ""),
    };
  }

  function traces(spec) {
    const out = [];
    spec.series.forEach((s, i) => {
      const color = s.color || PALETTE[i % PALETTE.length];
      const hover = spec.yFormat ? `%{y:${spec.yFormat}}` : "%{y:.4g}";
      if (spec.pareto) {
        // A configuration: its mean with its 95 % interval, ringed when it is on the chosen axis's front.
        const axis = costAxis(spec), ring = s.front[axis];
        out.push({ type: "scatter", mode: "markers", name: s.name, x: s.xs[axis], y: s.y, text: s.text, customdata: s.links,
                   error_y: { type: "data", symmetric: false, array: s.errorPlus, arrayminus: s.errorMinus,
                              color: fade(color, 0.6), thickness: 1.2, width: 3 },
                   marker: { color, size: ring.map((on) => (on ? 13 : 9)),
                             line: { width: ring.map((on) => (on ? 2.5 : 1)),
                                     color: ring.map((on) => (on ? cssVar("--fg") : cssVar("--panel"))) } },
                   hovertemplate: `%{text}<br>%{x:.3s} ${spec.axes[axis].unit}<br>${hover}<extra>${s.name}</extra>` });
      } else if (spec.type === "points") {
        // A search's charts (app.searches.charts): markers and lines as each series asks, hover text per point.
        out.push({ type: "scatter", mode: s.mode || "markers", name: s.name, x: s.x, y: s.y, text: s.text,
                   line: { color, width: s.mode === "lines" ? 2 : 1.2, shape: s.shape || "linear" },
                   marker: { color, size: s.mode === "lines+markers" ? 5 : 8 },
                   hovertemplate: `${s.text ? "%{text}<br>" : ""}${s.mode === "lines+markers" ? "" : hover}<extra>${s.name}</extra>` });
      } else if (spec.type === "scatter") {
        out.push({ type: "scatter", mode: "markers", name: s.name, x: s.x, y: s.y, text: s.text, customdata: s.links,
                   marker: { color, size: 10, line: { width: 1, color: cssVar("--panel") } },
                   hovertemplate: `%{text}<br>%{x:,} params<br>${hover}<extra>${s.name}</extra>` });
      } else if (spec.type === "bar") {
        // Groups' bars carry their 95 % interval as error bars; single runs have none (null).
        const error = s.errorPlus ? { type: "data", symmetric: false, array: s.errorPlus, arrayminus: s.errorMinus,
                                      color: cssVar("--fg"), thickness: 1.5, width: 6 } : undefined;
        out.push({ type: "bar", name: s.name, x: s.x, y: s.y, customdata: s.links, error_y: error, hovertext: s.names,
                   marker: { color: s.colors || color },
                   hovertemplate: `${s.names ? "%{hovertext}" : "%{x}"}<br>${hover}<extra></extra>` });
      } else if (spec.type === "heatmap") {
        out.push({ type: "heatmap", x: s.x, y: s.y, z: s.z, text: s.text, texttemplate: "%{text}",
                   hovertext: s.hover, hovertemplate: "%{hovertext}<extra></extra>", customdata: s.links,
                   colorscale: "Viridis", xgap: 2, ygap: 2, hoverongaps: false,
                   colorbar: { tickformat: spec.zFormat, outlinewidth: 0, thickness: 12,
                               tickfont: { color: cssVar("--muted") } } });
      } else if (s.upper) {
        // A group of runs: its mean inside a band (lower, then upper filled down to it).
        const w = spec.smoothable === false ? 0 : prefs.smooth;
        const fill = fade(color, 0.18);
        const edge = { color: "rgba(0,0,0,0)", width: 0 };
        out.push({ type: "scatter", mode: "lines", x: s.x, y: smooth(s.lower, w), line: edge, showlegend: false,
                   hoverinfo: "skip", legendgroup: s.name, connectgaps: false });
        out.push({ type: "scatter", mode: "lines", x: s.x, y: smooth(s.upper, w), line: edge, fill: "tonexty",
                   fillcolor: fill, showlegend: false, hoverinfo: "skip", legendgroup: s.name, connectgaps: false });
        // The band's half-width as computed (s.spread): a band clipped at 0 or 100 % is drawn shorter than it is.
        const half = (j) => (s.spread && s.spread[j] != null ? s.spread[j] : s.upper[j] - s.y[j]);
        const spread = s.upper.map((u, j) => (u == null ? "" : ` ± ${fmt(spec, half(j))}`));
        out.push({ type: "scatter", mode: s.x.length > 30 ? "lines" : "lines+markers", name: s.name, x: s.x,
                   y: smooth(s.y, w), line: { color, width: 2, dash: s.dash || "solid" }, marker: { size: 5 },
                   legendgroup: s.name, customdata: s.x.map((_, j) => [spread[j], s.n ? s.n[j] : ""]),
                   hovertemplate: `${hover}%{customdata[0]} (${s.band || "band"}, n=%{customdata[1]})<extra>${s.name}</extra>` });
      } else {
        const w = spec.smoothable === false ? 0 : prefs.smooth;
        const dash = s.dash || "solid";
        if (w > 0) {
          out.push({ type: "scatter", mode: "lines", x: s.x, y: s.y, name: s.name, showlegend: false, hoverinfo: "skip",
                     line: { color, width: 1, dash }, opacity: 0.25 });
        }
        out.push({ type: "scatter", mode: s.x.length > 30 ? "lines" : "lines+markers", name: s.name, x: s.x,
                   y: smooth(s.y, w), line: { color, width: 2, dash }, marker: { size: 5 },
                   hovertemplate: `${hover}<extra>${s.name}</extra>` });
      }
    });
    if (spec.pareto) {
      const line = spec.fronts[costAxis(spec)];
      // A step through the front's means: nothing cheaper is more accurate, to the right of each step.
      out.push({ type: "scatter", mode: "lines", name: "Pareto front", x: line.x, y: line.y, hoverinfo: "skip",
                 line: { shape: "hv", color: spec.frontColor || cssVar("--muted"), width: 1.5, dash: "dot" } });
    }
    return out;
  }

  function draw(chart) {
    const { el, spec } = chart;
    const empty = el.parentElement.querySelector(":scope > .chart-empty");
    const hasData = spec.series.some((s) => s.x.length > 0 && (!s.z || s.z.some((row) => row.some((v) => v != null))));
    if (empty) empty.hidden = hasData;
    el.hidden = !hasData && !!empty;
    if (el.hidden) return;
    window.Plotly.react(el, traces(spec), layout(spec, el.clientWidth < 520), {
      displaylogo: false, responsive: true,
      modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"],
    });
    if (!chart.bound && (spec.type === "scatter" || spec.type === "bar" || spec.type === "heatmap")) {
      chart.bound = true;
      el.on("plotly_click", (ev) => {
        const link = ev.points[0] && ev.points[0].customdata;
        if (typeof link === "string" && link) location.href = link;
      });
    }
  }

  function forgetDetached() {
    // htmx swapped these out (the compare page refreshes itself): drop them so they can be collected.
    for (let i = charts.length - 1; i >= 0; i--) if (!charts[i].el.isConnected) charts.splice(i, 1);
  }

  function initCharts(root) {
    if (!window.Plotly) return;
    forgetDetached();
    root.querySelectorAll("[data-chart]").forEach((el) => {
      const source = document.getElementById(el.dataset.chart);
      if (!source) return;
      if (el.dataset.drawn) {
        // An htmx refresh kept this element (hx-preserve) and brought a new spec: redraw it in place,
        // so that Plotly.react, with the same uirevision, keeps the user's zoom and pan.
        const chart = charts.find((c) => c.el === el);
        if (chart && chart.source !== source.textContent) {
          chart.source = source.textContent;
          chart.spec = JSON.parse(chart.source);
          draw(chart);
        }
        return;
      }
      el.dataset.drawn = "1";
      const chart = { el, source: source.textContent, spec: JSON.parse(source.textContent),
                      live: el.hasAttribute("data-live") };
      charts.push(chart);
      draw(chart);
    });
    root.querySelectorAll("[data-chart-axis]").forEach((select) => {
      const option = prefs.axis && select.querySelector(`option[value="${prefs.axis}"]`);
      if (option && !option.disabled) select.value = prefs.axis;
    });
    root.querySelectorAll("[data-control]").forEach((input) => {
      if (input.dataset.control === "log") input.checked = prefs.log;
      if (input.dataset.control === "smooth") { input.value = prefs.smooth; showSmooth(input); }
    });
  }

  function redrawAll() {
    forgetDetached();
    charts.forEach(draw);
  }

  function showSmooth(input) {
    const out = input.parentElement.querySelector("output");
    if (out) out.textContent = Number(input.value).toFixed(2);
  }

  document.addEventListener("input", (ev) => {
    const control = ev.target.dataset && ev.target.dataset.control;
    if (!control) return;
    if (control === "log") prefs.log = ev.target.checked;
    if (control === "smooth") { prefs.smooth = Number(ev.target.value); showSmooth(ev.target); }
    try { localStorage.setItem("kd-chart-prefs", JSON.stringify(prefs)); } catch { /* private mode */ }
    redrawAll();
  });
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redrawAll);

  // The cost axis of the leaderboard's chart, chosen above it.
  document.addEventListener("change", (ev) => {
    const select = ev.target;
    if (!(select instanceof HTMLSelectElement) || !select.dataset.chartAxis) return;
    prefs.axis = select.value;
    try { localStorage.setItem("kd-chart-prefs", JSON.stringify(prefs)); } catch { /* private mode */ }
    forgetDetached();
    charts.filter((c) => c.el.id === select.dataset.chartAxis).forEach(draw);
  });

  // A select whose options carry data-note (the datasets) shows the chosen option's note as its help.
  document.addEventListener("change", (ev) => {
    const select = ev.target;
    if (!(select instanceof HTMLSelectElement) || !select.selectedOptions[0]?.hasAttribute("data-note")) return;
    const help = select.closest(".field")?.querySelector(".help");
    if (!help) return;
    help.textContent = select.selectedOptions[0].dataset.note;
    help.hidden = !help.textContent;
  });

  // A [data-copy] button copies the text of the element it names (the study page's paper tables).
  document.addEventListener("click", async (ev) => {
    const button = ev.target.closest && ev.target.closest("[data-copy]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    let copied = false;
    try {
      await navigator.clipboard.writeText(source.textContent);
      copied = true;
    } catch {
      // No clipboard API (an insecure origin): select the text so that Ctrl+C copies it.
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
    const label = button.dataset.label || button.textContent;
    button.dataset.label = label;
    button.textContent = copied ? "Copied" : "Selected: press Ctrl+C";
    setTimeout(() => { button.textContent = label; }, 1600);
  });

  function appendEpoch(epoch) {
    for (const chart of charts) {
      if (!chart.live) continue;
      let changed = false;
      for (const s of chart.spec.series) {
        if (!s.key) continue;
        const last = s.x.length ? s.x[s.x.length - 1] : 0;
        const y = pick(epoch, s.key);
        if (epoch.epoch <= last || y == null) continue; // a reconnect may resend an epoch
        // New arrays, never push: Plotly.react recomputes a trace only when its arrays are new objects
        // (no layout.datarevision here), so grown old arrays would stay in `data` and never be drawn.
        s.x = [...s.x, epoch.epoch];
        s.y = [...s.y, y];
        changed = true;
      }
      if (changed) draw(chart);
    }
  }

  function replace(id, html) {
    const target = document.getElementById(id);
    if (!target) return;
    target.innerHTML = html;
    if (window.htmx) window.htmx.process(target);
  }

  // One EventSource per run page; the server ends the stream with "end" once the run is over.
  function startLive(root) {
    root.querySelectorAll("[data-events]").forEach((el) => {
      if (el.dataset.listening) return;
      el.dataset.listening = "1";
      const source = new EventSource(el.dataset.events);
      source.addEventListener("epoch", (ev) => appendEpoch(JSON.parse(ev.data)));
      source.addEventListener("progress", (ev) => replace("run-progress", ev.data));
      source.addEventListener("summary", (ev) => replace("run-summary", ev.data));
      // Closing from here would cut the response mid-chunk (Chrome logs that as an error): let the
      // server finish the stream, then stop the automatic reconnect that follows.
      let ended = false;
      source.addEventListener("end", () => { ended = true; el.dataset.ended = "1"; });
      source.addEventListener("error", () => { if (ended) source.close(); });
      window.addEventListener("pagehide", () => source.close());
    });
  }

  function init(root) {
    initCharts(root);
    startLive(root);
  }

  if (window.htmx) window.htmx.onLoad(init);
  else document.addEventListener("DOMContentLoaded", () => init(document.body));
})();

// The leaderboard's configuration rows open to their runs: htmx loads them on the first click
// (hx-trigger "click once"); this shows or hides the row that holds them.
document.addEventListener("click", (ev) => {
  const button = ev.target instanceof Element && ev.target.closest("button[data-expand][aria-controls]");
  if (!button) return;
  const row = document.getElementById(button.getAttribute("aria-controls"));
  if (!row) return;
  const open = button.getAttribute("aria-expanded") !== "true";
  button.setAttribute("aria-expanded", String(open));
  row.hidden = !open;
});

// htmx leaves a failed request's answer unshown (a button that saves nothing would look dead): say what
// the server said at the top of the page. The error page marks its message; JSON answers carry "detail".
document.addEventListener("htmx:responseError", (ev) => {
  const xhr = ev.detail.xhr;
  let message = "";
  try {
    message = JSON.parse(xhr.responseText).detail;
  } catch {
    const page = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    const marked = page.querySelector("[data-error-message]");
    message = marked ? marked.textContent : "";
  }
  if (typeof message !== "string" || !message.trim()) message = `${xhr.status} ${xhr.statusText}`.trim();
  let banner = document.getElementById("request-error");
  if (!banner) {
    banner = document.createElement("div");
    banner.id = "request-error";
    banner.className = "form-error";
    banner.setAttribute("role", "alert");
    document.querySelector("main")?.prepend(banner);
  }
  banner.textContent = message.trim();
});
