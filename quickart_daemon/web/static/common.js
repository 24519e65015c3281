// Shared by every page: the write token (kept in this browser only), API calls, job buttons.
"use strict";

const tokenInput = document.getElementById("token");
if (location.hash.startsWith("#token=")) {  // `quickart web` links may carry it; never sent to the server in a URL
  localStorage.setItem("quickart-token", decodeURIComponent(location.hash.slice(7)));
  history.replaceState(null, "", location.pathname + location.search);
}
if (tokenInput) {
  tokenInput.value = localStorage.getItem("quickart-token") || "";
  tokenInput.addEventListener("change", () => localStorage.setItem("quickart-token", tokenInput.value));
}

function toast(text, bad) {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.className = bad ? "bad show" : "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.className = ""; }, 4000);
}

async function api(method, url, body) {
  // X-Requested-By: what lets a trusted local user write without the token (no other site can send it)
  const headers = {"X-Requested-By": "quickart"};
  const token = localStorage.getItem("quickart-token");
  if (token) headers["Authorization"] = "Bearer " + token;
  const init = {method, headers};
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) { init.body = JSON.stringify(body); headers["Content-Type"] = "application/json"; }
  const response = await fetch(url, init);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// "retry from": the stages a finished job can start again at, asked for when the list is opened
// (a job that finished after the page loaded has none listed yet)
document.addEventListener("focusin", async (event) => {
  const select = event.target.closest("select.retry-from");
  if (!select) return;
  const id = select.closest("tr[data-id]").dataset.id;
  try {
    const job = await api("GET", `/api/jobs/${id}`);
    const chosen = select.value;
    select.replaceChildren(new Option("from start", ""),
      ...(job.retry_from || []).slice(1).map((stage) => new Option("from " + stage, stage)));
    select.value = (job.retry_from || []).includes(chosen) ? chosen : "";
  } catch (err) { /* the list stays as it was */ }
});

// retry / cancel / priority + on any table of jobs
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-act]");
  if (!button) return;
  const row = button.closest("tr[data-id]");
  const id = row.dataset.id, act = button.dataset.act;
  try {
    const from = row.querySelector("select.retry-from");
    const body = act === "priority" ? {priority: Number(row.querySelector(".prio").textContent) + 10}
      : act === "retry" && from && from.value ? {from_stage: from.value} : {};
    const job = await api("POST", `/api/jobs/${id}/${act}`, body);
    toast(`job ${id}: ${act} → ${job.state}${act === "priority" ? ", priority " + job.priority : ""}`);
  } catch (err) {
    toast(`job ${id}: ${err.message}`, true);
  }
});

// The page's live feed (/api/events, server-sent): `onEvent` gets each update after the page's own
// `seq`; the "live" badge says whether it is connected; the epoch names the server's feed, so a server
// restarted since the page was made answers "reload" and the page reloads.
function followFeed(seq, epoch, onEvent) {
  const live = document.getElementById("live");
  const source = new EventSource("/api/events?seq=" + seq + "&epoch=" + epoch);
  source.onopen = () => { live.className = "live on"; };
  source.onerror = () => { live.className = "live off"; };
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === "reload") { location.reload(); return; }
    onEvent(event);
  };
  return source;
}
