// Shot browser: every shot by show and sequence (the list comes in the page), filtered here as you type;
// the filters are kept in the URL so a filtered view can be linked. Job states follow the live feed, and a
// shot the feed names that the list lacks (created after the page loaded) is fetched and put in its place.
"use strict";

const data = JSON.parse(document.getElementById("initial").textContent);
const list = document.getElementById("shot-rows");
const rowTemplate = document.getElementById("shot-row").content.firstElementChild;
const controls = {show: document.getElementById("f-show"), seq: document.getElementById("f-seq"),
                  state: document.getElementById("f-state"), review: document.getElementById("f-review"),
                  q: document.getElementById("f-text")};
const entries = [];        // {shot, row, key, visible} in page order
const byRel = new Map();   // shot folder -> entry (the feed names jobs by it)
const groups = [];         // {row, members, count}: a show's and a sequence's heading rows
const showGroups = new Map(), seqGroups = new Map();  // show -> its group, "show/seq" -> its group
const arriving = new Map();  // shot folder -> the feed's jobs for it that came while its row was fetched
const COLOR = /^#[0-9a-f]{3,8}$/i;  // a tracker's status colour, used only when it is a plain hex colour

function pad(version) { return "v" + String(version).padStart(3, "0"); }

function fill(entry) {
  const {shot, row} = entry;
  const [thumbCell, nameCell, versionCell, jobCell, reviewCell, trackerCell] = row.children;
  const href = "/shots/" + encodeURI(shot.rel);
  thumbCell.firstElementChild.href = href;
  const img = thumbCell.querySelector("img");
  if (shot.thumb) {
    const src = encodeURI(shot.thumb);
    if (img.getAttribute("src") !== src) { img.hidden = false; img.src = src; }
  } else img.hidden = true;
  const link = nameCell.firstElementChild;
  link.href = href;
  link.textContent = shot.shot;
  versionCell.textContent = shot.version || "";

  const job = shot.job;
  jobCell.className = "job" + (job ? " state-" + job.state : "");
  const badge = jobCell.querySelector(".badge");
  badge.textContent = job ? job.state : "no job";
  badge.title = job ? `job ${job.id}${job.error ? ": " + job.error : ""} (open its log and warnings)` : "";
  jobCell.querySelector(".stage").textContent =
    job && job.state === "running" ? `${job.stage || ""} ${Math.round(job.progress * 100)}%` : "";

  const approval = reviewCell.firstElementChild;
  approval.className = "approval " + (shot.approval ? shot.approval.state : "none");
  approval.textContent = shot.approval ? shot.approval.label : shot.version ? "not reviewed" : "";
  approval.title = shot.approval ? `${shot.approval.label} by ${shot.approval.author}, ${shot.approval.at}` : "";

  trackerCell.replaceChildren(trackerState(shot));
}

function trackerState(shot) {
  const span = document.createElement("span");
  const t = shot.tracker;
  if (t) {  // the tracker's own status, read back
    span.className = "tracker-status";
    span.textContent = t.name || t.status;
    span.title = `${t.status}${t.at ? " · " + t.at : ""}`;
    if (t.color && COLOR.test(t.color)) span.style.background = t.color;
    if (t.url && /^https?:\/\//.test(t.url)) {
      const a = document.createElement("a");
      a.href = t.url; a.target = "_blank"; a.rel = "noopener"; a.append(span);
      return a;
    }
  } else if (shot.delivery) {  // what our outbox knows: delivered, waiting or failed
    const d = shot.delivery;
    span.className = "delivery " + d.state;
    span.textContent = `${d.tracker}: ${d.state}`;
    span.title = d.error ? `after ${d.attempts} tries: ${d.error}` : `${d.attempts} tries`;
  }
  return span;
}

function headingRow(kind, key, label) {
  const row = document.createElement("div");
  row.className = "group " + kind;
  row.setAttribute("role", "row");
  const cell = document.createElement("div");
  cell.setAttribute("role", "cell");
  const count = document.createElement("span");
  count.className = "count";
  cell.append(label, " ", count);
  row.append(cell);
  const group = {row, members: [], count};
  groups.push(group);
  (kind === "show" ? showGroups : seqGroups).set(key, group);
  return group;
}

