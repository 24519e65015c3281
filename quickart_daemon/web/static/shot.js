// Shot view: versions with their review badges, a flipbook at the shot's frame rate (buffered before play,
// J/K/L, keys, drawings, zoom, full screen, onion skin), compare (side by side, toggle, wipe), overlays with
// their legend, reviews, the OTIO timeline, log, manifest, uploads.
"use strict";

const init = JSON.parse(document.getElementById("initial").textContent);
const $ = (id) => document.getElementById(id);
const images = new Map();  // url -> Image: every frame is fetched once (version files are immutable)

const view = {a: null, b: null, seq: "comp", frame: 0, rate: 0, wanted: 0, showB: false, overlay: "", onion: false,
              zoom: null, wipe: 0.5};  // rate: signed speed in multiples of the fps (0: paused); zoom: null = fit
const MAX_RATE = 8, MIN_ZOOM = 0.1, MAX_ZOOM = 16, ZOOM_STEP = 1.25;
const ONION = {previous: "#ff0000", next: "#00c000", alpha: 0.35};  // as on a light table: red before, green after
const scratch = document.createElement("canvas");  // reused: an overlay or onion drawing tinted before it is laid on
const wipeCanvas = document.createElement("canvas");  // the compared version's frame, before its part is laid on

async function describe(version) {
  const r = await fetch(`/api/shot/${init.rel}/versions/${version}`);
  if (!r.ok) throw new Error((await r.json()).error);
  return r.json();
}

function sequenceOf(desc) {
  return desc && (desc.sequences.find((s) => s.name === view.seq) || desc.sequences[0]);
}

// the frames where a sequence shows a new drawing (the server reads them from the hard links of held
// frames); stage folders hold one file per drawing, so there every file is one
function drawingsOf(seq) {
  if (!seq._drawings) seq._drawings = (seq.drawings || Object.keys(seq.frames)).map(Number).sort((x, y) => x - y);
  return seq._drawings;
}

function drawingIndex(seq, frame) {  // the index of the drawing on screen at `frame` (-1: none yet)
  const d = drawingsOf(seq);
  let lo = 0, hi = d.length - 1, found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (d[mid] <= frame) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return found;
}

function drawingAt(seq, frame) {
  const i = drawingIndex(seq, frame);
  return i < 0 ? null : drawingsOf(seq)[i];
}

function urlAt(seq, frame) {  // a held frame is shown from its drawing's file: one fetch per drawing
  const d = drawingAt(seq, frame);
  return d === null ? null : seq.frames[String(d)];
}

function keysOf(desc, seq) {
  if (!desc) return [];
  const layers = seq && seq.layer ? [seq.layer] : Object.keys(desc.keys);
  return [...new Set(layers.flatMap((l) => desc.keys[l] || []))].sort((x, y) => x - y);
}

// the overlay's maps over a frame: per layer, the map of the drawing that layer shows there (so a
// held in-between keeps its map; a key has no in-between map, an in-between no colour-match map)
function overlayUrls(desc, seq, frame) {
  const overlay = desc.overlays.find((o) => o.name === view.overlay);
  if (!overlay) return {overlay: null, urls: []};
  const urls = [];
  for (const [layer, frames] of Object.entries(overlay.layers)) {
    if (seq.layer && seq.layer !== layer) continue;
    const layerSeq = desc.sequences.find((s) => s.name === layer);
    const url = frames[String(layerSeq ? drawingAt(layerSeq, frame) : frame)];
    if (url) urls.push(url);
  }
  return {overlay, urls};
}

const isConfidence = (overlay) => overlay && overlay.name.endsWith("/confidence");

function loaded(img) {
  return img && img.complete && img.naturalWidth;
}

// `img` into the scratch canvas over paper white, then `colour` laid on with `op`: "screen" turns dark
// lines that colour and keeps white (onion skin); "lighten" with red turns a grey map g into (1, g, g)
function tinted(img, w, h, colour, op) {
  if (scratch.width !== w || scratch.height !== h) { scratch.width = w; scratch.height = h; }
  const c = scratch.getContext("2d");
  c.globalCompositeOperation = "source-over";
  c.fillStyle = "#fff";
  c.fillRect(0, 0, w, h);
  c.drawImage(img, 0, 0, w, h);
  c.globalCompositeOperation = op;
  c.fillStyle = colour;
  c.fillRect(0, 0, w, h);
  return scratch;
}

