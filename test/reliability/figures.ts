// Measured figures (throughput, latencies, memory) collected while the reliability tests and the stress runner
// run. Printed when MPTHREADS_FIGURES_PRINT is set, appended as JSON lines to the file named by
// MPTHREADS_FIGURES when set; test/reliability/FIGURES.md is written from those.
import { appendFileSync } from 'node:fs';

export interface Figure {
  name: string;
  value: number | string;
  unit?: string;
  note?: string;
  at: string;
}

const figures: Figure[] = [];

export function figure(name: string, value: number | string, unit?: string, note?: string): void {
  const f: Figure = { name, value: typeof value === 'number' ? round(value) : value, at: new Date().toISOString() };
  if (unit !== undefined) f.unit = unit;
  if (note !== undefined) f.note = note;
  figures.push(f);
  const file = process.env.MPTHREADS_FIGURES;
  if (file !== undefined && file !== '') appendFileSync(file, `${JSON.stringify(f)}\n`);
  if (process.env.MPTHREADS_FIGURES_PRINT !== undefined) {
    process.stdout.write(
      `  [figure] ${name}: ${f.value}${unit === undefined ? '' : ` ${unit}`}${note === undefined ? '' : ` (${note})`}\n`,
    );
  }
}

export function allFigures(): readonly Figure[] {
  return figures;
}

function round(x: number): number {
  if (!Number.isFinite(x) || Number.isInteger(x)) return x;
  const digits = Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 1 ? 2 : 4;
  return Number(x.toFixed(digits));
}

/** Least-squares line through (x, y): slope and intercept. */
export function fitLine(points: [number, number][]): { slope: number; intercept: number } {
  const n = points.length;
  if (n < 2) return { slope: 0, intercept: n === 1 ? points[0]![1] : 0 };
  let sx = 0,
    sy = 0,
    sxx = 0,
    sxy = 0;
  for (const [x, y] of points) {
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const den = n * sxx - sx * sx;
  const slope = den === 0 ? 0 : (n * sxy - sx * sy) / den;
  return { slope, intercept: (sy - slope * sx) / n };
}

export const MiB = 2 ** 20;
