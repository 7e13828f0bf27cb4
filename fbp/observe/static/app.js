// The fbp dashboard: polls the run's JSON API (the token travels in a cookie set by the
// first page load) and draws the graph, the tables and the preview of one connection.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const HOST_COLOURS = ["#e8eef9", "#e6f6ec", "#fdf1e1", "#f3e8fb", "#e3f5f7", "#fbe9e9"];
const state = { layout: null, selected: null, scalars: {}, lastSnapshot: null };

function el(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (parent) parent.appendChild(node);
  return node;
}

async function getJSON(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function fmt(value, digits = 0) {
  if (value === null || value === undefined) return "";
  return Number(value).toLocaleString("en", { maximumFractionDigits: digits });
}

// a wait in seconds as short text, as fbp.runtime.latency.format_latency does
function fmtLatency(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  if (seconds < 1e-3) return `${fmt(seconds * 1e6)} µs`;
  if (seconds < 1) return `${Number((seconds * 1e3).toPrecision(3))} ms`;
  return `${fmt(seconds, 2)} s`;
}

// -- the graph ------------------------------------------------------------------------

function drawGraph(layout) {
  const svg = document.getElementById("graph");
  svg.innerHTML = "";
  const boxW = 150, boxH = 44, gapX = 70, gapY = 26;
  const columns = Math.max(...layout.processes.map((p) => p.column)) + 1;
  const rows = Math.max(...layout.processes.map((p) => p.row)) + 1;
  const width = columns * (boxW + gapX) + 20, height = rows * (boxH + gapY) + 30;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const nodes = [...new Set(layout.processes.map((p) => p.node || ""))];
  const where = {};
  for (const p of layout.processes) {
    where[p.name] = { x: 10 + p.column * (boxW + gapX), y: 20 + p.row * (boxH + gapY) };
  }
  const edges = el("g", {}, svg);
  for (const c of layout.connections) {
    const a = where[c.src], b = where[c.tgt];
    const x1 = a.x + boxW, y1 = a.y + boxH / 2, x2 = b.x, y2 = b.y + boxH / 2;
    const mid = (x1 + x2) / 2;
    const d = `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`;
    const g = el("g", { class: "edge", "data-connection": c.connection }, edges);
    el("path", { d }, g);
    el("path", { d, class: "hit" }, g);
    const label = el("text", { x: mid, y: (y1 + y2) / 2 - 4, "text-anchor": "middle" }, g);
    label.textContent = `${c.src_port} → ${c.tgt_port}`;
    const numbers = el("text", {
      x: mid, y: (y1 + y2) / 2 + 10, "text-anchor": "middle",
      id: `edge-numbers-${c.connection}`,
    }, g);
    numbers.textContent = "";
    const title = el("title", { id: `edge-title-${c.connection}` }, g);
    title.dataset.ends = `${c.src}.${c.src_port} -> ${c.tgt}.${c.tgt_port}`;
    title.textContent = `${title.dataset.ends}: click to preview`;
    g.addEventListener("click", () => select(c));
  }
  for (const p of layout.processes) {
    const { x, y } = where[p.name];
    const g = el("g", { class: "process", id: `process-${p.name}` }, svg);
    const colour = HOST_COLOURS[nodes.indexOf(p.node || "") % HOST_COLOURS.length];
    el("rect", { x, y, width: boxW, height: boxH, style: `fill:${colour}` }, g);
    const name = el("text", { x: x + boxW / 2, y: y + 17 }, g);
    name.textContent = p.workers > 1 ? `${p.name} ×${p.workers}` : p.name;
    const sub = el("text", { x: x + boxW / 2, y: y + 33, class: "component" }, g);
    sub.textContent = p.component + (p.node ? ` @ ${p.node}` : "");
  }
}

function select(connection) {
  state.selected = connection;
  state.scalars = {};
  for (const g of document.querySelectorAll(".edge")) {
    g.classList.toggle("selected", Number(g.dataset.connection) === connection.connection);
  }
  document.getElementById("preview-title").textContent =
    `${connection.src}.${connection.src_port} → ${connection.tgt}.${connection.tgt_port}`;
  refreshPreview();
}

// -- tables and live numbers ------------------------------------------------------------

function updateTables(snapshot) {
  document.getElementById("graph-name").textContent = snapshot.graph.split("/").pop();
  const badge = document.getElementById("run-state");
  badge.textContent = snapshot.state;
  badge.className = `state ${snapshot.state}`;
  document.getElementById("elapsed").textContent = `${fmt(snapshot.elapsed, 1)} s`;
  const nodeOf = {};
  for (const p of state.layout ? state.layout.processes : []) nodeOf[p.name] = p.node || "";
  const processes = document.querySelector("#processes tbody");
  processes.innerHTML = "";
  for (const p of snapshot.processes) {
    const row = processes.insertRow();
    row.id = `row-${p.name}`;
    const cells = [p.name, p.component, nodeOf[p.process] || "", p.state, fmt(p.packets_in),
      fmt(p.packets_out), fmt(p.rate), fmt(p.cpu_percent), p.rss ? fmt(p.rss / 2 ** 20) : "",
      fmt(p.errors), fmt(p.restarts)];
    cells.forEach((text, i) => {
      const cell = row.insertCell();
      cell.textContent = text;
      if (i < 4) cell.className = "text";
    });
  }
  const connections = document.querySelector("#connections tbody");
  connections.innerHTML = "";
  const perConnection = {};
  for (const c of snapshot.connections) {
    const row = connections.insertRow();
    const fill = c.capacity ? (100 * c.fill_bytes) / c.capacity : 0;
    const cells = [c.label, fmt(c.packets), fmt(c.throughput), fmt(c.bytes / 2 ** 20, 1), null,
      fmt(c.full_waits), fmt(c.drops), fmtLatency(c.latency_p50), fmtLatency(c.latency_p99)];
    cells.forEach((text, i) => {
      const cell = row.insertCell();
      if (text === null) {
        cell.innerHTML = `<span class="fill${fill > 80 ? " high" : ""}"><span style="width:${fill}%"></span></span> ${fmt(fill)}%`;
      } else {
        cell.textContent = text;
      }
      if (i === 0) cell.className = "text";
    });
    if (c.connection !== null) {
      const total = perConnection[c.connection] ||
        { rate: 0, fill: 0, drops: 0, p50: null, p99: null };
      total.rate += c.throughput;
      total.fill = Math.max(total.fill, fill);
      total.drops += c.drops;
      // one connection is several rings with workers (or hosts): show the slowest
      for (const key of ["p50", "p99"]) {
        const value = c[`latency_${key}`];
        if (value !== null && value !== undefined) total[key] = Math.max(total[key] || 0, value);
      }
      perConnection[c.connection] = total;
    }
  }
  for (const [number, total] of Object.entries(perConnection)) {
    const label = document.getElementById(`edge-numbers-${number}`);
    if (label) {
      label.textContent = `${fmt(total.rate)}/s · ${fmt(total.fill)}% full` +
        (total.drops ? ` · ${fmt(total.drops)} dropped` : "");
    }
    const title = document.getElementById(`edge-title-${number}`);
    if (title) {
      title.textContent = `${title.dataset.ends}: waited in the ring (last 2 s) ` +
        `p50 ${fmtLatency(total.p50)}, p99 ${fmtLatency(total.p99)}; click to preview`;
    }
  }
}

// -- previews -----------------------------------------------------------------------------

function colour(v) {
  // a perceptual dark-blue -> green -> yellow ramp (viridis-like), v in 0..1
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const x = Math.min(Math.max(v, 0), 1) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2), t = x - i;
  return stops[i].map((a, k) => a + (stops[i + 1][k] - a) * t);
}