// desc's frame at view.frame into `canvas` (resized to the frame): paper, the drawing, the onion skin,
// the overlay. False while the frame is not loaded yet.
function paint(canvas, desc) {
  const seq = sequenceOf(desc);
  if (!seq) return false;
  const url = urlAt(seq, view.frame);
  const img = url && image(url);
  if (!loaded(img)) return false;
  const w = img.naturalWidth, h = img.naturalHeight;
  if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
  const ctx = canvas.getContext("2d");
  ctx.globalCompositeOperation = "source-over";
  ctx.globalAlpha = 1;
  ctx.fillStyle = "#fff";  // frames are RGBA: shown over paper white
  ctx.fillRect(0, 0, w, h);
  ctx.drawImage(img, 0, 0);
  if (view.onion) {
    const d = drawingsOf(seq), i = drawingIndex(seq, view.frame);
    for (const [at, colour] of [[i - 1, ONION.previous], [i + 1, ONION.next]]) {
      const other = at >= 0 && at < d.length && image(seq.frames[String(d[at])]);
      if (!loaded(other)) continue;
      ctx.globalAlpha = ONION.alpha;
      ctx.globalCompositeOperation = "multiply";  // white stays white: only the lines show, faint
      ctx.drawImage(tinted(other, w, h, colour, "screen"), 0, 0);
    }
  }
  const {overlay, urls} = overlayUrls(desc, seq, view.frame);
  for (const over of urls) {
    const oimg = image(over);
    if (!loaded(oimg)) continue;
    ctx.globalAlpha = Number($("overlay-opacity").value);
    ctx.globalCompositeOperation = overlay.blend;
    ctx.drawImage(isConfidence(overlay) ? tinted(oimg, w, h, "#f00", "lighten") : oimg, 0, 0, w, h);
  }
  ctx.globalAlpha = 1;
  ctx.globalCompositeOperation = "source-over";
  return true;
}

let drawQueued = false;
function drawSoon() {  // frames arriving while buffering ask for one paint per display frame, not one each
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => { drawQueued = false; draw(); });
}

function compareMode() {
  return view.b ? $("compare-mode").value : "";
}

function draw() {
  if (!view.a) return;
  const mode = compareMode();
  const first = view.showB && mode === "toggle" ? view.b : view.a;
  const canvas = $("screen-a");
  const shown = paint(canvas, first);
  const name = sequenceOf(first).name;
  if (mode === "wipe" && shown && paint(wipeCanvas, view.b)) {
    // the compared version right of the divider, on the same frame (scaled to this one's size)
    const w = canvas.width, h = canvas.height, x = Math.round(w * view.wipe);
    const sx = wipeCanvas.width / w;
    if (x < w) canvas.getContext("2d").drawImage(wipeCanvas, x * sx, 0, (w - x) * sx, wipeCanvas.height, x, 0, w - x, h);
  }
  $("wipe-handle").hidden = mode !== "wipe";
  if (mode === "wipe") {
    $("wipe-handle").style.left = view.wipe * 100 + "%";
    $("wipe-left").textContent = view.a.version;
    $("wipe-right").textContent = view.b.version;
  }
  $("label-a").textContent = mode === "wipe" ? `${view.a.version} | ${view.b.version} · ${name}` : `${first.version} · ${name}`;
  $("fig-b").hidden = mode !== "side";
  if (mode === "side") { paint($("screen-b"), view.b); $("label-b").textContent = `${view.b.version} · ${sequenceOf(view.b).name}`; }
  $("frame-no").textContent = view.frame;
  const keys = keysOf(view.a, sequenceOf(view.a));
  $("key-flag").textContent = keys.includes(view.frame) ? "KEY" : "";
  $("scrub").value = view.frame;
  applyZoom();
}

function range() { return view.a.frame_range; }

function setFrame(frame) {
  const [lo, hi] = range();
  view.frame = Math.min(hi, Math.max(lo, frame));
  draw();
}

function goTo(frame) {  // a jump asked for (a key, a button): playback stops there
  if (frame === null || frame === undefined) return;
  stop();
  setFrame(frame);
}

function previousKey() { return keysOf(view.a, sequenceOf(view.a)).filter((k) => k < view.frame).pop() ?? null; }
function nextKey() { return keysOf(view.a, sequenceOf(view.a)).find((k) => k > view.frame) ?? null; }

