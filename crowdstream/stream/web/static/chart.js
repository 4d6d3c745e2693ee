// The count chart of a card: the last minutes of counts with a people axis and clock times.

const CHART_MIN_SECONDS = 60; // the time axis spans at least this much while history is shorter

// A nice round number at or above `value`: 1, 2 or 5 times a power of ten.
function niceCeiling(value) {
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((n) => n >= value);
}

// The count over the last minutes, with a count axis (people) on the left and clock times below.
export function drawChart(canvas, history, now) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width, height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  if (history.length < 2) return;
  const style = getComputedStyle(canvas);
  const left = 34, bottom = 16, top = 12, right = 4;
  const ceiling = niceCeiling(Math.max(1, ...history.map(([, count]) => count)));
  const span = Math.max(CHART_MIN_SECONDS, now - history[0][0]);
  const x = (t) => left + (1 - (now - t) / span) * (width - left - right);
  const y = (count) => top + (1 - count / ceiling) * (height - top - bottom);
  ctx.font = "10px system-ui, sans-serif";
  ctx.lineWidth = 1;
  ctx.strokeStyle = ctx.fillStyle = style.getPropertyValue("--axis") || "#9aa5b1";
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const count of [0, ceiling / 2, ceiling]) {
    ctx.globalAlpha = 0.25;
    ctx.beginPath(); ctx.moveTo(left, y(count)); ctx.lineTo(width - right, y(count)); ctx.stroke();
    ctx.globalAlpha = 1;
    ctx.fillText(String(count), left - 4, y(count));
  }
  ctx.textAlign = "left";
  ctx.textBaseline = "top";
  ctx.fillText("people", left + 4, 0);
  ctx.textAlign = "center";
  const step = span > 240 ? 120 : span > 90 ? 60 : 30; // seconds between time ticks
  for (let t = Math.floor(now / step) * step; t >= now - span; t -= step) {
    if (x(t) < left + 16) break;
    const format = step < 60 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" };
    const label = new Date(t * 1000).toLocaleTimeString([], format);
    if (x(t) + ctx.measureText(label).width / 2 <= width) ctx.fillText(label, x(t), height - bottom + 4);
  }
  ctx.beginPath();
  history.forEach(([t, count], i) => (i ? ctx.lineTo(x(t), y(count)) : ctx.moveTo(x(t), y(count))));
  ctx.strokeStyle = style.color;
  ctx.lineWidth = 1.5;
  ctx.stroke();
}
