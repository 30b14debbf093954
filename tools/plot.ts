// Self-contained SVG line charts for training curves (loss, accuracy per step or epoch):
// linear axes with "nice" ticks, a legend, one <path> per series. Non-finite points break a
// line instead of corrupting it. It deliberately has no log scales, interactivity or styling
// options beyond size: a chart to look at in a browser or embed in a report, nothing more.

export interface Series {
  readonly name: string;
  readonly points: readonly (readonly [number, number])[];
}

export interface LineChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  /** Pixels, default 640. */
  readonly width?: number;
  /** Pixels, default 400. */
  readonly height?: number;
}

// Okabe-Ito: distinguishable under the common forms of colour blindness.
const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'];
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';
const CHAR_WIDTH = 7; // rough width of a 12px sans-serif character, for layout only

/**
 * @example
 * writeFileSync('loss.svg', lineChartSvg({
 *   title: 'Training loss', xLabel: 'step', yLabel: 'loss',
 *   series: [{ name: 'train', points: losses.map((l, i) => [i, l]) }],
 * }));
 */
export function lineChartSvg(opts: LineChartOptions): string {
  const width = opts.width ?? 640;
  const height = opts.height ?? 400;
  const finite = opts.series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  const xTicks = niceTicks(finite.map((p) => p[0]));
  const yTicks = niceTicks(finite.map((p) => p[1]));

  const longestName = Math.max(0, ...opts.series.map((s) => s.name.length));
  const legendWidth = opts.series.length ? Math.min(200, 34 + CHAR_WIDTH * longestName) : 0;
  const longestTick = Math.max(...yTicks.labels.map((l) => l.length));
  const m = { top: 40, right: 16 + legendWidth, bottom: 48, left: 30 + CHAR_WIDTH * longestTick };
  const plotW = Math.max(10, width - m.left - m.right);
  const plotH = Math.max(10, height - m.top - m.bottom);
  const sx = (x: number) => m.left + ((x - xTicks.lo) / (xTicks.hi - xTicks.lo)) * plotW;
  const sy = (y: number) => m.top + plotH - ((y - yTicks.lo) / (yTicks.hi - yTicks.lo)) * plotH;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT} font-size="12">`,
    `<title>${esc(opts.title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="600">${esc(opts.title)}</text>`,
  );

  // Grid and ticks.
  out.push('<g stroke="#e5e5e5" stroke-width="1">');
  for (const v of xTicks.values) out.push(`<line x1="${r(sx(v))}" y1="${m.top}" x2="${r(sx(v))}" y2="${m.top + plotH}"/>`);
  for (const v of yTicks.values) out.push(`<line x1="${m.left}" y1="${r(sy(v))}" x2="${m.left + plotW}" y2="${r(sy(v))}"/>`);
  out.push('</g>');
  out.push('<g fill="#333333">');
  xTicks.values.forEach((v, i) =>
    out.push(`<text x="${r(sx(v))}" y="${m.top + plotH + 16}" text-anchor="middle">${esc(xTicks.labels[i]!)}</text>`),
  );
  yTicks.values.forEach((v, i) =>
    out.push(`<text x="${m.left - 6}" y="${r(sy(v) + 4)}" text-anchor="end">${esc(yTicks.labels[i]!)}</text>`),
  );
  out.push('</g>');
  out.push(
    `<rect x="${m.left}" y="${m.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888888"/>`,
    `<text x="${m.left + plotW / 2}" y="${height - 10}" text-anchor="middle">${esc(opts.xLabel)}</text>`,
    `<text transform="translate(14 ${m.top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}</text>`,
  );

  // Series: one path each; isolated points (no neighbour to draw a segment to) get a dot.
  opts.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const runs = finiteRuns(s.points);
    const d = runs.map((run) => run.map(([x, y], j) => `${j ? 'L' : 'M'}${r(sx(x))} ${r(sy(y))}`).join('')).join('');
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"><title>${esc(s.name)}</title></path>`);
    for (const run of runs) {
      if (run.length === 1) out.push(`<circle cx="${r(sx(run[0]![0]))}" cy="${r(sy(run[0]![1]))}" r="2.5" fill="${color}"/>`);
    }
  });
  if (finite.length === 0) {
    out.push(`<text x="${m.left + plotW / 2}" y="${m.top + plotH / 2}" text-anchor="middle" fill="#888888">no data</text>`);
  }

  // Legend, right of the plot so it never hides a curve.
  const lx = m.left + plotW + 14;
  opts.series.forEach((s, i) => {
    const y = m.top + 8 + i * 18;
    const color = PALETTE[i % PALETTE.length]!;
    const name = s.name.length > 24 ? `${s.name.slice(0, 23)}…` : s.name;
    out.push(
      `<line x1="${lx}" y1="${y}" x2="${lx + 20}" y2="${y}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${lx + 26}" y="${y + 4}">${esc(name)}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Maximal runs of consecutive finite points, so a NaN loss shows as a gap. */
function finiteRuns(points: readonly (readonly [number, number])[]): (readonly [number, number])[][] {
  const runs: (readonly [number, number])[][] = [];
  let cur: (readonly [number, number])[] = [];
  for (const p of points) {
    if (Number.isFinite(p[0]) && Number.isFinite(p[1])) cur.push(p);
    else if (cur.length) {
      runs.push(cur);
      cur = [];
    }
  }
  if (cur.length) runs.push(cur);
  return runs;
}

export interface Ticks {
  readonly lo: number;
  readonly hi: number;
  readonly values: number[];
  readonly labels: string[];
}

/** Ticks at 1, 2 or 5 × 10^k covering the data; the axis spans from the first to the last tick. */
export function niceTicks(values: readonly number[], target = 6): Ticks {
  // A loop, not Math.min(...values): spreading a long training curve overflows the stack.
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) [lo, hi] = [0, 1];
  // A span below float resolution (relative to the values) cannot be ticked: widen it.
  if (hi - lo <= Math.max(Math.abs(lo), Math.abs(hi)) * 1e-9 || hi - lo < 1e-300) {
    const pad = Math.max(Math.max(Math.abs(lo), Math.abs(hi)) * 0.1, 1e-12);
    [lo, hi] = [lo - pad, hi + pad];
  }
  const rough = (hi - lo) / target;
  const mag = 10 ** Math.floor(Math.log10(rough));
  const step = ([1, 2, 5, 10].find((f) => f * mag >= rough * (1 - 1e-9)) ?? 10) * mag;
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const ticks: number[] = [];
  for (let k = first; k <= last && ticks.length <= 4 * target + 2; k++) ticks.push(k * step);
  const maxAbs = Math.max(Math.abs(first * step), Math.abs(last * step));
  const labels = ticks.map((v) => formatTick(v, step, maxAbs));
  return { lo: first * step, hi: last * step, values: ticks, labels };
}

/** Enough digits to tell neighbouring ticks apart; exponents only for very large or small axes. */
function formatTick(v: number, step: number, maxAbs: number): string {
  const stepExp = Math.floor(Math.log10(step) + 1e-9);
  if (maxAbs >= 1e6 || maxAbs < 1e-3) {
    if (v === 0) return '0';
    return v.toExponential(Math.min(8, Math.max(0, Math.floor(Math.log10(maxAbs)) - stepExp)));
  }
  const s = v.toFixed(Math.min(20, Math.max(0, -stepExp)));
  return /^-0(\.0*)?$/.test(s) ? s.slice(1) : s;
}

function r(v: number): string {
  return String(Math.round(v * 10) / 10);
}

function esc(s: string): string {
  // Control characters other than tab and newlines are not allowed anywhere in XML 1.0.
  return s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
