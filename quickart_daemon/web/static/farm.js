// Farm view: the table rendered by the server, kept current by server-sent events.
"use strict";

const initial = JSON.parse(document.getElementById("initial").textContent);
const tbody = document.querySelector("#jobs tbody");
const template = document.getElementById("row-template");

function matches(job) {
  const f = initial.filters;
  if (f.state.length && !f.state.includes(job.state)) return false;
  if (f.shot) {
    const name = job.shot.split("/").pop();
    if (f.shot !== name && f.shot !== job.shot) return false;
  }
  return true;
}

function fill(row, job) {
  row.dataset.id = job.id;
  row.className = "state-" + job.state;
  row.querySelector(".id").textContent = job.id;
  row.querySelector(".state .badge").textContent = job.state;
  const link = row.querySelector(".shot a");
  link.textContent = job.shot;
  link.href = "/shots/" + job.shot_rel;
  row.querySelector(".stage").textContent = job.current_stage || "";
  row.querySelector(".progress .bar i").style.width = Math.round(job.progress * 100) + "%";
  row.querySelector(".progress .pct").textContent = Math.round(job.progress * 100) + "%";
  row.querySelector(".prio").textContent = job.priority;
  row.querySelector(".node").textContent = (job.node || "") + (job.slot ? "/" + job.slot : "");
  row.querySelector(".times").textContent = (job.created_at || "") + (job.finished_at ? " → " + job.finished_at : "");
  row.querySelector(".version").textContent = job.version ? "v" + String(job.version).padStart(3, "0") : "";
  row.querySelector(".error").textContent = job.error || "";
}

function upsert(job) {
  let row = tbody.querySelector(`tr[data-id="${job.id}"]`);
  if (!matches(job)) { if (row) row.remove(); return; }
  if (!row) {
    row = template.content.firstElementChild.cloneNode(true);
    const after = [...tbody.rows].find((r) => Number(r.dataset.id) < job.id);  // newest first
    tbody.insertBefore(row, after || null);
    if (tbody.rows.length > initial.filters.limit) tbody.lastElementChild.remove();
  }
  fill(row, job);
}

function showNodes(nodes) {
  const ul = document.getElementById("nodes");
  ul.replaceChildren(...nodes.map((n) => {
    const li = document.createElement("li");
    li.className = n.alive ? "alive" : "dead";
    const b = document.createElement("b");
    b.textContent = n.name;
    li.append(b, ` ${n.alive ? "alive" : "not running"} · ${n.watch_mode || ""} `);
    for (const s of n.slots) {
      const span = document.createElement("span");
      span.className = "slot";
      span.textContent = `${s.slot}: ${s.job ? "job " + s.job : "free"}`;
      li.append(span);
    }
    return li;
  }));
}

followFeed(initial.seq, initial.epoch, (event) => {
  for (const job of event.jobs || []) upsert(job);
  if (event.counts) {
    for (const span of document.querySelectorAll("#counts .count")) {
      span.querySelector("b").textContent = event.counts[span.dataset.state] || 0;
    }
  }
  if (event.nodes) showNodes(event.nodes);
});