function stepDrawing(dir) {  // to the previous / next drawing of the sequence shown (holds skipped)
  const seq = sequenceOf(view.a), d = drawingsOf(seq), i = drawingIndex(seq, view.frame);
  return dir < 0 ? (i > 0 ? d[i - 1] : null) : (i + 1 < d.length ? d[i + 1] : null);
}

function markKeys() {
  const [lo, hi] = range();
  const marks = $("key-marks");
  marks.replaceChildren(...keysOf(view.a, sequenceOf(view.a)).map((k) => {
    const tick = document.createElement("span");
    tick.className = "key-mark";
    tick.title = "key " + k;
    tick.style.left = (hi > lo ? (k - lo) / (hi - lo) * 100 : 0) + "%";
    return tick;
  }));
}

// -- buffering: every drawing of what is shown (both versions when comparing, the overlay's maps) is
// fetched and decoded before play starts, so playback never waits on the network
const decoded = new Map();  // url -> Promise: the frame fetched and decoded (a frame that fails counts as done)
let buffering = {key: null, total: 0, done: 0, ms: null, ready: Promise.resolve()};

function image(url) {
  let img = images.get(url);
  if (!img) {
    img = new Image();
    img.decoding = "async";
    img.src = url;
    img.onload = drawSoon;
    images.set(url, img);
  }
  return img;
}

function ready(url) {
  let p = decoded.get(url);
  if (!p) {
    p = image(url).decode().then(() => true, () => false);
    decoded.set(url, p);
  }
  return p;
}

function bufferUrls() {
  const urls = [];
  for (const desc of [view.a, view.b]) {
    const seq = sequenceOf(desc);
    if (!seq) continue;
    for (const d of drawingsOf(seq)) urls.push(seq.frames[String(d)]);
    const overlay = desc.overlays.find((o) => o.name === view.overlay);
    for (const [layer, frames] of Object.entries(overlay ? overlay.layers : {})) {
      if (!seq.layer || seq.layer === layer) urls.push(...Object.values(frames));
    }
  }
  return [...new Set(urls.filter(Boolean))];
}

function bufferAll() {
  const urls = bufferUrls();
  const key = urls.join("\n");
  if (key === buffering.key) return buffering.ready;
  const state = {key, total: urls.length, done: 0, ms: null, started: performance.now()};
  buffering = state;
  state.ready = Promise.all(urls.map((u) => ready(u).then(() => {
    state.done += 1;
    if (buffering === state) showBuffer();
  }))).then(() => {
    state.ms = performance.now() - state.started;
    if (buffering === state) showBuffer();
  });
  showBuffer();
  return state.ready;
}

function showBuffer() {
  const {done, total, ms} = buffering;
  $("buffer-bar").max = total || 1;
  $("buffer-bar").value = done;
  $("buffer-text").textContent = `buffered ${done}/${total}` + (ms === null ? "" : ` in ${(ms / 1000).toFixed(2)} s`);
  const box = $("buffer");
  box.className = "buffer " + (done >= total ? "full" : "filling");
  box.dataset.done = done;
  box.dataset.total = total;
  if (ms !== null) box.dataset.ms = Math.round(ms); else delete box.dataset.ms;
}

// -- playback: space plays at the shot's rate; J / L shuttle back / forward, again the same way twice as
// fast (to 8x), the other way back to 1x; K pauses. Play starts once everything shown is buffered.
let last = 0, carry = 0, playToken = 0;
function tick(now, token) {
  if (token !== playToken || !view.rate) return;
  const step = 1000 / (view.a.fps * Math.abs(view.rate));
  carry += last ? now - last : 0;
  last = now;
  const [lo, hi] = range();
  const dir = Math.sign(view.rate);
  while (carry >= step) {
    carry -= step;
    const next = view.frame + dir;
    if (next > hi || next < lo) {
      if (!$("loop").checked) { stop(); draw(); return; }
      view.frame = dir > 0 ? lo : hi;
    } else view.frame = next;
  }
  draw();
  requestAnimationFrame((t) => tick(t, token));
}

async function play(rate) {
  const token = ++playToken;
  view.rate = 0;
  view.wanted = rate;
  showRate();
  await bufferAll();
  if (token !== playToken) return;
  view.rate = rate;
  last = 0; carry = 0;
  showRate();
  requestAnimationFrame((t) => tick(t, token));
}

