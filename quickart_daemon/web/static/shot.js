// Shot view: versions, a flipbook at the shot's frame rate, compare, overlays, log, manifest, uploads.
"use strict";

const init = JSON.parse(document.getElementById("initial").textContent);
const $ = (id) => document.getElementById(id);
const images = new Map();  // url -> Image: every frame is fetched once (version files are immutable)

function image(url) {
  let img = images.get(url);
  if (!img) {
    img = new Image();
    img.decoding = "async";
    img.src = url;
    img.onload = () => draw();
    images.set(url, img);
  }
  return img;
}

const view = {a: null, b: null, seq: "comp", frame: 0, playing: false, showB: false, overlay: ""};

async function describe(version) {
  const r = await fetch(`/api/shot/${init.rel}/versions/${version}`);
  if (!r.ok) throw new Error((await r.json()).error);
  return r.json();
}

function sequenceOf(desc) {
  return desc && (desc.sequences.find((s) => s.name === view.seq) || desc.sequences[0]);
}

// the drawing exposed at `frame`: the last file at or before it (stage folders hold keys only)
function heldUrl(frames, frame) {
  let best = null, bestFrame = -Infinity;
  for (const [f, url] of Object.entries(frames)) {
    const n = Number(f);
    if (n <= frame && n > bestFrame) { best = url; bestFrame = n; }
  }
  return best;
}

function keysOf(desc, seq) {
  if (!desc) return [];
  const layers = seq && seq.layer ? [seq.layer] : Object.keys(desc.keys);
  return [...new Set(layers.flatMap((l) => desc.keys[l] || []))].sort((x, y) => x - y);
}

function paint(canvas, desc) {
  const ctx = canvas.getContext("2d");
  const seq = sequenceOf(desc);
  if (!seq) return;
  const url = heldUrl(seq.frames, view.frame);
  const img = url && image(url);
  if (!img || !img.complete || !img.naturalWidth) return;
  if (canvas.width !== img.naturalWidth) { canvas.width = img.naturalWidth; canvas.height = img.naturalHeight; }
  ctx.globalCompositeOperation = "source-over";
  ctx.globalAlpha = 1;
  ctx.fillStyle = "#fff";  // frames are RGBA: shown over paper white
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(img, 0, 0);
  const overlay = desc.overlays.find((o) => o.name === view.overlay);
  if (!overlay) return;
  ctx.globalAlpha = Number($("overlay-opacity").value);
  ctx.globalCompositeOperation = overlay.blend;
  for (const [layer, frames] of Object.entries(overlay.layers)) {
    if (seq.layer && seq.layer !== layer) continue;
    const over = frames[String(view.frame)];  // overlays are per key drawing: shown on key frames only
    const oimg = over && image(over);
    if (oimg && oimg.complete && oimg.naturalWidth) ctx.drawImage(oimg, 0, 0, canvas.width, canvas.height);
  }
  ctx.globalAlpha = 1;
  ctx.globalCompositeOperation = "source-over";
}

function draw() {
  if (!view.a) return;
  const side = view.b && $("compare-mode").value === "side";
  const first = view.showB && view.b && !side ? view.b : view.a;
  paint($("screen-a"), first);
  $("label-a").textContent = `${first.version} · ${sequenceOf(first).name}`;
  $("fig-b").hidden = !side;
  if (side) { paint($("screen-b"), view.b); $("label-b").textContent = `${view.b.version} · ${sequenceOf(view.b).name}`; }
  $("frame-no").textContent = view.frame;
  const keys = keysOf(view.a, sequenceOf(view.a));
  $("key-flag").textContent = keys.includes(view.frame) ? "KEY" : "";
  $("scrub").value = view.frame;
}

function range() { return view.a.frame_range; }

function setFrame(frame) {
  const [lo, hi] = range();
  view.frame = Math.min(hi, Math.max(lo, frame));
  draw();
}

