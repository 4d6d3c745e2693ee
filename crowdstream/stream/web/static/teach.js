// "Correct this camera": take snapshots of what the camera sees (the model's heads pre-filled), correct
// them in the annotation view, fine-tune the camera's model on them in the background (progress over
// the event stream, so it survives a reload), and switch the camera to the new model when its report
// says it counts this camera better.

import { Annotator } from "./annotate.js";
import { duration, number } from "./format.js";

const SPREAD_SHOTS = 4; // "take more": this many snapshots,
const SPREAD_MS = 5000; // this far apart, so they show different moments

const dialog = document.getElementById("teach");
const $ = (selector) => dialog.querySelector(selector);
const list = $(".teach-snapshots");
const annotator = new Annotator($("svg.teach-svg"), changed);

const MIN_SNAPSHOTS = 2; // the command trains on one and judges by another: it refuses fewer

let teach = null; // {camera, snapshots, suggested (stem), current (index), dirty, job, model}

function api(path = "") {
  return `/api/cameras/${encodeURIComponent(teach.camera)}/${path}`;
}

function say(text, kind = "") {
  const message = $(".teach-message");
  message.textContent = text;
  message.className = `teach-message ${kind}`;
}

async function send(method, path, body) {
  const response = await fetch(api(path), {
    method, credentials: "same-origin", headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const reply = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (response.status === 401) throw new Error("log in again (the session has ended)");
  if (!response.ok) throw new Error(reply.error);
  return reply;
}

function failed(error) {
  say(error.message, "error");
}

// ---- snapshots ----------------------------------------------------------------------------------

function showCounts() {
  const { points, empty_regions: regions } = annotator.marks();
  $(".marks").textContent = points.length;
  $(".regions").textContent = regions.length;
}

function changed() {
  teach.dirty = true;
  showCounts();
  $(".save").disabled = false;
}

function renderList() {
  list.replaceChildren(...teach.snapshots.map((snapshot, index) => {
    const item = document.createElement("li");
    item.classList.toggle("selected", index === teach.current);
    item.dataset.stem = snapshot.stem;
    const picture = document.createElement("img");
    picture.src = api(`snapshots/${snapshot.stem}/image.jpg`);
    picture.alt = `snapshot ${index + 1}`;
    const caption = document.createElement("span");
    caption.textContent = `${snapshot.points.length} heads${snapshot.empty_regions.length ? `, ${snapshot.empty_regions.length} empty` : ""}${snapshot.corrected ? " ✓" : ""}`;
    if (snapshot.stem === teach.suggested) {
      item.classList.add("suggested");
      item.title = "Correct this one next: its scene differs most from the snapshots corrected so far";
    }
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "delete";
    remove.textContent = "×";
    remove.title = "Remove this snapshot";
    remove.addEventListener("click", (event) => { event.stopPropagation(); removeSnapshot(index).catch(failed); });
    item.append(picture, caption, remove);
    item.addEventListener("click", () => open(index).catch(failed));
    return item;
  }));
  const count = teach.snapshots.length;
  $(".snapshot-count").textContent = `${count} snapshot${count === 1 ? "" : "s"}`;
  $(".finetune").disabled = count < MIN_SNAPSHOTS || teach.job?.state === "running";
  $(".finetune").title = count < MIN_SNAPSHOTS ? `Needs at least ${MIN_SNAPSHOTS} snapshots: one to train on, one to judge the result by` : "";
}

async function open(index) {
  if (teach.dirty) await save();
  teach.current = index;
  teach.dirty = false;
  const snapshot = teach.snapshots[index];
  annotator.show(api(`snapshots/${snapshot.stem}/image.jpg`), snapshot.size, snapshot.points, snapshot.empty_regions);
  showCounts();
  $(".save").disabled = true;
  $(".teach-view").hidden = false;
  renderList();
}

async function save() {
  const snapshot = teach.snapshots[teach.current];
  if (!snapshot) return;
  const saved = await send("PUT", `snapshots/${snapshot.stem}`, annotator.marks());
  teach.snapshots[teach.current] = saved;
  teach.dirty = false;
  $(".save").disabled = true;
  await refreshSuggestion();
  const next = teach.snapshots.findIndex((s) => s.stem === teach.suggested);
  const hint = next < 0 ? "" : ` Correct snapshot ${next + 1} next: its scene differs most from those corrected.`;
  say(`Saved ${saved.points.length} heads and ${saved.empty_regions.length} empty regions.${hint}`, "ok");
  renderList();
}

// Which snapshot to correct next (the server compares the scenes: stream/label_next.py).
async function refreshSuggestion() {
  const listed = await send("GET", "snapshots");
  teach.suggested = listed.suggested;
}

async function take() {
  const snapshot = await send("POST", "snapshots");
  teach.snapshots.push(snapshot);
  await refreshSuggestion();
  say(`Snapshot taken: the model found ${snapshot.points.length} heads. Correct the marks, then Save.`);
  await open(teach.snapshots.length - 1);
}

async function takeMore() {
  for (let shot = 1; shot <= SPREAD_SHOTS; shot += 1) {
    say(`Taking snapshot ${shot} of ${SPREAD_SHOTS}…`);
    const snapshot = await send("POST", "snapshots");
    teach.snapshots.push(snapshot);
    renderList();
    if (shot < SPREAD_SHOTS) await new Promise((resolve) => setTimeout(resolve, SPREAD_MS));
  }
  await refreshSuggestion();
  renderList();
  say(`${SPREAD_SHOTS} snapshots taken. Correct each (the outlined one first), then fine-tune.`);
}

async function removeSnapshot(index) {
  await send("DELETE", `snapshots/${teach.snapshots[index].stem}`);
  teach.snapshots.splice(index, 1);
  if (teach.current === index) {
    teach.current = null;
    teach.dirty = false;
    $(".teach-view").hidden = true;
  } else if (teach.current > index) teach.current -= 1;
  await refreshSuggestion();
  renderList();
}

// ---- fine-tuning --------------------------------------------------------------------------------

function mae(before, after) {
  return before == null || after == null ? "–" : `${number(before, 1)} → ${number(after, 1)}`;
}

// Why the page does or does not offer the new model, in the report's own terms.
function verdict(report) {
  if (!report) return "Done, but without a report.";
  if (report.better) return "Done: the fine-tuned model counts this camera better.";
  if (!(report.holdout_mae_after < report.holdout_mae_before)) {
    return "Done, but the fine-tuned model is not better on the held-out snapshots: keep the current one, or add and correct more snapshots.";
  }
  return "Done: better on the held-out snapshots, but the standard hold-out got worse than the rule allows, so the current model stays.";
}

export function showJob(job) {
  if (!teach || !job || job.camera !== teach.camera) return;
  teach.job = job;
  const running = job.state === "running";
  $(".job-progress").hidden = !running;
  $(".job-progress").value = job.fraction;
  $(".cancel-job").hidden = !running;
  const eta = job.eta_s == null ? "" : `, about ${duration(job.eta_s)} left`;
  const text = {
    running: `${job.stage} ${Math.round(job.fraction * 100)} %${eta}${job.loss == null ? "" : ` · loss ${number(job.loss, 3)}`}`,
    done: verdict(job.report),
    failed: `Failed: ${job.message}`,
    cancelled: "Cancelled.",
  }[job.state];
  $(".job-status").textContent = text;
  $(".job-status").className = `job-status ${job.state}${job.report?.better ? " better" : ""}`;
  const report = job.state === "done" ? job.report : null;
  $(".job-report").hidden = !report;
  if (report) {
    const standard = (part) => mae(report.standard_mae_before?.[part], report.standard_mae_after?.[part]);
    $(".holdout-mae").textContent = mae(report.holdout_mae_before, report.holdout_mae_after);
    const heldOut = Array.isArray(report.holdout) ? report.holdout.length : report.holdout;
    $(".holdout-size").textContent = `${heldOut} of ${report.snapshots} snapshots`;
    $(".standard-a").textContent = standard("A");
    $(".standard-b").textContent = standard("B");
    $(".job-report").title = report.standard_set ? `standard hold-out: ${report.standard_set}` : "";
  }
  $(".job-rule").textContent = report?.better_rule ? `Decided by: ${report.better_rule}.` : "";
  $(".use-model").hidden = !(report && report.better && teach.model !== job.model);
  renderList();
}

function showModel(model) {
  teach.model = model;
  $(".current-model").textContent = model;
}

async function finetune() {
  if (teach.dirty) await save();
  const reply = await send("POST", "finetune", { quick: $(".quick").checked });
  say("Fine-tuning in the background: counting goes on. You may close this window.");
  showJob(reply.job);
}

async function useModel() {
  const reply = await send("PUT", "model", { model: teach.job.model });
  showModel(reply.model);
  $(".use-model").hidden = true;
  say(reply.saved_to ? `The camera now counts with the fine-tuned model (saved to ${reply.saved_to}).` : `The camera now counts with the fine-tuned model; ${reply.note}.`, "ok");
}

// ---- the dialog ---------------------------------------------------------------------------------

$(".take").addEventListener("click", () => take().catch(failed));
$(".take-more").addEventListener("click", () => takeMore().catch(failed));
$(".save").addEventListener("click", () => save().catch(failed));
$(".undo").addEventListener("click", () => annotator.undo());
$(".zoom-in").addEventListener("click", () => annotator.zoomCentre(1.5));
$(".zoom-out").addEventListener("click", () => annotator.zoomCentre(1 / 1.5));
$(".zoom-fit").addEventListener("click", () => annotator.fit());
$(".finetune").addEventListener("click", () => finetune().catch(failed));
$(".cancel-job").addEventListener("click", () => send("DELETE", "finetune").then((r) => showJob(r.job)).catch(failed));
$(".use-model").addEventListener("click", () => useModel().catch(failed));

const KEYS = {
  "+": () => annotator.zoomCentre(1.5), "=": () => annotator.zoomCentre(1.5), "-": () => annotator.zoomCentre(1 / 1.5),
  0: () => annotator.fit(), u: () => annotator.undo(), s: () => save().catch(failed), t: () => take().catch(failed),
  n: () => step(1), p: () => step(-1), PageDown: () => step(1), PageUp: () => step(-1),
  ArrowLeft: () => panBy(-1, 0), ArrowRight: () => panBy(1, 0), ArrowUp: () => panBy(0, -1), ArrowDown: () => panBy(0, 1),
};

function step(delta) {
  const next = (teach.current ?? -1) + delta;
  if (next >= 0 && next < teach.snapshots.length) open(next).catch(failed);
}

function panBy(dx, dy) {
  const [w, h] = annotator.visible();
  annotator.pan(dx * w * 0.2, dy * h * 0.2);
}

document.addEventListener("keydown", (event) => { // the document's: focus may leave a removed element
  if (!teach || !dialog.open || event.target.matches("input")) return;
  const undo = (event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z";
  const action = undo ? () => annotator.undo() : !event.ctrlKey && !event.metaKey && !event.altKey && KEYS[event.key];
  if (!action) return;
  event.preventDefault();
  action();
});

dialog.addEventListener("close", async () => {
  if (teach && teach.dirty) await save().catch(() => {});
  teach = null;
});

export async function openTeach(id, name) {
  teach = { camera: id, snapshots: [], suggested: null, current: null, dirty: false, job: null, model: null };
  $(".teach-camera").textContent = name;
  $(".teach-view").hidden = true;
  $(".use-model").hidden = true;
  $(".job-report").hidden = true;
  $(".job-progress").hidden = true;
  $(".cancel-job").hidden = true;
  $(".job-status").textContent = "";
  $(".job-rule").textContent = "";
  say("");
  dialog.showModal();
  try {
    const [listed, status] = await Promise.all([
      fetch(api("snapshots"), { credentials: "same-origin" }).then((r) => r.json()),
      fetch(api("finetune"), { credentials: "same-origin" }).then((r) => r.json()),
    ]);
    if (listed.error || status.error) throw new Error(listed.error || status.error);
    teach.snapshots = listed.snapshots;
    teach.suggested = listed.suggested;
    $(".teach-folder").textContent = `Snapshots are kept in ${listed.folder}.`;
    showModel(status.model);
    renderList();
    if (status.job) showJob(status.job);
    if (teach.snapshots.length) await open(teach.snapshots.length - 1);
    else say("Take a snapshot when the count looks wrong; the model's heads come pre-marked.");
  } catch (error) {
    failed(error);
  }
}
