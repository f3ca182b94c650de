/**
 * A dependency-free SVG chart of a bench run: panels of grouped bars, drawn from the results
 * object `npm run bench` writes to bench/results.json. Run on its own to redraw the chart of a
 * saved run: `npx tsx bench/chart.ts [bench/results.json] [bench/results.svg]`.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { sizeLabel } from "./payload.ts";
import type { StoreRow } from "./stores.ts";

const COLORS = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2"];
const WIDTH = 900;
const PANEL_HEIGHT = 200;
const PANEL_GAP = 70;
const LEFT = 56;
const RIGHT = 190;
const TOP = 34;

/** What the chart reads of bench/results.json. */
export interface ChartInput {
  readonly mode?: string;
  readonly machine: {
    readonly cpu: string;
    readonly cores: number;
    readonly node: string;
  };
  readonly stores: readonly StoreRow[];
  readonly peers?: {
    readonly sideBySide?: readonly {
      readonly bytes: number;
      readonly requestsCacheSigned: number;
      readonly setupCache?: number;
      readonly fetch?: number;
      readonly ky?: number;
    }[];
  };
}

/** One panel: bars of each series in each group, on a linear scale from 0 to `max`. */
interface Panel {
  readonly title: string;
  readonly groups: readonly string[];
  readonly series: readonly string[];
  readonly value: (group: number, series: number) => number | undefined;
  readonly max: number;
  /** Horizontal reference lines: value and label. */
  readonly lines: readonly [number, string][];
  readonly format: (value: number) => string;
}

