// The SVG chart of a run, written by hand (no dependency): grouped bars of items/s on a log scale, one color
// per implementation. Panel 1: spsc by payload. Panel 2: mpmc, round trip and fan-out. Panel 3: the Pool
// cases. Start rows measure time, not throughput, and stay in the table. Hovering a bar shows its case and value (<title>).
import { stampLine } from './machine.ts';
import { IMPL_ORDER, type Report, type Row } from './report.ts';

const COLORS: Record<string, string> = {
  raw: '#4b5563',
  'raw-batched': '#9ca3af',
  pipe: '#2563eb',
  queue: '#dc2626',
  simplequeue: '#f59e0b',
  joinablequeue: '#be185d',
  'python-pipe': '#047857',
  'python-queue': '#34d399',
  single: '#111827',
  'raw-2': '#6b7280',
  pool: '#0891b2',
  'python-single': '#065f46',
  'python-pool': '#6ee7b7',
  piscina: '#7c3aed',
  tinypool: '#a78bfa',
  workerpool: '#c4b5fd',
};

const W = 1200;
const LEFT = 80;
const RIGHT = 20;
const PANEL_H = 300;
const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function compact(x: number): string {
  const units: [number, string][] = [
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
    [1, ''],
  ];
  for (const [scale, unit] of units) {
    if (x >= scale || scale === 1) {
      const v = x / scale;
      const text = v >= 100 || Number.isInteger(v) ? v.toFixed(0) : v >= 10 ? v.toFixed(0) : v.toFixed(1);
      return `${text.replace(/\.0$/, '')}${unit}`;
    }
  }
  return String(x);
}

interface Group {
  label: string;
  rows: Row[];
}

function panel(title: string, groups: Group[], top: number): string {
  const values = groups.flatMap((g) => g.rows.map((r) => r.itemsPerS!));
  if (values.length === 0) return '';
  const lo = Math.floor(Math.log10(Math.min(...values)));
  const hi = Math.ceil(Math.log10(Math.max(...values)) + 0.15);
  const plotTop = top + 30;
  const plotH = PANEL_H - 80;
  const plotW = W - LEFT - RIGHT;
  const y = (v: number) => plotTop + plotH - ((Math.log10(v) - lo) / (hi - lo)) * plotH;
  const out: string[] = [];
  out.push(`<text x="${LEFT}" y="${top + 16}" font-size="14" font-weight="600" ${FONT}>${esc(title)}</text>`);
  for (let d = lo; d <= hi; d++) {
    const yy = y(10 ** d).toFixed(1);
    out.push(`<line x1="${LEFT}" x2="${W - RIGHT}" y1="${yy}" y2="${yy}" stroke="#e5e7eb"/>`);
    out.push(
      `<text x="${LEFT - 6}" y="${yy}" dy="4" text-anchor="end" font-size="11" fill="#374151" ${FONT}>${compact(10 ** d)}</text>`,
    );
  }
  const axisX = 18;
  const axisY = plotTop + plotH / 2;
  out.push(
    `<text x="${axisX}" y="${axisY}" transform="rotate(-90 ${axisX} ${axisY})" text-anchor="middle" font-size="12" fill="#374151" ${FONT}>items/s (log scale)</text>`,
  );
  out.push(`<line x1="${LEFT}" x2="${W - RIGHT}" y1="${plotTop + plotH}" y2="${plotTop + plotH}" stroke="#6b7280"/>`);
  const groupW = plotW / groups.length;
  groups.forEach((g, gi) => {
    const x0 = LEFT + gi * groupW;
    const barW = Math.min(26, (groupW - 16) / Math.max(1, g.rows.length));
    const start = x0 + (groupW - barW * g.rows.length) / 2;
    g.rows.forEach((r, ri) => {
      const v = r.itemsPerS!;
      const x = start + ri * barW;
      const yy = y(v);
      const h = plotTop + plotH - yy;
      out.push(
        `<rect x="${(x + 1).toFixed(1)}" y="${yy.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[r.impl] ?? '#000'}"><title>${esc(r.name)}: ${Math.round(v).toLocaleString('en-US')} items/s</title></rect>`,
      );
      const lx = x + barW / 2 + 3;
      const ly = yy - 4;
      out.push(
        `<text x="${lx.toFixed(1)}" y="${ly.toFixed(1)}" transform="rotate(-90 ${lx.toFixed(1)} ${ly.toFixed(1)})" font-size="9" fill="#111827" ${FONT}>${compact(v)}</text>`,
      );
    });
    out.push(
      `<text x="${(x0 + groupW / 2).toFixed(1)}" y="${plotTop + plotH + 18}" text-anchor="middle" font-size="12" fill="#111827" ${FONT}>${esc(g.label)}</text>`,
    );
  });
  return out.join('\n');
}