function preload(desc) {
  const seq = sequenceOf(desc);
  if (seq) for (const url of Object.values(seq.frames)) image(url);
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

let last = 0, carry = 0;
function tick(now) {
  if (!view.playing) return;
  const step = 1000 / view.a.fps;
  carry += last ? now - last : 0;
  last = now;
  const [lo, hi] = range();
  while (carry >= step) {
    carry -= step;
    if (view.frame >= hi) {
      if (!$("loop").checked) { togglePlay(false); return; }
      view.frame = lo;
    } else view.frame += 1;
  }
  draw();
  requestAnimationFrame(tick);
}

function togglePlay(on) {
  view.playing = on === undefined ? !view.playing : on;
  $("play").textContent = view.playing ? "❚❚" : "▶";
  last = 0; carry = 0;
  if (view.playing) requestAnimationFrame(tick);
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
  for (const [id, what] of [["job-log", "log"], ["manifest", "manifest"]]) {
    fetch(`/api/shot/${init.rel}/versions/${version}/${what}`).then((r) => r.ok ? r.text() : "(none)")
      .then((text) => { $(id).textContent = text; });
  }
  preload(view.a);
  markKeys();
  setFrame(view.frame || lo);
  showReviews(version);
}

// reviews of the version shown: its approval badge and its notes (text only: never read as HTML)
function approvalBadge(approval) {
  const badge = $("approval");
  badge.className = "approval " + (approval ? approval.state : "none");
  badge.textContent = approval ? `${approval.label} · ${approval.author} · ${when(approval.at)}` : "not reviewed";
}

function when(at) {
  return at ? new Date(at).toLocaleString() : "";
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
  if (view.b) preload(view.b);
  draw();
}

function wire() {
  $("version").addEventListener("change", (e) => showVersion(e.target.value));
  $("sequence").addEventListener("change", (e) => { view.seq = e.target.value; preload(view.a); if (view.b) preload(view.b); markKeys(); draw(); });
  $("compare").addEventListener("change", (e) => setCompare(e.target.value));
  $("compare-mode").addEventListener("change", draw);
  $("overlay").addEventListener("change", (e) => { view.overlay = e.target.value; draw(); });
  $("overlay-opacity").addEventListener("input", draw);
  $("play").addEventListener("click", () => togglePlay());
  $("step-back").addEventListener("click", () => { togglePlay(false); setFrame(view.frame - 1); });
  $("step-fwd").addEventListener("click", () => { togglePlay(false); setFrame(view.frame + 1); });
  $("scrub").addEventListener("input", (e) => { togglePlay(false); setFrame(Number(e.target.value)); });
  for (const b of document.querySelectorAll("#versions .version")) b.addEventListener("click", () => showVersion(b.dataset.version));
  document.addEventListener("keydown", (e) => {
    if (e.target.matches("input, select, textarea")) return;
    if (e.key === " ") { e.preventDefault(); togglePlay(); }
    else if (e.key === "ArrowLeft") setFrame(view.frame - 1);
    else if (e.key === "ArrowRight") setFrame(view.frame + 1);
    else if (e.key === "t" || e.key === "T") { view.showB = !view.showB; draw(); }
  });
  showVersion(init.latest || init.versions[init.versions.length - 1]);
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
    for (let i = 0; i < 8; i++) row.append(document.createElement("td"));
    row.cells[1].className = "state"; row.cells[6].className = "error"; row.cells[7].className = "actions";
    const actions = document.getElementById("job-actions");  // present when the page may write
    if (actions) row.cells[7].append(actions.content.cloneNode(true));
    jobsBody.prepend(row);
  }
  row.className = "state-" + job.state;
  const badge = document.createElement("span");
  badge.className = "badge"; badge.textContent = job.state;
  row.cells[0].textContent = job.id;
  row.cells[1].replaceChildren(badge);
  row.cells[2].textContent = job.current_stage || "";
  row.cells[3].textContent = Math.round(job.progress * 100) + "%";
  row.cells[4].textContent = job.priority;
  row.cells[5].textContent = job.version ? "v" + String(job.version).padStart(3, "0") : "";
  row.cells[6].textContent = job.error || "";
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
      for (const old of document.querySelectorAll("#versions .version span")) old.textContent = old.textContent.replace(" · latest", "");
    }
    b.append(img, label);
    b.addEventListener("click", () => showVersion(v));
    $("versions").prepend(b);
  }
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
