// The alert list: every stretch of a zone over its limit, newest first, ongoing ones in red with a
// running duration; filled from /api/alerts, then kept up to date by the event stream.

import { clockTime, duration, limitText, number, people } from "./format.js";

export const ALERTS_SHOWN = 50;
const alerts = new Map(); // id → the newest state of each alert (from /api/alerts, then the events)

// "78 people · 1.95 /m² (Fruin E) · limit 1.5 /m²": the units the page uses everywhere.
function alertFigures(alert) {
  const figures = [`peak ${people(alert.peak_people)}`];
  if (alert.peak_density != null) figures.push(`${number(alert.peak_density, 2)} /m² (Fruin ${alert.fruin_level})`);
  figures.push(`limit ${limitText(alert.threshold, alert.unit === "people")}`);
  return figures.join(" · ");
}

function alertWhen(alert) {
  if (alert.ongoing) return `since ${clockTime(alert.started)}, ongoing for ${duration(Date.now() / 1000 - alert.started)}`;
  return `${clockTime(alert.started)} – ${clockTime(alert.ended)} (${duration(alert.duration_s)})`;
}

export function showAlerts(cameraName = (id) => id) {
  const list = [...alerts.values()].sort((a, b) => b.started - a.started).slice(0, ALERTS_SHOWN);
  document.getElementById("no-alerts").hidden = list.length > 0;
  document.getElementById("alerts").replaceChildren(...list.map((alert) => {
    const item = document.createElement("li");
    item.dataset.id = alert.id;
    item.classList.toggle("ongoing", alert.ongoing);
    const title = document.createElement("strong");
    title.textContent = `${cameraName(alert.camera)} · ${alert.zone}`;
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = alertWhen(alert);
    const figures = document.createElement("span");
    figures.className = "figures";
    figures.textContent = alertFigures(alert);
    item.append(title, when, figures);
    return item;
  }));
  const ongoing = list.filter((alert) => alert.ongoing).length;
  const link = document.getElementById("ongoing");
  link.hidden = ongoing === 0;
  link.textContent = `${ongoing} alert${ongoing === 1 ? "" : "s"} ongoing`;
}

export function takeAlert(alert, cameraName) {
  alerts.set(alert.id, alert);
  showAlerts(cameraName);
}

export function anyOngoing() {
  return [...alerts.values()].some((alert) => alert.ongoing);
}

export async function loadAlerts(getJSON, cameraName) {
  const { alerts: list } = await getJSON(`/api/alerts?limit=${ALERTS_SHOWN}`);
  list.forEach((alert) => alerts.set(alert.id, alert));
  showAlerts(cameraName);
}
