// The annotation view: a snapshot with its head marks (pre-filled by the model) and its "nobody here"
// boxes. Click adds a head, click a mark removes it, dragging draws a box (the heads inside it go),
// clicking a box removes it. Wheel, pinch or the buttons zoom; Shift-drag, a middle-button drag, two
// fingers or the arrow keys pan. Every change can be undone. Pointer events throughout, so a mouse,
// a pen and a finger work alike. Coordinates are frame pixels: the SVG's viewBox is the visible part.

import { element } from "./svg.js";

const MARK_PX = 6; // a mark's radius on screen
const CLICK_PX = 6; // a press that moves less than this is a click, more is a drag
const MAX_ZOOM = 12;
const UNDO_KEPT = 200;

export class Annotator {
  constructor(svg, onChange) {
    this.svg = svg;
    this.onChange = onChange; // called after every change of the marks (count shown, dirty flag)
    this.image = element("image", { x: 0, y: 0, preserveAspectRatio: "none" }, svg);
    this.layer = element("g", { class: "marks" }, svg);
    this.size = [1, 1];
    this.view = { x: 0, y: 0, zoom: 1 };
    this.points = [];
    this.regions = [];
    this.undoStack = [];
    this.pointers = new Map(); // pointerId → last client position (two: a pinch)
    this.press = null;
    svg.addEventListener("pointerdown", (event) => this.down(event));
    svg.addEventListener("pointermove", (event) => this.move(event));
    svg.addEventListener("pointerup", (event) => this.up(event));
    svg.addEventListener("pointercancel", (event) => this.pointers.delete(event.pointerId));
    svg.addEventListener("wheel", (event) => {
      event.preventDefault();
      this.zoomAt(this.toFrame(event), event.deltaY < 0 ? 1.25 : 0.8);
    }, { passive: false });
  }

  // ---- the snapshot ---------------------------------------------------------------------------

  show(url, size, points, regions) {
    this.size = size;
    this.points = points.map((p) => [...p]);
    this.regions = regions.map((r) => [...r]);
    this.undoStack = [];
    this.image.setAttribute("href", url);
    this.image.setAttribute("width", size[0]);
    this.image.setAttribute("height", size[1]);
    this.svg.style.aspectRatio = `${size[0]} / ${size[1]}`;
    this.fit();
  }

  marks() {
    const round = (v) => Math.round(v * 10) / 10;
    return { points: this.points.map((p) => p.map(round)), empty_regions: this.regions.map((r) => r.map(round)) };
  }

  // ---- changes, each undoable -----------------------------------------------------------------

  change(edit) {
    this.undoStack.push({ points: this.points.map((p) => [...p]), regions: this.regions.map((r) => [...r]) });
    if (this.undoStack.length > UNDO_KEPT) this.undoStack.shift();
    edit();
    this.render();
    this.onChange();
  }

  undo() {
    const previous = this.undoStack.pop();
    if (!previous) return false;
    this.points = previous.points;
    this.regions = previous.regions;
    this.render();
    this.onChange();
    return true;
  }