function groupsOf(rows: Row[], keys: string[], label: (key: string) => string): Group[] {
  return keys
    .map((key) => ({
      label: label(key),
      rows: rows
        .filter((r) => `${r.topology}/${r.payload}` === key)
        .sort((a, b) => IMPL_ORDER.indexOf(a.impl) - IMPL_ORDER.indexOf(b.impl)),
    }))
    .filter((g) => g.rows.length > 0);
}

export function renderChart(report: Report): string {
  const rows = report.rows.filter((r) => r.itemsPerS !== null && r.itemsPerS > 0 && r.topology !== 'start');
  const spscKeys = [...new Set(rows.filter((r) => r.topology === 'spsc').map((r) => `spsc/${r.payload}`))];
  const isPool = (r: Row) => ['map', 'apply', 'imap', 'cpu'].includes(r.topology);
  const keysOf = (list: Row[]) => [...new Set(list.map((r) => `${r.topology}/${r.payload}`))];
  const otherKeys = keysOf(rows.filter((r) => r.topology !== 'spsc' && !isPool(r)));
  const spsc = groupsOf(rows, spscKeys, (k) => k.slice('spsc/'.length));
  const other = groupsOf(rows, otherKeys, (k) => k);
  const pool = groupsOf(rows, keysOf(rows.filter(isPool)), (k) => k);
  const impls = IMPL_ORDER.filter((impl) => rows.some((r) => r.impl === impl));

  const titleH = 78;
  const panels = [spsc, other, pool].filter((g) => g.length > 0).length;
  const missing = report.rows.filter((r) => r.error !== undefined || r.skipped !== undefined);
  const footH = missing.length > 0 ? 24 : 0;
  const H = titleH + panels * PANEL_H + 10 + footH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(
    `<text x="${LEFT}" y="24" font-size="17" font-weight="700" ${FONT}>mpthreads throughput — Pipe vs Queue vs raw MessagePort, Python multiprocessing, worker pools</text>`,
  );
  out.push(
    `<text x="${LEFT}" y="42" font-size="11" fill="#374151" ${FONT}>${esc(`${stampLine(report.stamp)} · load avg ${report.stamp.loadAvgAtStart}→${report.loadAvgAtEnd} · ${report.mode} run${report.filter !== null ? `, filter "${report.filter}"` : ''} · medians of ${report.mode === 'quick' ? '2' : '3-5'} timed reps`)}</text>`,
  );
  let lx = LEFT;
  for (const impl of impls) {
    out.push(`<rect x="${lx}" y="54" width="12" height="12" fill="${COLORS[impl] ?? '#000'}"/>`);
    out.push(`<text x="${lx + 16}" y="64" font-size="12" ${FONT}>${esc(impl)}</text>`);
    lx += 24 + impl.length * 7;
  }
  let top = titleH;
  if (spsc.length > 0) {
    out.push(panel('spsc — one worker sends, another receives (items/s by payload)', spsc, top));
    top += PANEL_H;
  }
  if (other.length > 0) {
    out.push(panel('mpmc (2×2), round trip (round trips/s), fan-out of tiny tasks to 2 workers (tasks/s)', other, top));
    top += PANEL_H;
  }
  if (pool.length > 0) {
    out.push(
      panel('Pool: 200,000 x => x + 1 by map / apply / imap, 2,000 tasks of ~1 ms, on 2 workers (tasks/s)', pool, top),
    );
    top += PANEL_H;
  }
  if (missing.length > 0) {
    const failed = missing.filter((r) => r.error !== undefined).map((r) => r.name);
    const skipped = missing.filter((r) => r.skipped !== undefined).map((r) => r.name);
    const text = [
      failed.length > 0 ? `failed: ${failed.join(', ')}` : '',
      skipped.length > 0 ? `not run: ${skipped.join(', ')}` : '',
    ]
      .filter((t) => t !== '')
      .join(' · ');
    out.push(
      `<text x="${LEFT}" y="${top + 14}" font-size="11" fill="#b91c1c" ${FONT}>${esc(text.length > 190 ? `${text.slice(0, 187)}...` : text)}</text>`,
    );
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
