// One event at a time: fetch /api/item/<slot>, draw it, send labels to /api/label.
"use strict";
let state = null;   // /api/state
let slot = 0;       // place in the queue shown now
let history = [];   // places shown before, for "back"
let busy = false;

const $ = (id) => document.getElementById(id);

function say(text) { $("message").textContent = text || ""; }

async function call(url, options) {
  const response = await fetch(url, options);
  const data = await response.json();
  if (!response.ok || data.error) throw new Error(data.error || response.statusText);
  return data;
}

function header() {
  $("progress").textContent =
    `${state.n_labelled} labelled · place ${Math.min(slot + 1, state.n_queue)} of ${state.n_queue}` +
    ` (${state.order} order${state.model ? "" : ", no model"})`;
}

function drawProba(item) {
  if (!item.proba) { $("proba").textContent = "no model: no probabilities"; return; }
  const rows = Object.entries(item.proba).map(([name, p]) =>
    `<tr><td>${name}</td><td>${p.toFixed(3)}</td>` +
    `<td><span class="bar" style="width:${(100 * p).toFixed(0)}px"></span></td></tr>`);
  $("proba").innerHTML = `model says <b>${item.predicted}</b><table class="proba">${rows.join("")}</table>`;
}

function drawCloud(item) {
  if (!item.points) { Plotly.purge($("cloud")); $("cloud").textContent = "image file: no point cloud"; return; }
  const p = item.points;
  const trace = {
    type: "scatter3d", mode: "markers", x: p.z, y: p.x, z: p.y,
    marker: { size: 2, color: p.q, colorscale: "Viridis", colorbar: { title: { text: "charge" } } },
  };
  const layout = {
    margin: { l: 0, r: 0, t: 20, b: 0 },
    scene: { xaxis: { title: { text: "z [mm]" } }, yaxis: { title: { text: "x [mm]" } },
             zaxis: { title: { text: "y [mm]" } }, aspectmode: "data" },
  };
  Plotly.react($("cloud"), [trace], layout, { displaylogo: false });
}

async function show(newSlot) {
  slot = newSlot;
  header();
  if (slot >= state.n_queue) {
    $("event").textContent = "No more events in the queue: every event is labelled or skipped.";
    $("proba").textContent = ""; $("current").textContent = ""; $("views").removeAttribute("src");
    return;
  }
  const item = await call(`/api/item/${slot}`);
  $("event").innerHTML = `<b>run ${item.run}, event ${item.event_id}</b><br>${item.file}` +
    (item.n_points !== undefined ? `, ${item.n_points} points` : "");
  $("current").textContent = item.label ? `labelled: ${item.label}` : "not labelled yet";
  drawProba(item);
  $("views").src = item.views_png;
  drawCloud(item);
  document.body.dataset.slot = String(slot);  // for tests: the page has drawn this place
  document.body.dataset.event = `${item.run}:${item.event_id}`;
}

async function act(what) {
  if (busy || !state) return;
  busy = true;
  try {
    say("");
    if (what === "back") {
      if (history.length) await show(history.pop());
    } else if (what === "skip") {
      if (slot < state.n_queue) { history.push(slot); await show(slot + 1); }
    } else if (slot < state.n_queue) {
      const answer = await call("/api/label", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ slot: slot, label: what }),
      });
      state = answer;
      history.push(slot);
      await show(answer.next);
    }
  } catch (err) {
    say(String(err.message || err));
    document.body.dataset.slot = String(slot);
  } finally {
    busy = false;
  }
}

const KEYS = { p: "proton", 1: "proton", c: "carbon", 2: "carbon", o: "other", 3: "other",
  s: "skip", " ": "skip", ArrowRight: "skip", b: "back", Backspace: "back", ArrowLeft: "back" };

document.addEventListener("keydown", (e) => {
  const what = KEYS[e.key];
  if (what && !e.ctrlKey && !e.metaKey && !e.altKey) { e.preventDefault(); act(what); }
});
for (const b of document.querySelectorAll("#buttons button")) {
  b.addEventListener("click", () => act(b.dataset.label || b.dataset.action));
}

(async () => {
  try {
    state = await call("/api/state");
    $("where").textContent = `labels: ${state.labels_file} · labeller: ${state.labeller}`;
    await show(state.start);  // resume: the first event not labelled yet
  } catch (err) {
    say(String(err.message || err));
    document.body.dataset.slot = "error";
  }
})();