  addBox([x0, y0], [x1, y1]) {
    const box = [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)];
    this.change(() => {
      this.regions.push(box);
      this.points = this.points.filter(([x, y]) => x < box[0] || x > box[2] || y < box[1] || y > box[3]);
    });
  }

  // ---- zoom and pan ---------------------------------------------------------------------------

  fit() {
    this.view = { x: 0, y: 0, zoom: 1 };
    this.render();
  }

  zoomAt([fx, fy], factor) {
    const { x, y, zoom } = this.view;
    const next = Math.min(MAX_ZOOM, Math.max(1, zoom * factor));
    const ratio = zoom / next; // keep the frame point under the cursor where it is
    this.view = { x: fx - (fx - x) * ratio, y: fy - (fy - y) * ratio, zoom: next };
    this.render();
  }

  zoomCentre(factor) {
    const [w, h] = this.visible();
    this.zoomAt([this.view.x + w / 2, this.view.y + h / 2], factor);
  }

  pan(dx, dy) { // in frame pixels
    this.view.x += dx;
    this.view.y += dy;
    this.render();
  }

  visible() {
    return [this.size[0] / this.view.zoom, this.size[1] / this.view.zoom];
  }

  // ---- drawing --------------------------------------------------------------------------------

  render() {
    const [w, h] = this.visible();
    this.view.x = Math.min(this.size[0] - w, Math.max(0, this.view.x));
    this.view.y = Math.min(this.size[1] - h, Math.max(0, this.view.y));
    this.svg.setAttribute("viewBox", `${this.view.x} ${this.view.y} ${w} ${h}`);
    const radius = MARK_PX * this.perScreenPixel();
    this.layer.replaceChildren();
    this.regions.forEach(([x0, y0, x1, y1], index) => {
      element("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0, class: "region", "data-region": index }, this.layer);
    });
    this.points.forEach(([x, y], index) => {
      element("circle", { cx: x, cy: y, r: radius, class: "head", "data-point": index }, this.layer);
    });
    if (this.press && this.press.box) {
      const [[x0, y0], [x1, y1]] = [this.press.start, this.press.box];
      element("rect", {
        x: Math.min(x0, x1), y: Math.min(y0, y1), width: Math.abs(x1 - x0), height: Math.abs(y1 - y0), class: "drawing",
      }, this.layer);
    }
  }

  perScreenPixel() {
    const box = this.svg.getBoundingClientRect();
    return box.width ? this.visible()[0] / box.width : 1;
  }

  toFrame(event) {
    const matrix = this.svg.getScreenCTM();
    if (!matrix) return [0, 0];
    const point = new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix.inverse());
    return [Math.min(this.size[0], Math.max(0, point.x)), Math.min(this.size[1], Math.max(0, point.y))];
  }

  // ---- pointer --------------------------------------------------------------------------------

  down(event) {
    this.svg.setPointerCapture(event.pointerId);
    this.pointers.set(event.pointerId, [event.clientX, event.clientY]);
    if (this.pointers.size > 1) { // a second finger: pinch and pan, no mark
      this.press = null;
      this.render();
      return;
    }
    const panning = event.shiftKey || event.button === 1;
    this.press = { client: [event.clientX, event.clientY], start: this.toFrame(event), target: event.target, panning, moved: false, box: null };
  }

  move(event) {
    const last = this.pointers.get(event.pointerId);
    if (!last) return;
    if (this.pointers.size === 2) return this.pinch(event, last);
    this.pointers.set(event.pointerId, [event.clientX, event.clientY]);
    const press = this.press;
    if (!press) return;
    press.moved ||= Math.hypot(event.clientX - press.client[0], event.clientY - press.client[1]) > CLICK_PX;
    if (!press.moved) return;
    if (press.panning) {
      const scale = this.perScreenPixel();
      this.pan((last[0] - event.clientX) * scale, (last[1] - event.clientY) * scale);
    } else {
      press.box = this.toFrame(event);
      this.render();
    }
  }

  pinch(event, last) {
    const [other] = [...this.pointers].filter(([id]) => id !== event.pointerId).map(([, p]) => p);
    const before = Math.hypot(last[0] - other[0], last[1] - other[1]);
    const now = [event.clientX, event.clientY];
    const after = Math.hypot(now[0] - other[0], now[1] - other[1]);
    this.pointers.set(event.pointerId, now);
    const scale = this.perScreenPixel();
    this.pan(((last[0] - now[0]) / 2) * scale, ((last[1] - now[1]) / 2) * scale);
    if (before > 0 && after > 0) this.zoomAt(this.toFrame({ clientX: (now[0] + other[0]) / 2, clientY: (now[1] + other[1]) / 2 }), after / before);
  }

  up(event) {
    this.pointers.delete(event.pointerId);
    const press = this.press;
    this.press = null;
    if (!press) return;
    if (!press.moved) this.click(press.target, press.start);
    else if (press.box) {
      const scale = this.perScreenPixel();
      const big = Math.abs(press.box[0] - press.start[0]) > CLICK_PX * scale && Math.abs(press.box[1] - press.start[1]) > CLICK_PX * scale;
      if (big) this.addBox(press.start, press.box);
      else this.render();
    }
  }

  click(target, point) {
    if (target.dataset.point !== undefined) {
      const index = Number(target.dataset.point);
      this.change(() => this.points.splice(index, 1));
    } else if (target.dataset.region !== undefined) {
      const index = Number(target.dataset.region);
      this.change(() => this.regions.splice(index, 1));
    } else {
      this.change(() => this.points.push(point));
    }
  }
}
