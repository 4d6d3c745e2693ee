// The live dashboard: one card per camera with its annotated video (WebRTC, MJPEG when WebRTC is
// blocked), the newest count, per-zone counts, a chart of the last minutes and a red state for zones
// over their threshold. Counts arrive as Server-Sent Events; camera status is polled.

import { anyOngoing, loadAlerts, showAlerts, takeAlert } from "./alerts.js";
import { drawChart } from "./chart.js";
import { ago, clockTime, limitText, number, people } from "./format.js";
import { openTeach, showJob } from "./teach.js";
import { openZoneEditor } from "./zones.js";

const CHART_SECONDS = 300; // the chart keeps this much history
const STATUS_POLL_MS = 2000;
const RETRY_MS = 3000;
const WEBRTC_ATTEMPTS = 2; // failed WebRTC attempts before a camera falls back to MJPEG
const ICE_GATHER_MS = 2000;

const cameras = new Map(); // id → {card, els, pc, history, failures, usesMjpeg}
let iceServers = [];
window.crowdstream = { cameras }; // for people (and tests) debugging from the console

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (response.status === 401) location.assign("/login");
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

function cameraName(id) {
  const state = cameras.get(id);
  return state ? state.els.name.textContent : id;
}

function api(id, path) {
  return `/api/cameras/${encodeURIComponent(id)}/${path}`;
}

// ---- cards -------------------------------------------------------------------------------------

function createCard(camera) {
  const card = document.getElementById("camera-card").content.firstElementChild.cloneNode(true);
  card.dataset.camera = camera.id;
  const els = {
    video: card.querySelector("video"), img: card.querySelector("img.fallback"),
    status: card.querySelector(".status"), name: card.querySelector(".name"),
    value: card.querySelector(".count .value"), zones: card.querySelector(".zones"),
    chart: card.querySelector("canvas.chart"), health: card.querySelector(".health"),
    unit: card.querySelector(".count .unit"), smoothed: card.querySelector(".count .smoothed"),
  };
  els.name.textContent = camera.name || camera.id;
  els.source = Object.assign(document.createElement("p"), { className: "source", textContent: camera.url });
  els.name.after(els.source); // where it is read from (password redacted): a dead camera says which URL
  els.doubt = Object.assign(document.createElement("button"), {
    type: "button", className: "doubt", hidden: true, textContent: "count uncertain — teach this camera",
  });
  els.doubt.addEventListener("click", (event) => { // straight to the correction dialog
    event.stopPropagation();
    openTeach(camera.id, els.name.textContent);
  });
  els.source.after(els.doubt);
  card.querySelector(".edit-zones").addEventListener("click", (event) => {
    event.stopPropagation(); // not a click on the card (which enlarges it)
    openZoneEditor(camera.id, els.name.textContent).catch((error) => console.warn(error.message));
  });
  card.querySelector(".correct").addEventListener("click", (event) => {
    event.stopPropagation();
    openTeach(camera.id, els.name.textContent);
  });
  const toggle = () => {
    card.classList.toggle("expanded");
    card.scrollIntoView({ block: card.classList.contains("expanded") ? "start" : "nearest" });
  };
  card.addEventListener("click", toggle);
  card.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); toggle(); }
    if (event.key === "Escape") card.classList.remove("expanded");
  });
  document.getElementById("grid").append(card);
  const state = { card, els, pc: null, history: [], failures: 0, usesMjpeg: false, count: null };
  cameras.set(camera.id, state);
  return state;
}

const HEALTH_TITLES = {
  starting: "Connecting to the camera…", down: "Camera down", ended: "The video has ended",
  stopped: "Not read by this worker",
};

function showStatus(state, camera) {
  state.camera = camera;
  state.card.dataset.status = camera.status;
  state.els.status.textContent = camera.status === "up" ? `${camera.fps.toFixed(1)} fps` : camera.status;
  state.card.classList.toggle("down", camera.status !== "up");
  if (camera.status !== "up" && state.lastCounted) { // the count shown is the last one it had
    state.els.smoothed.textContent = `last count ${clockTime(state.lastCounted)}`;
  }
  showHealth(state);
}

