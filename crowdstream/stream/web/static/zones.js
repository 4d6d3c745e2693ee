// The zone editor: a camera's zones drawn over its picture as the camera sends it. Draw a polygon
// corner by corner, drag a zone to move it or a corner to reshape it, set its name, ground area (m²)
// and limit, delete it; Save sends the complete list, which the server validates with the config
// model, writes to its config file (keeping the previous version) and applies at once.
// Coordinates are frame pixels throughout: the SVG's viewBox is the frame.

import { element } from "./svg.js";

const HANDLE_PX = 9; // corner handles' radius on screen
const PICTURE_REFRESH_MS = 2000;

const dialog = document.getElementById("zone-editor");
const svg = dialog.querySelector("svg.editor-svg");
const picture = dialog.querySelector("img.editor-frame");
const list = dialog.querySelector(".editor-zones");
const message = dialog.querySelector(".editor-message");
const help = dialog.querySelector(".editor-help");

let editor = null; // {camera, size: [w, h], zones: [{name, polygon, area_m2, threshold}], selected, drawing, drag, timer}

function api(id) {
  return `/api/cameras/${encodeURIComponent(id)}/zones`;
}

function say(text, kind = "") {
  message.textContent = text;
  message.className = `editor-message ${kind}`;
}

function uniqueName() {
  const names = new Set(editor.zones.map((zone) => zone.name));
  let index = editor.zones.length + 1;
  while (names.has(`zone ${index}`)) index += 1;
  return `zone ${index}`;
}

// ---- geometry ---------------------------------------------------------------------------------

function toFrame(event) {
  const box = svg.getBoundingClientRect();
  const [width, height] = editor.size;
  const x = ((event.clientX - box.left) / box.width) * width;
  const y = ((event.clientY - box.top) / box.height) * height;
  return [Math.min(width, Math.max(0, x)), Math.min(height, Math.max(0, y))];
}

function screenScale() {
  return editor.size[0] / svg.getBoundingClientRect().width; // frame pixels per screen pixel
}

function moved(polygon, dx, dy) {
  const [width, height] = editor.size;
  const xs = polygon.map(([x]) => x), ys = polygon.map(([, y]) => y);
  const cx = Math.min(width - Math.max(...xs), Math.max(-Math.min(...xs), dx));
  const cy = Math.min(height - Math.max(...ys), Math.max(-Math.min(...ys), dy));
  return polygon.map(([x, y]) => [x + cx, y + cy]);
}

// ---- drawing the picture ------------------------------------------------------------------------

function render() {
  svg.replaceChildren();
  const radius = HANDLE_PX * screenScale();
  editor.zones.forEach((zone, index) => {
    const group = element("g", { class: `zone${index === editor.selected ? " selected" : ""}`, "data-index": index }, svg);
    element("polygon", { points: zone.polygon.map((p) => p.join(",")).join(" "), "data-index": index }, group);
    const [x, y] = zone.polygon.reduce(([a, b], [px, py]) => [a + px / zone.polygon.length, b + py / zone.polygon.length], [0, 0]);
    const label = element("text", { x, y, "font-size": 16 * screenScale(), "text-anchor": "middle" }, group);
    label.textContent = zone.name;
    if (index === editor.selected) {
      zone.polygon.forEach(([px, py], corner) => {
        element("circle", { cx: px, cy: py, r: radius, class: "corner", "data-index": index, "data-corner": corner }, group);
      });
    }
  });
  if (editor.drawing) {
    const points = [...editor.drawing.points, ...(editor.drawing.cursor ? [editor.drawing.cursor] : [])];
    element("polyline", { points: points.map((p) => p.join(",")).join(" "), class: "drawing" }, svg);
    editor.drawing.points.forEach(([px, py], corner) => {
      element("circle", { cx: px, cy: py, r: radius, class: `corner${corner === 0 ? " first" : ""}` }, svg);
    });
  }
}

function renderList() {
  list.replaceChildren(...editor.zones.map((zone, index) => {
    const item = document.getElementById("zone-row").content.firstElementChild.cloneNode(true);
    item.classList.toggle("selected", index === editor.selected);
    const [name, area, limit] = item.querySelectorAll("input");
    name.value = zone.name;
    area.value = zone.area_m2 ?? "";
    limit.value = zone.threshold ?? "";
    const unit = item.querySelector(".limit-unit");
    const showUnit = () => { unit.textContent = zone.area_m2 == null ? "people" : "people/m²"; };
    showUnit();
    const numberOrNull = (input) => (input.value.trim() === "" ? null : Number(input.value));
    name.addEventListener("input", () => { zone.name = name.value; render(); });
    area.addEventListener("input", () => { zone.area_m2 = numberOrNull(area); showUnit(); });
    limit.addEventListener("input", () => { zone.threshold = numberOrNull(limit); });
    item.addEventListener("focusin", () => select(index, false));
    item.querySelector(".delete").addEventListener("click", () => remove(index));
    return item;
  }));
}

function select(index, relist = true) {
  if (editor.selected === index) return;
  editor.selected = index;
  render();
  if (relist) renderList();
  else list.querySelectorAll("li").forEach((li, i) => li.classList.toggle("selected", i === index));
}

function remove(index) {
  editor.zones.splice(index, 1);
  editor.selected = null;
  render();
  renderList();
  say(`Zone deleted. Save to keep the change.`);
}

// ---- pointer ----------------------------------------------------------------------------------