function stop() {
  playToken += 1;
  view.rate = 0;
  view.wanted = 0;
  showRate();
}

function togglePlay(on) {
  const playing = Boolean(view.rate || view.wanted);
  if (on === false || (on === undefined && playing)) stop();
  else if (!playing) play(1);
}

function shuttle(dir) {
  const current = view.rate || view.wanted;
  play(Math.sign(current) === dir ? Math.max(-MAX_RATE, Math.min(MAX_RATE, current * 2)) : dir);
}

function showRate() {
  const rate = view.rate || view.wanted;
  $("play").textContent = rate ? "❚❚" : "▶";
  $("rate").textContent = !rate ? "" : (rate > 0 ? "▶ " : "◀ ") + Math.abs(rate) + "×" + (view.rate ? "" : " (buffering)");
}

// -- zoom: fit (the frame as large as the view allows) or a scale (CSS pixels per frame pixel; 1:1 = 100 %)
function fitScale(canvas) {
  const viewport = canvas.closest(".viewport");
  if (!canvas.width || !viewport.clientWidth) return 1;
  const maxHeight = parseFloat(getComputedStyle(viewport).maxHeight) || window.innerHeight * 0.62;
  return Math.min(viewport.clientWidth / canvas.width, maxHeight / canvas.height);
}

function frameScale() {
  return view.zoom || fitScale($("screen-a"));
}

function applyZoom() {
  for (const canvas of [$("screen-a"), $("screen-b")]) {
    if (!canvas.width) continue;
    const scale = view.zoom || fitScale(canvas);
    const width = Math.floor(canvas.width * scale) + "px";
    if (canvas.style.width !== width) canvas.style.width = width;
  }
  $("viewer").classList.toggle("zoomed", view.zoom !== null);
  $("zoom-level").textContent = view.zoom ? Math.round(view.zoom * 100) + "%" : "fit";
  $("zoom-toggle").textContent = view.zoom === 1 ? "fit" : "1:1";
}

// anchor: {x, y, viewport}: a point on screen that keeps its frame pixel (the mouse's), in the frame it is
// over (side by side, the right frame's own box); without one, the middle of the left frame's view
function setZoom(zoom, anchor) {
  const viewport = anchor ? anchor.viewport : $("viewport-a");
  const canvas = viewport.querySelector("canvas");
  const box = viewport.getBoundingClientRect();
  const x = anchor ? anchor.x : box.left + viewport.clientWidth / 2;
  const y = anchor ? anchor.y : box.top + viewport.clientHeight / 2;
  const before = canvas.getBoundingClientRect();  // where the frame is drawn (centred when smaller than the view)
  const fx = before.width ? (x - before.left) / before.width : 0.5;  // the point, as a fraction of the frame
  const fy = before.height ? (y - before.top) / before.height : 0.5;
  view.zoom = zoom === null ? null : Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, zoom));
  applyZoom();
  if (view.zoom !== null) {
    const after = canvas.getBoundingClientRect();
    viewport.scrollLeft += after.left + fx * after.width - x;
    viewport.scrollTop += after.top + fy * after.height - y;
    if (viewport !== $("viewport-a")) {  // the left frame's scrolling leads the right one's (wirePointer)
      $("viewport-a").scrollLeft = viewport.scrollLeft;
      $("viewport-a").scrollTop = viewport.scrollTop;
    }
  }
}

function zoomBy(factor, anchor) { setZoom(frameScale() * factor, anchor); }
function toggleOneToOne() { setZoom(view.zoom === 1 ? null : 1); }

function toggleFullscreen() {
  if (document.fullscreenElement) document.exitFullscreen();
  else $("viewer").requestFullscreen().catch((err) => toast(`full screen: ${err.message}`, true));
}

function setOnion(on) {
  view.onion = on;
  $("onion").checked = on;
  draw();
}

// the overlay's legend: what its colours mean, on the scale it is drawn with (the opacity included)
const LEGENDS = {
  "inbetween/confidence": "how sure the in-between is, per pixel: where the plausible in-betweens (hold, blend, " +
    "the motion) disagree; 0.37 (1/e) at a 20 % disagreement. Keys are drawn: they have no map.",
  "color/confidence": "how sure the colour is, per region: the match to the reference; below 0.5 (the stage's " +
    "--low-confidence) the region is in the job report. In-betweens have no colour map.",
};