// a shot's row, and its show's and sequence's heading rows where they are new
function rowsOf(shot) {
  const rows = [];
  let showGroup = showGroups.get(shot.show), seqGroup = seqGroups.get(shot.show + "/" + shot.seq);
  if (!showGroup) { showGroup = headingRow("show", shot.show, shot.show); rows.push(showGroup.row); }
  if (!seqGroup) {
    seqGroup = headingRow("seq", shot.show + "/" + shot.seq, `${shot.show} / ${shot.seq}`);
    rows.push(seqGroup.row);
  }
  const entry = {shot, row: rowTemplate.cloneNode(true), key: shot.shot.toLowerCase(), visible: true};
  entry.row.dataset.rel = shot.rel;
  fill(entry);
  byRel.set(shot.rel, entry);
  showGroup.members.push(entry);
  seqGroup.members.push(entry);
  rows.push(entry.row);
  return {entry, rows};
}

function render() {
  const rows = document.createDocumentFragment();
  for (const shot of data.shots) {  // by show, sequence and name (the server's order)
    const placed = rowsOf(shot);
    entries.push(placed.entry);
    rows.append(...placed.rows);
  }
  list.append(rows);
}

function byName(a, b) {
  for (const field of ["show", "seq", "name"]) if (a[field] !== b[field]) return a[field] < b[field] ? -1 : 1;
  return 0;
}

// a shot the page did not list, put where a reload would show it: under its show and sequence (new
// heading rows where they are new), in name order; the show and sequence filters offer it too
function addShot(shot) {
  if (byRel.has(shot.rel)) return;
  let at = data.shots.findIndex((s) => byName(shot, s) < 0);
  if (at < 0) at = data.shots.length;
  const next = data.shots[at];
  // before the next shot's row, or before its sequence's or show's heading when it is in another one
  let anchor = next ? byRel.get(next.rel).row : null;
  if (next && next.show !== shot.show) anchor = showGroups.get(next.show).row;
  else if (next && next.seq !== shot.seq) anchor = seqGroups.get(next.show + "/" + next.seq).row;
  const placed = rowsOf(shot);
  for (const row of placed.rows) list.insertBefore(row, anchor);
  data.shots.splice(at, 0, shot);
  entries.splice(at, 0, placed.entry);
  options(controls.show, [...new Set(data.shots.map((s) => s.show))].sort());
  sequenceOptions();
  document.getElementById("total-count").textContent = data.shots.length;
}

async function fetchShot(job) {
  const waiting = arriving.get(job.shot_rel);
  if (waiting) { waiting.push(job); return; }
  arriving.set(job.shot_rel, [job]);
  try {
    const response = await fetch("/api/shots/" + encodeURI(job.shot_rel), {cache: "no-store"});
    if (response.ok) addShot(await response.json());
  } catch (err) { /* the shot's next job update asks again */ }
  const jobs = arriving.get(job.shot_rel);
  arriving.delete(job.shot_rel);
  // the updates that came meanwhile, in order: the feed sends a job's newest state last, so the row ends
  // as the feed last saw it even when the fetched row was read before or after them
  for (const update of jobs) onJob(update);
  apply();
}

function options(select, values) {
  const chosen = select.value;
  select.replaceChildren(new Option("all", ""), ...values.map((v) => new Option(v, v)));
  select.value = values.includes(chosen) ? chosen : "";
}

function sequenceOptions() {
  const show = controls.show.value;
  options(controls.seq, [...new Set(data.shots.filter((s) => !show || s.show === show).map((s) => s.seq))].sort());
}

function current() {
  return {show: controls.show.value, seq: controls.seq.value, state: controls.state.value,
          review: controls.review.value, words: controls.q.value.toLowerCase().split(/\s+/).filter(Boolean)};
}

