/** A dependency-free SVG chart of the store results: two panels of grouped bars. */
import { sizeLabel } from "./payload.ts";
import type { StoreRow } from "./stores.ts";

const COLORS = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2"];
const WIDTH = 860;
const PANEL_HEIGHT = 230;
const LEFT = 56;
const RIGHT = 150;
const TOP = 34;

interface Group {
  readonly op: string;
  readonly bytes: number;
  readonly label: string;
}

interface Panel {
  readonly title: string;
  readonly value: (row: StoreRow) => number;
  readonly max: number;
  /** Horizontal reference lines: value and label. */
  readonly lines: readonly [number, string][];
  readonly format: (value: number) => string;
}

/** Renders `rows` as an SVG document. */
export function renderChart(rows: readonly StoreRow[], caption: string): string {
  const backends = [...new Set(rows.map((row) => row.backend))];
  const groups: Group[] = [];
  for (const { op, bytes } of rows) {
    if (!groups.some((group) => group.op === op && group.bytes === bytes)) {
      groups.push({ op, bytes, label: `${op} ${sizeLabel(bytes)}` });
    }
  }
  const panels: Panel[] = [
    {
      title: "CPU time signing adds, in multiples of one raw HMAC in place (lower is better)",
      value: (row) => row.addedCpu / row.floorInPlaceCpu,
      max: 3,
      lines: [
        [1, "floor"],
        [1.3, "goal 1.3×"],
      ],
      format: (value) => `${value.toFixed(2)}×`,
    },
    {
      title: "Signed ÷ unsigned time per operation (1 = free)",
      value: (row) => row.signed / row.unsigned,
      max: 2,
      lines: [[1, "unsigned"]],
      format: (value) => value.toFixed(2),
    },
  ];
  const height = TOP + panels.length * (PANEL_HEIGHT + 60) + 20;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, sans-serif" font-size="11" role="img" aria-label="${escapeXml(caption)}">`,
    `<title>${escapeXml(caption)}</title>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="${LEFT}" y="18" font-size="13" font-weight="bold">${escapeXml(caption)}</text>`,
  ];
  panels.forEach((panel, index) => {
    const top = TOP + 20 + index * (PANEL_HEIGHT + 60);
    out.push(...drawPanel(panel, top, rows, backends, groups));
  });
  backends.forEach((backend, index) => {
    const y = TOP + 30 + index * 16;
    out.push(
      `<rect x="${WIDTH - RIGHT + 20}" y="${y - 9}" width="10" height="10" fill="${COLORS[index % COLORS.length]}"/>`,
      `<text x="${WIDTH - RIGHT + 36}" y="${y}">${escapeXml(backend)}</text>`,
    );
  });
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

function drawPanel(
  panel: Panel,
  top: number,
  rows: readonly StoreRow[],
  backends: readonly string[],
  groups: readonly Group[],
): string[] {
  const plotWidth = WIDTH - LEFT - RIGHT;
  const y = (value: number) =>
    top + PANEL_HEIGHT - (Math.min(value, panel.max) / panel.max) * PANEL_HEIGHT;
  const groupWidth = plotWidth / groups.length;
  const barWidth = (groupWidth * 0.8) / backends.length;
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
  groups.forEach((group, g) => {
    const x0 = LEFT + g * groupWidth + groupWidth * 0.1;
    out.push(
      `<text x="${x0 + groupWidth * 0.4}" y="${top + PANEL_HEIGHT + 16}" text-anchor="middle">${escapeXml(group.label)}</text>`,
    );
    backends.forEach((backend, b) => {
      const row = rows.find(
        (r) => r.backend === backend && r.op === group.op && r.bytes === group.bytes,
      );
      if (row === undefined) return;
      const value = panel.value(row);
      const top_ = y(Math.max(value, 0));
      const x = x0 + b * barWidth;
      out.push(
        `<rect x="${x.toFixed(1)}" y="${top_.toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${(top + PANEL_HEIGHT - top_).toFixed(1)}" fill="${COLORS[b % COLORS.length]}"><title>${escapeXml(`${backend} ${group.label}: ${panel.format(value)}`)}</title></rect>`,
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
  return out;
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
