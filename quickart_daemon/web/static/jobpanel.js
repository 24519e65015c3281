// The job panel: a job's state, error, warnings and log, opened from a job row's "log" button or by
// ?job=N in the URL. While the job is queued or running the panel asks every half second for the job and
// for the log's new lines only (/api/jobs/N/log?offset=), so a long log is not sent again and again.
"use strict";

// its names stay inside this function: the panel shares the page with farm.js or shot.js (shot.js has its
// own tick(), the flipbook's, which a top-level function here replaced)
(() => {
  const jobPanel = document.getElementById("job-panel");
  const FINISHED_STATES = ["done", "failed", "cancelled", "superseded"];
  const FOLLOW_MS = 500;
  let following = null;  // the open job: {id, offset, file, finishedTicks, timer}

  function panelPart(name) { return jobPanel.querySelector(".jp-" + name); }

  function showJob(job) {
    panelPart("id").textContent = job.id;
    panelPart("state").className = "jp-state state-" + job.state;
    panelPart("state").firstElementChild.textContent = job.state;
    const shot = panelPart("shot");
    shot.textContent = job.shot;
    shot.href = "/shots/" + encodeURI(job.shot_rel);
    panelPart("stage").textContent = job.state === "running"
      ? `${job.current_stage || ""} ${Math.round(job.progress * 100)}% · ${job.node || ""}`
      : `attempt ${job.attempts}/${job.max_attempts}${job.version ? " · v" + String(job.version).padStart(3, "0") : ""}`;
    const error = panelPart("error");
    error.textContent = job.error || "";
    error.hidden = !job.error;
    const warnings = panelPart("warnings");
    warnings.querySelector("ul").replaceChildren(...(job.warnings || []).map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }));
    warnings.hidden = !(job.warnings || []).length;
  }

  async function followLog(state) {
    const log = panelPart("log");
    const response = await fetch(`/api/jobs/${state.id}/log?offset=${state.offset}`, {cache: "no-store"});
    if (state !== following) return;
    if (response.status === 404) {
      if (!state.file) log.textContent = "(no log yet)";
      return;
    }
    if (!response.ok) throw new Error(`log: ${response.status}`);
    const text = await response.text();
    const from = Number(response.headers.get("X-Log-From"));
    const file = response.headers.get("X-Log-File");
    if (state !== following) return;
    if (state.file && file !== state.file && from !== 0) {  // the log moved (published) or a new one began
      state.file = file;
      state.offset = 0;
      return followLog(state);
    }
    state.file = file;
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;  // follow only a reader at the end
    if (from === 0) log.textContent = text;
    else if (text) log.append(text);
    state.offset = Number(response.headers.get("X-Log-Next"));
    if (atEnd) log.scrollTop = log.scrollHeight;
  }

  async function tick(state) {
    let finished = false;
    try {
      const job = await api("GET", `/api/jobs/${state.id}`);
      if (state !== following) return;
      showJob(job);
      finished = FINISHED_STATES.includes(job.state);
      await followLog(state);
      panelPart("follow").textContent = finished ? "" : "following…";
    } catch (err) {
      if (state !== following) return;
      panelPart("follow").textContent = err.message;
    }
    if (state !== following) return;
    state.finishedTicks = finished ? state.finishedTicks + 1 : 0;
    // a finished job's log is read once more (its last lines may land just after the state)
    if (state.finishedTicks < 2) state.timer = setTimeout(() => tick(state), FOLLOW_MS);
  }

  function openJob(id) {
    closeJob(false);
    following = {id: Number(id), offset: 0, file: null, finishedTicks: 0, timer: null};
    panelPart("log").textContent = "";
    panelPart("id").textContent = id;
    jobPanel.hidden = false;
    setJobInUrl(id);
    tick(following);
  }

  function closeJob(updateUrl = true) {
    if (following) clearTimeout(following.timer);
    following = null;
    jobPanel.hidden = true;
    if (updateUrl) setJobInUrl(null);
  }

  function setJobInUrl(id) {
    const params = new URLSearchParams(location.search);
    if (id) params.set("job", id); else params.delete("job");
    const query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : "") + location.hash);
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-open-job]");
    if (button) openJob(button.closest("tr[data-id]").dataset.id);
  });
  panelPart("close").addEventListener("click", () => closeJob());
  document.addEventListener("keydown", (event) => { if (event.key === "Escape" && following) closeJob(); });
  const askedFor = new URLSearchParams(location.search).get("job");
  if (askedFor && /^\d+$/.test(askedFor)) openJob(askedFor);
})();
