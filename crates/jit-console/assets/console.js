// jit console: the tree's lazy expansion and a run's live progress. The
// pages work without it; this only adds what needs a script.
"use strict";

// The tree: a toggle loads its department's children once, then shows or
// hides them. Toggles are buttons, so Enter and Space work.
document.addEventListener("click", async (ev) => {
  const btn = ev.target.closest("button.toggle");
  if (!btn) return;
  const li = btn.closest("li");
  const open = btn.getAttribute("aria-expanded") === "true";
  let sub = li.querySelector(":scope > ul");
  if (open) {
    btn.setAttribute("aria-expanded", "false");
    if (sub) sub.hidden = true;
    return;
  }
  if (!sub) {
    btn.disabled = true;
    try {
      const res = await fetch(btn.dataset.children, { credentials: "same-origin" });
      if (!res.ok) throw new Error(res.status);
      li.insertAdjacentHTML("beforeend", await res.text());
      sub = li.querySelector(":scope > ul");
    } catch (e) {
      li.insertAdjacentHTML("beforeend", "<p class=alert role=alert>Could not load the sub-departments.</p>");
    } finally {
      btn.disabled = false;
    }
  }
  if (sub) sub.hidden = false;
  btn.setAttribute("aria-expanded", "true");
  btn.focus();
});

// A running run: follow its events until `done`, then show the result.
function follow(live) {
  const es = new EventSource(live.dataset.events);
  const $ = (id) => document.getElementById(id);
  const text = (el, t) => { if (el) el.textContent = t; };
  const calls = (c) => {
    if (!c) return;
    text($("calls"), `API calls ${c.total} · retries ${c.retries} · throttled ${c.throttled} · waited for the rate budget ${c.budgetWaitMs} ms`);
  };
  es.addEventListener("phase", (e) => {
    const d = JSON.parse(e.data);
    text($("phase"), `Phase: ${d.phase}`);
    calls(d.calls);
  });
  es.addEventListener("progress", (e) => {
    const d = JSON.parse(e.data);
    const units = $("units");
    units.replaceChildren();
    let found = 0, done = 0;
    for (const [unit, n] of Object.entries(d.units || {})) {
      const dt = document.createElement("dt");
      dt.textContent = unit;
      const dd = document.createElement("dd");
      dd.textContent = `${n.done} of ${n.found} read`;
      units.append(dt, dd);
      found += n.found; done += n.done;
    }
    if (found > 0) { $("bar").max = found; $("bar").value = done; }
    calls(d.calls);
  });
  es.addEventListener("note", (e) => {
    const p = document.createElement("p");
    p.className = "note";
    p.textContent = JSON.parse(e.data).message;
    live.append(p);
  });
  es.addEventListener("done", (e) => {
    es.close();
    const d = JSON.parse(e.data);
    text($("phase"), `Finished: ${d.outcome}`);
    live.dataset.done = d.outcome;
    // The page then shows the stored run with its changes.
    setTimeout(() => location.reload(), 1500);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live) follow(live);
});