function showOnly(id) {
  for (const other of ["preview-image", "preview-plot", "preview-scalars", "preview-text"]) {
    document.getElementById(other).style.display = other === id ? "block" : "none";
  }
}

function drawImage(p) {
  const canvas = document.getElementById("preview-image");
  canvas.width = p.width;
  canvas.height = p.height;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(p.width, p.height);
  const raw = atob(p.pixels);
  const logScale = document.getElementById("log-scale").checked;
  const userMin = parseFloat(document.getElementById("min-value").value);
  const userMax = parseFloat(document.getElementById("max-value").value);
  const lo = Number.isFinite(userMin) ? userMin : p.min;
  const hi = Number.isFinite(userMax) ? userMax : p.max;
  for (let i = 0; i < raw.length; i++) {
    // undo the server's scaling to counts, then apply the user's scale
    let v = raw.charCodeAt(i) / 255;
    const counts = p.log ? p.min + Math.expm1(v * Math.log1p(p.max - p.min)) : p.min + v * (p.max - p.min);
    const span = Math.max(hi - lo, 1e-9);
    const c = Math.min(Math.max(counts - lo, 0), span);
    v = logScale ? Math.log1p(c) / Math.log1p(span) : c / span;
    const [r, g, b] = colour(v);
    image.data.set([r, g, b, 255], i * 4);
  }
  ctx.putImageData(image, 0, 0);
  showOnly("preview-image");
  document.getElementById("preview-info").textContent =
    `${p.shape.join(" × ")} frame, range ${fmt(p.min, 1)}–${fmt(p.max, 1)}, sample ${p.samples}`;
}