function finishDrawing() {
  // a double click also lands two clicks on its corner: drop corners that repeat the one before
  const points = editor.drawing.points.filter(
    (p, i, all) => i === 0 || Math.hypot(p[0] - all[i - 1][0], p[1] - all[i - 1][1]) > 2 * screenScale(),
  );
  editor.drawing = null;
  help.hidden = false;
  if (points.length < 3) {
    say("A zone needs at least 3 corners.", "error");
  } else {
    editor.zones.push({ name: uniqueName(), polygon: points, area_m2: null, threshold: null });
    editor.selected = editor.zones.length - 1;
    say("Name the zone, give its ground area in m² and its limit, then Save.");
  }
  render();
  renderList();
  const inputs = list.querySelectorAll("li.selected input");
  if (inputs.length) inputs[0].focus();
}

function pointerDown(event) {
  if (!editor) return;
  const point = toFrame(event);
  if (editor.drawing) {
    const [first] = editor.drawing.points;
    const near = first && Math.hypot(point[0] - first[0], point[1] - first[1]) <= HANDLE_PX * 1.5 * screenScale();
    if (near && editor.drawing.points.length >= 3) finishDrawing();
    else editor.drawing.points.push(point);
    render();
    return;
  }
  const target = event.target;
  if (target.dataset.index === undefined) {
    select(null);
    return;
  }
  const index = Number(target.dataset.index);
  select(index);
  const corner = target.dataset.corner === undefined ? null : Number(target.dataset.corner);
  editor.drag = { index, corner, start: point, polygon: editor.zones[index].polygon.map((p) => [...p]) };
  svg.setPointerCapture(event.pointerId);
}

function pointerMove(event) {
  if (!editor) return;
  const point = toFrame(event);
  if (editor.drawing) {
    editor.drawing.cursor = point;
    render();
    return;
  }
  const drag = editor.drag;
  if (!drag) return;
  const zone = editor.zones[drag.index];
  if (drag.corner === null) zone.polygon = moved(drag.polygon, point[0] - drag.start[0], point[1] - drag.start[1]);
  else zone.polygon[drag.corner] = point;
  render();
}

function pointerUp() {
  if (editor && editor.drag) {
    editor.drag = null;
    say("Moved. Save to keep the change.");
  }
}

svg.addEventListener("pointerdown", pointerDown);
svg.addEventListener("pointermove", pointerMove);
svg.addEventListener("pointerup", pointerUp);
svg.addEventListener("dblclick", () => editor && editor.drawing && editor.drawing.points.length >= 3 && finishDrawing());

dialog.addEventListener("keydown", (event) => {
  if (!editor || event.target.matches("input")) return;
  if (event.key === "Escape" && editor.drawing) {
    event.preventDefault();
    editor.drawing = null;
    help.hidden = false;
    render();
  } else if ((event.key === "Delete" || event.key === "Backspace") && editor.selected != null) {
    remove(editor.selected);
  }
});

dialog.querySelector(".editor-new").addEventListener("click", () => {
  editor.drawing = { points: [], cursor: null };
  editor.selected = null;
  help.hidden = true;
  say("Click the corners of the new zone on the picture; click the first corner (or double-click) to finish. Esc cancels.");
  render();
  renderList();
});

// ---- loading and saving -----------------------------------------------------------------------

function refreshPicture() {
  picture.src = `/api/cameras/${encodeURIComponent(editor.camera)}/snapshot.jpg?overlay=0&t=${Date.now()}`;
}

async function save() {
  const zones = editor.zones.map((zone) => ({
    name: zone.name.trim(),
    polygon: zone.polygon.map(([x, y]) => [Math.round(x), Math.round(y)]),
    area_m2: zone.area_m2,
    threshold: zone.threshold,
  }));
  say("Saving…");
  const response = await fetch(api(editor.camera), {
    method: "PUT", credentials: "same-origin", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ zones }),
  });
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    say(response.status === 401 ? "Not saved: log in again (the session has ended)." : `Not saved: ${body.error}`, "error");
    return;
  }
  editor.zones = body.zones;
  render();
  renderList();
  say(body.saved_to ? `Saved to ${body.saved_to} (previous version: ${body.previous}) and applied.` : `Applied; ${body.note}.`, "ok");
}

dialog.querySelector(".editor-save").addEventListener("click", () => save().catch((error) => say(`Not saved: ${error.message}`, "error")));

dialog.addEventListener("close", () => {
  if (editor) clearInterval(editor.timer);
  editor = null;
});

export async function openZoneEditor(id, name) {
  const response = await fetch(api(id), { credentials: "same-origin" });
  const body = await response.json();
  dialog.querySelector(".editor-camera").textContent = name;
  if (!response.ok || !body.frame_size) {
    say(body.error || "No picture from this camera yet: zones are drawn on its picture.", "error");
    dialog.showModal();
    return;
  }
  editor = { camera: id, size: body.frame_size, zones: body.zones, selected: null, drawing: null, drag: null, timer: null };
  svg.setAttribute("viewBox", `0 0 ${body.frame_size[0]} ${body.frame_size[1]}`);
  dialog.querySelector(".editor-file").textContent = body.config_file
    ? `Save writes ${body.config_file} (the previous version is kept as ${body.config_file}.bak).`
    : "The service was started without a config file: changes apply until it stops.";
  say("");
  help.hidden = false;
  refreshPicture();
  editor.timer = setInterval(refreshPicture, PICTURE_REFRESH_MS);
  dialog.showModal();
  render();
  renderList();
}

window.addEventListener("resize", () => editor && render());