/** Renders the chart of a bench run as an SVG document. */
export function renderChart(results: ChartInput): string {
  const { machine } = results;
  const caption = `signed-cache bench — ${machine.cpu}, ${machine.cores} vCPUs, Node ${machine.node}${results.mode === "quick" ? " (quick run)" : ""}`;
  const panels = [
    peerPanel(results),
    storePanel(results.stores, "get"),
    encryptionPanel(results.stores),
  ].filter((panel): panel is Panel => panel !== undefined);
  const height = TOP + panels.length * (PANEL_HEIGHT + PANEL_GAP) + 10;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, sans-serif" font-size="11" role="img" aria-label="${escapeXml(caption)}">`,
    `<title>${escapeXml(caption)}</title>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${LEFT}" y="18" font-size="13" font-weight="bold">${escapeXml(caption)}</text>`,
  ];
  panels.forEach((panel, index) => {
    out.push(...drawPanel(panel, TOP + 24 + index * (PANEL_HEIGHT + PANEL_GAP)));
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

/** Every signed client's SQLite text hit ÷ requests-cache's signed hit, per size. */
function peerPanel(results: ChartInput): Panel | undefined {
  const rows = results.peers?.sideBySide ?? [];
  if (rows.length === 0) return undefined;
  const series = [
    ["signed setupCache (axios)", "setupCache"],
    ["signed fetch", "fetch"],
    ["signed ky", "ky"],
  ] as const;
  return {
    title:
      "SQLite cache hit, text body: time ÷ requests-cache's signed hit, same run (below 1 = faster)",
    groups: rows.map((row) => sizeLabel(row.bytes)),
    series: series.map(([label]) => label),
    value: (group, index) => {
      const row = rows[group];
      const field = series[index]?.[1];
      const ours = row && field ? row[field] : undefined;
      return row && ours !== undefined ? ours / row.requestsCacheSigned : undefined;
    },
    max: 2,
    lines: [[1, "requests-cache signed"]],
    format: (value) => `${value.toFixed(2)}×`,
  };
}

/** CPU time signing adds ÷ one HMAC in place, per backend, for `op` at each size. */
function storePanel(rows: readonly StoreRow[], op: "get" | "set"): Panel | undefined {
  const chosen = rows.filter((row) => row.op === op);
  if (chosen.length === 0) return undefined;
  const groups = [...new Set(chosen.map((row) => row.bytes))];
  const backends = [...new Set(chosen.map((row) => row.backend))];
  const find = (group: number, series: number) =>
    chosen.find((row) => row.bytes === groups[group] && row.backend === backends[series]);
  return {
    title: `Signed Keyv ${op}: CPU time signing adds ÷ one raw HMAC of the value in place (lower is better)`,
    groups: groups.map(sizeLabel),
    series: backends,
    value: (group, series) => {
      const row = find(group, series);
      return row ? row.addedCpu / row.floorInPlaceCpu : undefined;
    },
    max: 3,
    lines: [
      [1, "floor"],
      [1.3, "goal 1.3×"],
    ],
    format: (value) => `${value.toFixed(2)}×`,
  };
}

/** CPU time an encrypting store adds ÷ AES-256-GCM alone, per backend, op and size. */
function encryptionPanel(rows: readonly StoreRow[]): Panel | undefined {
  const chosen = rows.filter((row) => row.encrypted !== undefined);
  if (chosen.length === 0) return undefined;
  const groups = [...new Set(chosen.map((row) => `${row.op} ${sizeLabel(row.bytes)}`))];
  const backends = [...new Set(chosen.map((row) => row.backend))];
  return {
    title: "Encrypting Keyv (encrypt: true): CPU time added ÷ AES-256-GCM alone (lower is better)",
    groups,
    series: backends,
    value: (group, series) => {
      const row = chosen.find(
        (r) => `${r.op} ${sizeLabel(r.bytes)}` === groups[group] && r.backend === backends[series],
      );
      return row?.encrypted ? row.encrypted.addedCpu / row.encrypted.floorCpu : undefined;
    },
    max: 4,
    lines: [
      [1, "floor"],
      [1.5, "goal 1.5×"],
    ],
    format: (value) => `${value.toFixed(2)}×`,
  };
}

function drawPanel(panel: Panel, top: number): string[] {
  const plotWidth = WIDTH - LEFT - RIGHT;
  const y = (value: number) =>
    top + PANEL_HEIGHT - (Math.min(value, panel.max) / panel.max) * PANEL_HEIGHT;
  const groupWidth = plotWidth / panel.groups.length;
  const barWidth = (groupWidth * 0.8) / panel.series.length;
  const out = [
    `<text x="${LEFT}" y="${top - 8}" font-weight="bold">${escapeXml(panel.title)}</text>`,
    `<line x1="${LEFT}" y1="${top + PANEL_HEIGHT}" x2="${LEFT + plotWidth}" y2="${top + PANEL_HEIGHT}" stroke="#333"/>`,
    `<line x1="${LEFT}" y1="${top}" x2="${LEFT}" y2="${top + PANEL_HEIGHT}" stroke="#333"/>`,
  ];
  for (let tick = 0; tick <= panel.max; tick += panel.max / 4) {
    out.push(
      `<text x="${LEFT - 6}" y="${y(tick) + 4}" text-anchor="end" fill="#555">${tick.toFixed(2).replace(/\.?0+$/, "")}</text>`,
    );
  }
  panel.groups.forEach((label, g) => {
    const x0 = LEFT + g * groupWidth + groupWidth * 0.1;
    out.push(
      `<text x="${x0 + groupWidth * 0.4}" y="${top + PANEL_HEIGHT + 16}" text-anchor="middle">${escapeXml(label)}</text>`,
    );
    panel.series.forEach((series, s) => {
      const value = panel.value(g, s);
      if (value === undefined || !Number.isFinite(value)) return;
      const barTop = y(Math.max(value, 0));
      const x = x0 + s * barWidth;
      out.push(
        `<rect x="${x.toFixed(1)}" y="${barTop.toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${(top + PANEL_HEIGHT - barTop).toFixed(1)}" fill="${COLORS[s % COLORS.length]}"><title>${escapeXml(`${series} ${label}: ${panel.format(value)}`)}</title></rect>`,
      );
      if (value > panel.max) {
        out.push(
          `<text x="${(x + barWidth / 2).toFixed(1)}" y="${top - 2}" text-anchor="middle" font-size="9">${escapeXml(panel.format(value))}</text>`,
        );
      }
    });
  });
  for (const [value, label] of panel.lines) {
    out.push(
      `<line x1="${LEFT}" y1="${y(value)}" x2="${LEFT + plotWidth}" y2="${y(value)}" stroke="#c00" stroke-dasharray="4 3"/>`,
      `<text x="${LEFT + plotWidth + 4}" y="${y(value) + 4}" fill="#c00">${escapeXml(label)}</text>`,
    );
  }
  panel.series.forEach((series, index) => {
    const legendY = top + 40 + index * 16;
    out.push(
      `<rect x="${WIDTH - RIGHT + 20}" y="${legendY - 9}" width="10" height="10" fill="${COLORS[index % COLORS.length]}"/>`,
      `<text x="${WIDTH - RIGHT + 36}" y="${legendY}">${escapeXml(series)}</text>`,
    );
  });
  return out;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

// Run directly: redraw the chart of a saved run.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const input = process.argv[2] ?? fileURLToPath(new URL("results.json", import.meta.url));
  const output = process.argv[3] ?? input.replace(/\.json$/, ".svg");
  writeFileSync(output, renderChart(JSON.parse(readFileSync(input, "utf8")) as ChartInput));
  console.log(`wrote ${output} from ${input}`);
}