// A camera that is not up: what happened, since when, how often it reconnected and when it tries
// next, laid over the last picture it sent (the video keeps showing it).
function showHealth(state) {
  const camera = state.camera, panel = state.els.health;
  panel.hidden = camera.status === "up";
  if (panel.hidden) return;
  panel.querySelector(".health-title").textContent = HEALTH_TITLES[camera.status] || camera.status;
  panel.querySelector(".health-reason").textContent = camera.status === "down" && camera.last_error ? camera.last_error : "";
  const details = [`since ${clockTime(camera.status_since)} (${ago(camera.status_since)})`];
  if (camera.reconnects) details.push(`${camera.reconnects} reconnect${camera.reconnects === 1 ? "" : "s"}`);
  if (camera.status === "down") {
    const wait = camera.next_retry == null ? 0 : Math.round(camera.next_retry - Date.now() / 1000);
    details.push(wait > 0 ? `next try in ${wait} s` : "trying again now");
  }
  panel.querySelector(".health-detail").textContent = details.join(" · ");
}

// "left-half: 64 people · 0.53 /m² · limit 1.5 /m²" (a zone without an area: "limit 20 people")
function zoneText(zone) {
  const parts = [`${zone.name}: ${people(zone.count)}`];
  if (zone.density != null) parts.push(`${number(zone.density, 2)} /m²`);
  if (zone.threshold != null) parts.push(`limit ${limitText(zone.threshold, zone.density == null)}`);
  return parts.join(" · ");
}

// The camera's count self-check (engines.uncertainty): when it says the count is not reliable, the card
// says so and offers the correction dialog, with the figure behind it on hover.
function showDoubt(button, reading) {
  button.hidden = reading.uncertain !== true;
  if (!button.hidden) {
    button.title = `${reading.uncertain_reason}: mark a few snapshots to teach the model this camera`;
  }
}

function showReading(state, reading) {
  state.count = reading.count;
  state.els.value.textContent = Math.round(reading.count);
  state.els.value.dataset.count = reading.count;
  state.els.unit.textContent = Math.round(reading.count) === 1 ? "person" : "people";
  state.els.smoothed.textContent = `smoothed ${Math.round(reading.smoothed)}`;
  showDoubt(state.els.doubt, reading);
  state.lastCounted = reading.timestamp;
  state.els.zones.replaceChildren(...reading.zones.map((zone) => {
    const item = document.createElement("li");
    item.classList.toggle("alert", zone.over_threshold);
    item.textContent = zoneText(zone);
    return item;
  }));
  state.card.classList.toggle("alert", reading.zones.some((zone) => zone.over_threshold));
  state.history.push([reading.timestamp, reading.count]);
  const oldest = reading.timestamp - CHART_SECONDS;
  while (state.history.length && state.history[0][0] < oldest) state.history.shift();
  drawChart(state.els.chart, state.history, reading.timestamp);
  showTotal();
}

function showTotal() {
  const counts = [...cameras.values()].map((s) => s.count).filter((c) => c != null);
  document.getElementById("total").textContent = counts.length ? Math.round(counts.reduce((a, b) => a + b, 0)) : "–";
}

// ---- video ------------------------------------------------------------------------------------

function waitForIceGathering(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => pc.iceGatheringState === "complete" && resolve();
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, ICE_GATHER_MS); // send what we have; the server gathers its own candidates
  });
}

async function connectWebRTC(id, state) {
  const pc = new RTCPeerConnection({ iceServers });
  state.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addEventListener("track", (event) => {
    state.els.video.srcObject = event.streams[0] || new MediaStream([event.track]);
    state.els.video.play().catch(() => {});
  });
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "connected") state.failures = 0;
    if (pc.connectionState === "failed" && state.pc === pc) retryVideo(id, state);
  });
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIceGathering(pc);
  const response = await fetch(api(id, "offer"), {
    method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }),
  });
  if (!response.ok) throw new Error(`offer refused: HTTP ${response.status}`);
  await pc.setRemoteDescription(await response.json());
}