function polyline(svg, xs, ys, width, height, pad = 24) {
  const xmin = Math.min(...xs), xmax = Math.max(...xs);
  const ymin = Math.min(...ys), ymax = Math.max(...ys);
  const sx = (x) => pad + ((x - xmin) / (xmax - xmin || 1)) * (width - 2 * pad);
  const sy = (y) => height - pad / 2 - ((y - ymin) / (ymax - ymin || 1)) * (height - pad);
  el("polyline", { points: xs.map((x, i) => `${sx(x)},${sy(ys[i])}`).join(" ") }, svg);
  return { xmin, xmax, ymin, ymax };
}

function drawPlot(p) {
  const svg = document.getElementById("preview-plot");
  svg.innerHTML = "";
  const r = polyline(svg, p.x, p.y, 520, 240);
  const axis = el("text", { x: 24, y: 12, class: "axis" }, svg);
  axis.textContent = `y ${fmt(r.ymin, 2)} – ${fmt(r.ymax, 2)}; x ${fmt(r.xmin, 2)} – ${fmt(r.xmax, 2)} ${p.xlabel}`;
  showOnly("preview-plot");
  document.getElementById("preview-info").textContent = `${p.x.length} points, sample ${p.samples}`;
}

function drawScalars(p) {
  const box = document.getElementById("preview-scalars");
  box.innerHTML = "";
  for (const [name, value] of Object.entries(p.values)) {
    const series = (state.scalars[name] = state.scalars[name] || []);
    if (series.length === 0 || series[series.length - 1].sample !== p.samples) {
      series.push({ sample: p.samples, value });
      if (series.length > 300) series.shift();
    }
    const values = series.map((s) => s.value);
    const div = document.createElement("div");
    div.className = "scalar";
    let text = `${name}: ${fmt(value, 3)}`;
    if (name === "is_hit") {
      const rate = values.reduce((a, b) => a + b, 0) / values.length;
      text = `hit rate (last ${values.length} samples): ${fmt(100 * rate, 1)} %`;
    }
    div.textContent = text;
    box.appendChild(div);
    if (values.length > 1) {
      const svg = el("svg", { viewBox: "0 0 520 60", preserveAspectRatio: "none" }, div);
      polyline(svg, values.map((_, i) => i), values, 520, 60, 6);
    }
  }
  showOnly("preview-scalars");
  document.getElementById("preview-info").textContent = `sample ${p.samples}`;
}

async function refreshPreview() {
  if (!state.selected) return;
  const p = await getJSON(`api/preview?connection=${state.selected.connection}`);
  const info = document.getElementById("preview-info");
  if (p.kind === "image") drawImage(p);
  else if (p.kind === "plot") drawPlot(p);
  else if (p.kind === "scalars") drawScalars(p);
  else {
    document.getElementById("preview-text").textContent =
      p.kind === "waiting" ? "waiting for a sample of this connection..." : (p.text || "");
    showOnly("preview-text");
    info.textContent = "";
  }
}

async function refreshPublished() {
  const published = await getJSON("api/published");
  const box = document.getElementById("published");
  const names = Object.keys(published);
  box.innerHTML = names.length ? "<h2>Published by components</h2>" : "";
  for (const name of names) {
    const p = published[name];
    const div = document.createElement("div");
    div.textContent = `${name}: ` + (p.kind === "scalars"
      ? Object.entries(p.values).map(([k, v]) => `${k} = ${fmt(v, 3)}`).join(", ")
      : p.kind);
    box.appendChild(div);
  }
}

async function tick() {
  try {
    if (!state.layout) {
      state.layout = await getJSON("api/graph");
      drawGraph(state.layout);
      const first = state.layout.connections[0];
      if (first && !state.selected) select(first);
    }
    const snapshot = await getJSON("api/snapshot");
    state.lastSnapshot = snapshot;
    updateTables(snapshot);
    await refreshPreview();
    await refreshPublished();
  } catch (error) {
    const badge = document.getElementById("run-state");
    badge.textContent = "disconnected (the run has ended?)";
    badge.className = "state lost";
  }
}

for (const id of ["log-scale", "min-value", "max-value"]) {
  document.getElementById(id).addEventListener("change", refreshPreview);
}
tick();
setInterval(tick, 1000);
