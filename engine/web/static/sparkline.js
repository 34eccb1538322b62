// A sparkline: one SVG path of per-minute counts, scaled to its own peak. A handful of
// lines instead of a charting library (no downloads, nothing to audit).

import { s } from './dom.js';

const WIDTH = 120;
const HEIGHT = 32;

export function sparkline(values, { kind, label }) {
  const peak = Math.max(1, ...values);
  const step = WIDTH / Math.max(1, values.length - 1);
  const points = values.map((v, i) => [i * step, HEIGHT - 1 - (v / peak) * (HEIGHT - 3)]);
  const line = points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' L');
  return s('svg', {
    class: `spark spark-${kind}`, viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    preserveAspectRatio: 'none', role: 'img', 'aria-label': label,
  },
  s('path', { class: 'area', d: `M0,${HEIGHT} L${line} L${WIDTH},${HEIGHT} Z` }),
  s('path', { class: 'line', d: `M${line}` }));
}