function showLegend() {
  const overlay = view.a && view.a.overlays.find((o) => o.name === view.overlay);
  $("legend").hidden = !overlay;
  if (!overlay) return;
  const alpha = Number($("overlay-opacity").value);
  const ticks = $("legend-ticks");
  $("legend-name").textContent = overlay.name;
  if (isConfidence(overlay)) {
    const g = Math.round(255 * (1 - alpha));  // a map of 0 laid on paper white at this opacity
    $("legend-bar").style.background = `linear-gradient(to right, rgb(255,${g},${g}), #fff)`;
    ticks.replaceChildren(...["0 unsure", "0.5", "1 sure"].map(tickLabel));
    $("legend-text").textContent = (LEGENDS[overlay.name] || "the stage's confidence, per pixel.") +
      " Red: unsure; untinted: sure.";
  } else if (overlay.name.endsWith("/layer")) {
    $("legend-bar").style.background = "linear-gradient(to right, #000, #808080, #fff)";
    ticks.replaceChildren(...["shadow", "128: unchanged", "light"].map(tickLabel));
    $("legend-text").textContent = "the light stage's layer (128 + difference / 2), laid on in hard light.";
  } else {
    $("legend-bar").style.background = "none";
    ticks.replaceChildren();
    $("legend-text").textContent = `the stage's ${overlay.name.split("/").pop()} variant, laid over the frame.`;
  }
}

function tickLabel(text) {
  const span = document.createElement("span");
  span.textContent = text;
  return span;
}

async function showVersion(version) {
  view.a = await describe(version);
  $("version").value = version;
  const select = $("sequence");
  select.replaceChildren(...view.a.sequences.map((s) => new Option(s.name, s.name)));
  if (!view.a.sequences.some((s) => s.name === view.seq)) view.seq = "comp";
  select.value = view.seq;
  const overlay = $("overlay");
  overlay.replaceChildren(new Option("none", ""), ...view.a.overlays.map((o) => new Option(o.name, o.name)));
  overlay.value = view.a.overlays.some((o) => o.name === view.overlay) ? view.overlay : "";
  view.overlay = overlay.value;
  const [lo, hi] = range();
  $("scrub").min = lo; $("scrub").max = hi;
  $("fps").textContent = view.a.fps + " fps";
  $("contact").src = view.a.contact || "";
  $("download").href = view.a.zip;
  $("download").setAttribute("download", `${view.a.shot.split("/").pop()}_${version}.zip`);
  $("otio").hidden = $("otio-view").hidden = !view.a.otio;
  if (view.a.otio) {
    $("otio").href = view.a.otio;
    $("otio").setAttribute("download", `${view.a.shot.split("/").pop()}_${version}.otio`);
    $("otio-view").href = view.a.otio + "?view=1";
  }
  trackers.set(version, view.a.tracker || null);
  $("tracker-slot").replaceChildren(...[trackerBadge(view.a.tracker)].filter(Boolean));
  renderBadges();
  for (const [id, what] of [["job-log", "log"], ["manifest", "manifest"]]) {
    fetch(`/api/shot/${init.rel}/versions/${version}/${what}`).then((r) => r.ok ? r.text() : "(none)")
      .then((text) => { $(id).textContent = text; });
  }
  bufferAll();
  markKeys();
  showLegend();
  setFrame(view.frame || lo);
  showReviews(version);
}

// -- reviews: the version shown (its approval badge and its notes, text only: never read as HTML), and a
// badge per version in the list (approved / needs work, notes, the tracker's status when it has one)
const trackers = new Map();  // version -> the tracker's status in its description (null: none)

function approvalBadge(approval) {
  const badge = $("approval");
  badge.className = "approval " + (approval ? approval.state : "none");
  badge.textContent = approval ? `${approval.label} · ${approval.author} · ${when(approval.at)}` : "not reviewed";
}

function when(at) {
  return at ? new Date(at).toLocaleString() : "";
}