function useMjpeg(id, state) {
  state.usesMjpeg = true;
  state.els.video.hidden = true;
  state.els.img.hidden = false;
  state.els.img.src = `${api(id, "mjpeg")}?t=${Date.now()}`;
}

function stopVideo(state) {
  if (state.pc) state.pc.close();
  state.pc = null;
  state.els.video.srcObject = null;
  state.els.img.removeAttribute("src");
}

function retryVideo(id, state) {
  stopVideo(state);
  state.failures += 1;
  setTimeout(() => startVideo(id, state), RETRY_MS);
}

async function startVideo(id, state) {
  if (document.hidden || state.pc) return;
  if (!window.RTCPeerConnection || state.failures >= WEBRTC_ATTEMPTS) return useMjpeg(id, state);
  try {
    await connectWebRTC(id, state);
  } catch (error) {
    console.warn(`camera ${id}: ${error.message}`);
    retryVideo(id, state);
  }
}

// Nobody watches a hidden tab: close its connections so the server stops encoding for it.
document.addEventListener("visibilitychange", () => {
  for (const [id, state] of cameras) {
    if (document.hidden) stopVideo(state);
    else if (state.usesMjpeg) useMjpeg(id, state);
    else startVideo(id, state);
  }
});

// ---- data -------------------------------------------------------------------------------------

function listenForReadings() {
  const feed = document.getElementById("feed");
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => { feed.textContent = "live"; feed.classList.remove("stale"); });
  source.addEventListener("error", () => { feed.textContent = "reconnecting…"; feed.classList.add("stale"); });
  source.addEventListener("alert", (event) => takeAlert(JSON.parse(event.data), cameraName));
  source.addEventListener("finetune", (event) => showJob(JSON.parse(event.data)));
  source.addEventListener("reading", (event) => {
    const reading = JSON.parse(event.data);
    const state = cameras.get(reading.camera);
    if (state) showReading(state, reading);
  });
}

async function pollStatus() {
  try {
    const { cameras: list } = await getJSON("/api/cameras");
    for (const camera of list) {
      const state = cameras.get(camera.id);
      if (state) showStatus(state, camera);
    }
  } catch (error) {
    console.warn(error.message);
  }
}

// Where the counts are kept, and the redis-cli command that reads them.
function showRedis(redis) {
  const line = document.getElementById("redis");
  if (!redis) return;
  const where = redis.embedded
    ? `the embedded Redis (${redis.url}; ${redis.data_dir ? `kept in ${redis.data_dir}` : "discarded when the service stops"})`
    : `Redis at ${redis.url}`;
  line.querySelector(".redis-kind").textContent = where;
  line.querySelector(".redis-try").textContent = redis.try;
  line.hidden = false;
}

async function main() {
  const config = await getJSON("/api/config");
  iceServers = config.ice_servers;
  showRedis(config.redis);
  const { cameras: list } = await getJSON("/api/cameras");
  document.getElementById("empty").hidden = list.length > 0;
  for (const camera of list) {
    const state = createCard(camera);
    showStatus(state, camera);
    if (camera.count != null) showReading(state, { ...camera, camera: camera.id });
    startVideo(camera.id, state);
  }
  listenForReadings();
  await loadAlerts(getJSON, cameraName);
  setInterval(pollStatus, STATUS_POLL_MS);
  setInterval(() => { // the clocks: retry countdowns and the duration of ongoing alerts
    cameras.forEach((state) => state.camera && showHealth(state));
    if (anyOngoing()) showAlerts(cameraName);
  }, 1000);
}

main().catch((error) => {
  document.getElementById("feed").textContent = `error: ${error.message}`;
});
