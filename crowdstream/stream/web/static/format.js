// How the page writes times, durations, counts and limits: the same words everywhere ("64 people",
// "0.53 /m²", "limit 1.5 /m²"), as the overlay on the video writes them.

export function clockTime(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function ago(seconds) {
  const s = Math.max(0, Math.round(Date.now() / 1000 - seconds));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
}

export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function people(count) {
  const n = Math.round(count);
  return `${n} ${n === 1 ? "person" : "people"}`;
}

// a zone's limit: "1.5 /m²" for a zone with an area, "20 people" (or "1 person") without
export function limitText(threshold, inPeople) {
  if (!inPeople) return `${threshold} /m²`;
  return `${threshold} ${threshold === 1 ? "person" : "people"}`;
}

export function number(value, digits) {
  return value.toLocaleString([], { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