// the tracker's status of a version ({status, name, color, at, url}, or null): its short name on its
// colour, a link to the tracker only when the link is http(s)
function trackerBadge(tracker) {
  if (!tracker || typeof tracker !== "object" || !tracker.status) return null;
  const linked = typeof tracker.url === "string" && /^https?:\/\//i.test(tracker.url);
  const badge = document.createElement(linked ? "a" : "span");
  badge.className = "tracker";
  badge.textContent = String(tracker.status);
  badge.title = ["tracker", tracker.name, tracker.at && `since ${when(tracker.at)}`].filter(Boolean).join(" · ");
  if (linked) { badge.href = tracker.url; badge.target = "_blank"; badge.rel = "noopener noreferrer"; }
  if (typeof tracker.color === "string" && /^#[0-9a-f]{6}$/i.test(tracker.color)) {
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(tracker.color.slice(i, i + 2), 16));
    badge.style.background = tracker.color;
    badge.style.color = 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#000" : "#fff";
  }
  return badge;
}

function versionBadges(info) {
  const out = [];
  if (info.approval) {
    const badge = document.createElement("span");
    badge.className = "approval " + info.approval.state;
    badge.textContent = info.approval.label;
    badge.title = `${info.approval.author} · ${when(info.approval.at)}`;
    out.push(badge);
  }
  if (info.notes) {
    const notes = document.createElement("span");
    notes.className = "notes-count";
    notes.textContent = `${info.notes} note${info.notes === 1 ? "" : "s"}`;
    out.push(notes);
  }
  const tracker = trackerBadge(info.tracker || trackers.get(info.version));
  if (tracker) out.push(tracker);
  return out;
}

let reviewed = {};  // version -> {approval, notes}: the shot's review badges as last read

async function showBadges() {
  const r = await fetch(`/api/reviews/${init.rel}`);
  if (!r.ok) return;
  reviewed = (await r.json()).versions;
  renderBadges();
}

function renderBadges() {
  for (const button of document.querySelectorAll("#versions .version")) {
    const version = button.dataset.version;
    let slot = button.querySelector(".badges");
    if (!slot) { slot = document.createElement("span"); slot.className = "badges"; button.append(slot); }
    slot.replaceChildren(...versionBadges({version, ...(reviewed[version] || {})}));
  }
}

async function showReviews(version) {
  $("review-version").textContent = version;
  const r = await fetch(`/api/shot/${init.rel}/versions/${version}/reviews`);
  if (!r.ok || $("version").value !== version) return;
  const data = await r.json();
  approvalBadge(data.approval);
  $("notes").replaceChildren(...data.reviews.slice().reverse().map((review) => {
    const item = document.createElement("li");
    item.className = "note " + review.state;
    const head = document.createElement("div");
    head.className = "note-head";
    const state = document.createElement("b");
    state.textContent = review.label;
    head.append(state, ` · ${review.author} · ${when(review.at)}`);
    const text = document.createElement("p");
    text.className = "note-text";
    text.textContent = review.text;
    item.append(head, text);
    return item;
  }));
}

async function setCompare(version) {
  view.b = version ? await describe(version) : null;
  bufferAll();
  draw();
}

// -- the wipe's divider follows a drag on it, or on the frame (a click there moves it); a drag on a
// zoomed frame otherwise pans it
function wirePointer() {
  const box = $("box-a"), viewport = $("viewport-a");
  let drag = null;
  const wipeAt = (e) => {
    const rect = box.getBoundingClientRect();
    view.wipe = Math.min(1, Math.max(0, (e.clientX - rect.left) / rect.width));
    draw();
  };
  viewport.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    if (compareMode() === "wipe") { drag = {wipe: true}; wipeAt(e); }
    else if (view.zoom !== null) drag = {x: e.clientX, y: e.clientY, left: viewport.scrollLeft, top: viewport.scrollTop};
    else return;
    e.preventDefault();
    viewport.setPointerCapture(e.pointerId);
  });
  viewport.addEventListener("pointermove", (e) => {
    if (!drag) return;
    if (drag.wipe) wipeAt(e);
    else { viewport.scrollLeft = drag.left - (e.clientX - drag.x); viewport.scrollTop = drag.top - (e.clientY - drag.y); }
  });
  const end = () => { drag = null; };
  viewport.addEventListener("pointerup", end);
  viewport.addEventListener("pointercancel", end);
  for (const vp of [$("viewport-a"), $("viewport-b")]) {
    vp.addEventListener("wheel", (e) => {
      e.preventDefault();  // the wheel over a frame zooms it, about the mouse
      zoomBy(e.deltaY < 0 ? ZOOM_STEP : 1 / ZOOM_STEP, {x: e.clientX, y: e.clientY, viewport: vp});
    }, {passive: false});
  }
  viewport.addEventListener("scroll", () => {  // side by side: both frames show the same part
    $("viewport-b").scrollLeft = viewport.scrollLeft;
    $("viewport-b").scrollTop = viewport.scrollTop;
  });
}

