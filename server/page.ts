/**
 * The preview page: one self-contained HTML file (no external scripts, styles or fonts).
 * It shows the sample gallery, and a form that POSTs to /api/generate asking for
 * server-sent events, draws the progress and then the images as they arrive. The form fits
 * the model: a class list when the classes have names, top-k bounded by the vocabulary, and
 * no MaskGIT steps for a stage 2 that does not use them (AR).
 */

export interface PageConfig {
  /** Model name, or null when the server runs as a gallery only. */
  model: string | null;
  classes: number | null;
  maxCount: number;
  maxSteps: number;
  /** The server's bound on top-k (its limit, or the model's vocabulary when smaller). */
  maxTopK: number;
  /** Class names by id (the form offers a list), or null (a number field). */
  classNames: string[] | null;
  /** false for an AR stage 2: the form has no MaskGIT steps field. */
  usesSteps: boolean;
  defaults: { seed: number; topK: number; temperature: number; steps: number; count: number };
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 16px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 15px; margin: 20px 0 8px; }
form { display: flex; flex-wrap: wrap; gap: 12px; align-items: end; padding: 12px;
  border: 1px solid #ddd; border-radius: 8px; }
label { display: flex; flex-direction: column; font-size: 12px; color: #555; }
input, select { width: 7em; padding: 4px; }
select { width: 12em; }
button { padding: 6px 16px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 8px; }
figure { margin: 0; }
figure img { width: 100%; border-radius: 4px; background: #eee; image-rendering: pixelated; }
figcaption { font-size: 11px; color: #777; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#status.error { color: #b00020; }
#model { color: #555; margin: 0 0 12px; }
`;

// Plain JS that runs in the browser. Kept free of template-literal syntax on purpose.
const SCRIPT = String.raw`
"use strict";
const cfg = JSON.parse(document.getElementById("config").textContent);
const form = document.getElementById("generate");
const go = document.getElementById("go");
const bar = document.getElementById("bar");
const statusLine = document.getElementById("status");
const results = document.getElementById("results");
const gallery = document.getElementById("gallery");

// Fields the page left out (steps for an AR model) are skipped here and in readForm.
const field = (key) => form.elements.namedItem(key);
form.elements.count.max = cfg.maxCount;
form.elements.topK.max = cfg.maxTopK;
if (field("steps")) field("steps").max = cfg.maxSteps;
if (cfg.classes && !cfg.classNames) form.elements.classId.max = cfg.classes - 1;
for (const [key, value] of Object.entries(cfg.defaults)) if (field(key)) field(key).value = value;
document.getElementById("model").textContent = cfg.model
  ? "model: " + cfg.model + (cfg.classes ? " (" + cfg.classes + " classes)" : "")
  : "no model loaded: gallery only";
go.disabled = !cfg.model;

function setStatus(text, isError) {
  statusLine.textContent = text;
  statusLine.className = isError ? "error" : "";
}

function figure(sample) {
  const f = document.createElement("figure");
  const img = document.createElement("img");
  img.src = sample.url;
  img.alt = sample.name;
  const caption = document.createElement("figcaption");
  caption.textContent = sample.name;
  f.append(img, caption);
  return f;
}

async function loadGallery() {
  const res = await fetch("/api/samples");
  if (!res.ok) return;
  const body = await res.json();
  gallery.replaceChildren(...body.samples.map(figure));
}

function readForm() {
  const request = {};
  for (const key of ["classId", "seed", "topK", "temperature", "steps", "count"]) {
    if (!field(key)) continue;
    const raw = field(key).value.trim();
    if (raw !== "") request[key] = Number(raw);
  }
  return request;
}

function onEvent(kind, data) {
  if (kind === "queued") setStatus("waiting: " + data.ahead + " request(s) ahead");
  else if (kind === "started") setStatus("generating...");
  else if (kind === "progress") {
    bar.max = data.total;
    bar.value = data.done;
    setStatus((data.stage ? data.stage + ": " : "") + data.done + " / " + data.total);
  } else if (kind === "image") {
    results.append(figure(data));
    gallery.prepend(figure(data));
  } else if (kind === "done") setStatus("done: " + data.images.length + " image(s)");
  else if (kind === "error") throw new Error(data.message);
}

// Server-sent events over a fetch body (EventSource cannot POST).
async function readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      onEvent(kind, data ? JSON.parse(data) : {});
    }
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  go.disabled = true;
  results.replaceChildren();
  bar.hidden = false;
  bar.value = 0;
  setStatus("sending...");
  try {
    const res = await fetch("/api/generate", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify(readForm()),
    });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      const detail = body.problems ? ": " + body.problems.join("; ") : "";
      throw new Error((body.error || res.statusText) + detail);
    }
    await readEvents(res.body);
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    go.disabled = !cfg.model;
    bar.hidden = true;
  }
});

loadGallery().catch((error) => setStatus("gallery: " + error.message, true));
`;

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A list of the named classes, or a number field when they have no names. */
function classField(config: PageConfig): string {
  if (!config.classNames) {
    return `<input name="classId" type="number" min="0" step="1" placeholder="none">`;
  }
  const options = config.classNames.map((name, id) =>
    `<option value="${id}">${id}: ${escapeHtml(name)}</option>`
  );
  return `<select name="classId"><option value="">none</option>${options.join("")}</select>`;
}

export function renderPage(config: PageConfig): string {
  const json = JSON.stringify(config).replace(/</g, "\\u003c");
  const steps = config.usesSteps
    ? `\n  <label>MaskGIT steps <input name="steps" type="number" min="1" step="1"></label>`
    : "";
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>DiGIT preview</title>
<style>${STYLE}</style>
</head>
<body>
<h1>DiGIT preview</h1>
<p id="model"></p>
<form id="generate">
  <label>class ${classField(config)}</label>
  <label>seed <input name="seed" type="number" min="0" step="1"></label>
  <label>top-k <input name="topK" type="number" min="0" max="${config.maxTopK}" step="1"></label>
  <label>temperature <input name="temperature" type="number" min="0.01" step="0.01"></label>${steps}
  <label>count <input name="count" type="number" min="1" step="1"></label>
  <button id="go" type="submit">Generate</button>
</form>
<p><progress id="bar" max="1" value="0" hidden></progress> <span id="status"></span></p>
<h2>This request</h2>
<div id="results" class="grid"></div>
<h2>Gallery</h2>
<div id="gallery" class="grid"></div>
<script id="config" type="application/json">${json}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
