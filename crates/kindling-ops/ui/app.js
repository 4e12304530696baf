// Kindling dashboard: live updates over server-sent events (/api/v1/events).
// The pages are complete without this script; it only keeps them current, with HTML the
// server renders (the same code that renders the pages), fetched after each update.
"use strict";

// Fetches `url()` 300 ms after the first call, one request at a time, and hands the HTML
// to `use`. Calls during the wait or the request are folded into one more fetch; after a
// fetch that worked, another follows while `more()` says so. `url()` may say null (nothing
// to fetch); `failed()` hears of a fetch that did not work.
function refresher(url, use, more, failed) {
  let busy = false;
  let again = false;
  const run = () => {
    busy = true;
    setTimeout(() => {
      again = false;
      let ok = false;
      const done = () => {
        busy = false;
        if (again || (ok && more && more())) run();
      };
      const u = url();
      if (u === null) { done(); return; }
      fetch(u, { cache: "no-store" })
        .then((r) => (r.ok ? r.text() : Promise.reject(new Error("HTTP " + r.status))))
        .then((html) => { use(html); ok = true; }, () => { if (failed) failed(); })
        .finally(done);
    }, 300);
  };
  return () => { if (busy) again = true; else run(); };
}

// Machines whose row changed and is not fetched yet, the most recent last; fetched 128
// at a time, oldest first (each batch goes on top of the last). A batch whose fetch
// failed goes back in front, for the next update to fetch again.
let changed = new Set();
let fetching = [];

function rowsUrl() {
  fetching = [...changed].slice(0, 128);
  if (!fetching.length) return null;
  fetching.forEach((m) => changed.delete(m));
  return "/ui/?fragment=rows&" + fetching.map((m) => "mac=" + encodeURIComponent(m)).join("&");
}

function rowsFailed() {
  changed = new Set([...fetching, ...changed]);
}

// New rows go on top, replacing the machine's old row.
function showRows(html) {
  const body = document.querySelector("#machines tbody");
  if (!body) return;
  const t = document.createElement("tbody");
  t.innerHTML = html;
  for (const row of [...t.rows]) {
    const old = document.getElementById(row.id);
    if (old) old.remove();
    body.insertBefore(row, body.firstChild);
    row.classList.add("flash");
  }
  const empty = document.getElementById("empty");
  if (empty && body.rows.length) empty.hidden = true;
}

function showTimeline(html) {
  const t = document.getElementById("timeline");
  if (t) t.innerHTML = html;
}

function start() {
  const live = document.getElementById("live");
  if (!("EventSource" in window) || !live) return;
  const page = document.body.dataset.page;
  const mac = document.body.dataset.mac;
  const refreshRows = refresher(rowsUrl, showRows, () => changed.size > 0, rowsFailed);
  const refreshTimeline = refresher(() => location.pathname + "?fragment=timeline", showTimeline);
  const es = new EventSource("/api/v1/events");
  es.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  es.onerror = () => { live.textContent = "reconnecting\u2026"; live.className = "live off"; };
  // Missed updates (a slow tab): start over from the server's view.
  es.addEventListener("lagged", () => location.reload());
  es.addEventListener("machine", (ev) => {
    let u;
    try { u = JSON.parse(ev.data); } catch (e) { return; }
    const m = u.machine && u.machine.mac;
    if (!m) return;
    if (page === "machines") {
      changed.delete(m);
      changed.add(m);
      refreshRows();
    } else if (page === "machine" && m === mac) refreshTimeline();
  });
}

document.addEventListener("DOMContentLoaded", start);