// a key typed into a text box, a list or a field is the person's, never a shortcut
function typing(target) {
  return target.isContentEditable ||
    target.matches("textarea, select, input:not([type=range]):not([type=checkbox]):not([type=radio]):not([type=button])");
}
// keys a focused slider (the frame scrubber, the opacity) moves itself with
const SLIDER_KEYS = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "PageUp", "PageDown"]);

const SHORTCUTS = {
  " ": () => togglePlay(),
  "j": () => shuttle(-1), "k": () => stop(), "l": () => shuttle(1),
  "ArrowLeft": () => goTo(view.frame - 1), "ArrowRight": () => goTo(view.frame + 1),
  ",": () => goTo(stepDrawing(-1)), ".": () => goTo(stepDrawing(1)),
  "[": () => goTo(previousKey()), "]": () => goTo(nextKey()),
  "Home": () => goTo(range()[0]), "End": () => goTo(range()[1]),
  "+": () => zoomBy(ZOOM_STEP), "=": () => zoomBy(ZOOM_STEP), "-": () => zoomBy(1 / ZOOM_STEP),
  "0": () => toggleOneToOne(),
  "o": () => setOnion(!view.onion),
  "t": () => { view.showB = !view.showB; draw(); },
  "f": () => toggleFullscreen(),
};

function wire() {
  $("version").addEventListener("change", (e) => showVersion(e.target.value));
  $("sequence").addEventListener("change", (e) => { view.seq = e.target.value; bufferAll(); markKeys(); draw(); });
  $("compare").addEventListener("change", (e) => setCompare(e.target.value));
  $("compare-mode").addEventListener("change", draw);
  $("overlay").addEventListener("change", (e) => { view.overlay = e.target.value; bufferAll(); showLegend(); draw(); });
  $("overlay-opacity").addEventListener("input", () => { showLegend(); draw(); });
  $("play").addEventListener("click", () => togglePlay());
  $("step-back").addEventListener("click", () => goTo(view.frame - 1));
  $("step-fwd").addEventListener("click", () => goTo(view.frame + 1));
  $("first").addEventListener("click", () => goTo(range()[0]));
  $("last").addEventListener("click", () => goTo(range()[1]));
  $("prev-key").addEventListener("click", () => goTo(previousKey()));
  $("next-key").addEventListener("click", () => goTo(nextKey()));
  $("onion").addEventListener("change", (e) => setOnion(e.target.checked));
  $("zoom-in").addEventListener("click", () => zoomBy(ZOOM_STEP));
  $("zoom-out").addEventListener("click", () => zoomBy(1 / ZOOM_STEP));
  $("zoom-toggle").addEventListener("click", toggleOneToOne);
  $("fullscreen").addEventListener("click", toggleFullscreen);
  document.addEventListener("fullscreenchange", () => {
    $("fullscreen").textContent = document.fullscreenElement ? "leave full screen" : "full screen";
    applyZoom();
  });
  window.addEventListener("resize", applyZoom);
  $("scrub").addEventListener("input", (e) => goTo(Number(e.target.value)));
  for (const b of document.querySelectorAll("#versions .version")) b.addEventListener("click", () => showVersion(b.dataset.version));
  wirePointer();
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    if (e.target.matches("input[type=range]") && SLIDER_KEYS.has(e.key)) return;
    const action = SHORTCUTS[e.key.length === 1 ? e.key.toLowerCase() : e.key];
    if (!action) return;
    e.preventDefault();
    action();
  });
  showVersion(init.latest || init.versions[init.versions.length - 1]);
  showBadges();
}

// uploads: one zip or several PNGs, sent as one multipart request
const form = $("upload-form");
if (form) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const files = $("upload-files").files;
    if (!files.length) { toast("choose a zip or PNG files first", true); return; }
    const data = new FormData();
    for (const f of files) data.append("files", f, f.name);
    try {
      const result = await api("POST", `/api/shot/${init.rel}/upload`, data);
      $("upload-result").textContent = `placed in keys/: ${result.placed.join(", ")}`;
      toast("uploaded; the watcher takes it as a drop");
    } catch (err) {
      $("upload-result").textContent = err.message;
      toast(err.message, true);
    }
  });
}

