// Kindling dashboard: live updates over server-sent events (/api/v1/events).
// The pages are complete without this script; it only keeps them current.
"use strict";

const STAGES = ["dhcp", "tftp", "script", "kernel", "initrd", "rootfs", "ignition"];

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function cell(text, cls) {
  const td = el("td", cls ? { class: cls } : {});
  td.textContent = text === null || text === undefined ? "\u2013" : text;
  return td;
}

function stageList(last, failed) {
  const ol = el("ol", { class: "stages" });
  const li = STAGES.indexOf(last);
  STAGES.forEach((s, i) => {
    const cls = s === failed ? "failed" : (li >= 0 && i <= li ? "reached" : "todo");
    ol.appendChild(el("li", { class: cls }, s));
  });
  return ol;
}

function machineRow(m) {
  const tr = el("tr", { id: "m-" + m.mac.replace(/:/g, ""), "data-mac": m.mac });
  const mac = el("td", { class: "mac" });
  mac.appendChild(el("a", { href: "/ui/machines/" + m.mac }, m.mac));
  tr.appendChild(mac);
  for (const k of ["ip", "arch", "firmware", "group", "profile"]) tr.appendChild(cell(m[k]));
  tr.appendChild(cell(m.last_stage, "stage"));
  const prog = el("td", { class: "progress" });
  const err = m.last_error;
  prog.appendChild(stageList(m.last_stage, err ? err.stage : null));
  tr.appendChild(prog);
  const seen = el("td");
  seen.appendChild(el("time", { datetime: m.last_seen_at }, m.last_seen_at));
  tr.appendChild(seen);
  tr.appendChild(el("td", { class: "err" }, err ? err.message : ""));
  return tr;
}

function updateMachines(update) {
  const body = document.querySelector("#machines tbody");
  if (!body) return;
  const row = machineRow(update.machine);
  const old = document.getElementById(row.id);
  if (old) old.remove();
  body.insertBefore(row, body.firstChild);
  row.classList.add("flash");
  const empty = document.getElementById("empty");
  if (empty) empty.hidden = true;
}

let refreshing = null;
function refreshTimeline() {
  if (refreshing) return;
  refreshing = setTimeout(() => {
    fetch(location.pathname + "?fragment=timeline", { cache: "no-store" })
      .then((r) => (r.ok ? r.text() : Promise.reject(new Error("HTTP " + r.status))))
      .then((html) => {
        const t = document.getElementById("timeline");
        if (t) t.innerHTML = html;
      })
      .catch(() => {})
      .finally(() => { refreshing = null; });
  }, 300);
}

function start() {
  const live = document.getElementById("live");
  if (!("EventSource" in window) || !live) return;
  const page = document.body.dataset.page;
  const mac = document.body.dataset.mac;
  const es = new EventSource("/api/v1/events");
  es.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  es.onerror = () => { live.textContent = "reconnecting\u2026"; live.className = "live off"; };
  // Missed updates (a slow tab): start over from the server's view.
  es.addEventListener("lagged", () => location.reload());
  es.addEventListener("machine", (ev) => {
    let u;
    try { u = JSON.parse(ev.data); } catch (e) { return; }
    if (page === "machines") updateMachines(u);
    else if (page === "machine" && u.machine && u.machine.mac === mac) refreshTimeline();
  });
}

document.addEventListener("DOMContentLoaded", start);