function matches(shot, key, f) {
  if (f.show && shot.show !== f.show) return false;
  if (f.seq && shot.seq !== f.seq) return false;
  if (f.state && (shot.job ? shot.job.state : "none") !== f.state) return false;
  if (f.review && (shot.approval ? shot.approval.state : "none") !== f.review) return false;
  return f.words.every((w) => key.includes(w));
}

function apply() {
  const f = current();
  let shown = 0;
  for (const entry of entries) {
    const visible = matches(entry.shot, entry.key, f);
    if (visible !== entry.visible) { entry.row.hidden = !visible; entry.visible = visible; }
    shown += visible;
  }
  for (const group of groups) {
    let n = 0;
    for (const entry of group.members) n += entry.visible;
    group.row.hidden = n === 0;
    group.count.textContent = n === group.members.length ? `${n}` : `${n} of ${group.members.length}`;
  }
  document.getElementById("shown-count").textContent = shown;
  document.getElementById("no-shots").hidden = shown > 0;
  const params = new URLSearchParams();
  for (const name of ["show", "seq", "state", "review", "q"]) {
    const value = controls[name].value.trim();
    if (value) params.set(name, value);
  }
  const query = params.toString();
  if (query !== location.search.slice(1)) history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
}

function fromUrl() {
  const params = new URLSearchParams(location.search);
  options(controls.show, [...new Set(data.shots.map((s) => s.show))].sort());
  controls.show.value = params.get("show") || "";
  sequenceOptions();
  controls.seq.value = params.get("seq") || "";
  for (const name of ["state", "review"]) {
    const value = params.get(name) || "";
    controls[name].value = [...controls[name].options].some((o) => o.value === value) ? value : "";
  }
  controls.q.value = params.get("q") || "";
}

// a job of a listed shot changed (the farm's live feed): its row follows, a new version included
function onJob(job) {
  const entry = byRel.get(job.shot_rel);
  if (!entry || (entry.shot.job && job.id < entry.shot.job.id)) return false;
  const shot = entry.shot;
  shot.job = {id: job.id, state: job.state, stage: job.current_stage, progress: job.progress, error: job.error};
  if (job.state === "done" && job.version && (!shot.version || job.version > Number(shot.version.slice(1)))) {
    shot.version = pad(job.version);
    shot.thumb = `/thumbs/${shot.rel}/${shot.version}.png`;
    shot.approval = null;   // a new version: not reviewed, not delivered yet
    shot.delivery = null;
  }
  fill(entry);
  return true;
}

function connect() {
  followFeed(data.seq, data.epoch, (event) => {
    let changed = false;
    for (const job of event.jobs || []) {
      if (byRel.has(job.shot_rel)) changed = onJob(job) || changed;
      else fetchShot(job);
    }
    if (changed) apply();
  });
}

for (const control of Object.values(controls)) {
  control.addEventListener(control === controls.q ? "input" : "change", () => {
    if (control === controls.show) sequenceOptions();
    apply();
  });
}
document.getElementById("f-clear").addEventListener("click", () => {
  for (const control of Object.values(controls)) control.value = "";
  sequenceOptions();
  apply();
  controls.q.focus();
});
list.addEventListener("click", (event) => {
  const badge = event.target.closest(".job .badge");
  const entry = badge && byRel.get(badge.closest(".shot-row").dataset.rel);
  if (entry && entry.shot.job) location.href = "/?job=" + entry.shot.job.id;
});
document.addEventListener("keydown", (event) => {  // "/" searches, as on most lists
  if (event.key === "/" && !["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)) { event.preventDefault(); controls.q.focus(); }
});
// a version without frames to show has no thumbnail (the error does not bubble: caught on its way down)
list.addEventListener("error", (event) => { if (event.target.tagName === "IMG") event.target.hidden = true; }, true);

fromUrl();
render();
apply();
performance.mark("shots-listed");
requestAnimationFrame(() => requestAnimationFrame(() => performance.mark("shots-painted")));
connect();