// a review of the version shown: approve, needs work, or a note alone
const reviewForm = $("review-form");
if (reviewForm) {
  reviewForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const state = e.submitter ? e.submitter.dataset.review : "note";
    const version = $("version").value;
    const body = {state, text: $("review-text").value};
    if ($("review-author") && $("review-author").value.trim()) body.author = $("review-author").value.trim();
    try {
      const review = await api("POST", `/api/shot/${init.rel}/versions/${version}/reviews`, body);
      $("review-text").value = "";
      $("review-result").textContent = "";
      toast(`${version}: ${review.label}`);
      showReviews(version);
      showBadges();
    } catch (err) {
      $("review-result").textContent = err.message;
      toast(err.message, true);
    }
  });
}

// clear uploads: the page's own upload zips go (the artist's keys stay); the watcher takes the shot again
const clearButton = $("clear-uploads");
if (clearButton) {
  clearButton.addEventListener("click", async () => {
    try {
      const result = await api("POST", `/api/shot/${init.rel}/clear-uploads`);
      $("upload-result").textContent = result.removed.length
        ? `removed from keys/: ${result.removed.join(", ")}` : "no uploads to clear";
      toast(result.removed.length ? "uploads cleared; the watcher takes the shot as a drop" : "no uploads to clear");
    } catch (err) {
      $("upload-result").textContent = err.message;
      toast(err.message, true);
    }
  });
}

// this shot's jobs, live; a finished job's new version joins the lists
const jobsBody = document.querySelector("#jobs tbody");
function jobRow(job) {
  let row = jobsBody.querySelector(`tr[data-id="${job.id}"]`);
  if (!row) {
    row = document.createElement("tr");
    row.dataset.id = job.id;
    for (let i = 0; i < 9; i++) row.append(document.createElement("td"));
    row.cells[0].className = "open"; row.cells[2].className = "state"; row.cells[5].className = "prio";
    row.cells[7].className = "error"; row.cells[8].className = "actions";
    row.cells[0].append(document.getElementById("open-job").content.cloneNode(true));  // its panel: jobpanel.js
    const actions = document.getElementById("job-actions");  // present when the page may write
    if (actions) row.cells[8].append(actions.content.cloneNode(true));
    jobsBody.prepend(row);
  }
  row.className = "state-" + job.state;
  const badge = document.createElement("span");
  badge.className = "badge"; badge.textContent = job.state;
  row.cells[1].textContent = job.id;
  row.cells[2].replaceChildren(badge);
  row.cells[3].textContent = job.current_stage || "";
  row.cells[4].textContent = Math.round(job.progress * 100) + "%";
  row.cells[5].textContent = job.priority;
  row.cells[6].textContent = job.version ? "v" + String(job.version).padStart(3, "0") : "";
  row.cells[7].textContent = job.error || "";
}

async function newVersions() {
  const info = await (await fetch(`/api/shot/${init.rel}`)).json();
  const known = new Set(init.versions);
  const added = info.versions.filter((v) => !known.has(v));
  if (!added.length) return;
  if (!init.versions.length) { location.reload(); return; }  // the viewer appears with the first version
  init.versions = info.versions;
  for (const v of added) {
    $("version").prepend(new Option(v, v));
    $("compare").insertBefore(new Option(v, v), $("compare").options[1]);
    const b = document.createElement("button");
    b.className = "version"; b.dataset.version = v;
    const img = document.createElement("img");
    img.src = `/thumbs/${init.rel}/${v}.png`;
    const label = document.createElement("span");
    label.textContent = v + (v === info.latest ? " · latest" : "");
    if (v === info.latest) {
      for (const old of document.querySelectorAll("#versions .version > span:not(.badges)")) old.textContent = old.textContent.replace(" · latest", "");
    }
    b.append(img, label);
    b.addEventListener("click", () => showVersion(v));
    $("versions").prepend(b);
  }
  showBadges();
  toast(`new version ${added.join(", ")}`);
}

const source = new EventSource("/api/events");
source.onmessage = (message) => {
  const event = JSON.parse(message.data);
  for (const job of event.jobs || []) {
    if (job.shot_rel !== init.rel) continue;
    jobRow(job);
    if (job.state === "done") newVersions();
  }
};

if ($("version")) wire();
