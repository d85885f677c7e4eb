import { IPlan } from './api';

const SVG_NS = 'http://www.w3.org/2000/svg';
const BOX_W = 120;
const BOX_H = 28;
const GAP_X = 28;
const GAP_Y = 36;

/** Layer of each task: the longest path from a task with no upstream. */
export function layers(plan: IPlan): Map<string, number> {
  const names = plan.tasks.map(t => t.name);
  const ups = new Map<string, string[]>(names.map(n => [n, []]));
  for (const e of plan.edges) {
    ups.get(e.to)?.push(e.from);
  }
  const depth = new Map<string, number>();
  const visiting = new Set<string>();
  const visit = (n: string): number => {
    if (depth.has(n)) {
      return depth.get(n)!;
    }
    if (visiting.has(n)) {
      return 0; // a cycle is reported as a diagnostic; draw it flat
    }
    visiting.add(n);
    const d = Math.max(-1, ...(ups.get(n) ?? []).filter(u => ups.has(u)).map(visit)) + 1;
    visiting.delete(n);
    depth.set(n, d);
    return d;
  };
  names.forEach(visit);
  return depth;
}

function el<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number>
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, String(v));
  }
  return node;
}

/** Top-to-bottom layered drawing of the task graph; `onTask` is called on a click. */
export function renderGraph(plan: IPlan, onTask: (name: string) => void): SVGSVGElement {
  const depth = layers(plan);
  const rows: string[][] = [];
  for (const t of plan.tasks) {
    const d = depth.get(t.name) ?? 0;
    (rows[d] = rows[d] ?? []).push(t.name);
  }
  const widest = Math.max(1, ...rows.map(r => (r ? r.length : 0)));
  const width = widest * (BOX_W + GAP_X) + GAP_X;
  const height = rows.length * (BOX_H + GAP_Y) + GAP_Y / 2;
  const pos = new Map<string, { x: number; y: number }>();
  rows.forEach((row, d) => {
    const offset = (width - row.length * (BOX_W + GAP_X) + GAP_X) / 2;
    row.forEach((name, i) => {
      pos.set(name, { x: offset + i * (BOX_W + GAP_X), y: GAP_Y / 2 + d * (BOX_H + GAP_Y) });
    });
  });
  const svg = el('svg', {
    class: 'nb2pipe-graph',
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: 'img'
  });
  const defs = el('defs', {});
  const marker = el('marker', {
    id: 'nb2pipe-arrow',
    viewBox: '0 0 10 10',
    refX: 10,
    refY: 5,
    markerWidth: 6,
    markerHeight: 6,
    orient: 'auto-start-reverse'
  });
  marker.appendChild(el('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'nb2pipe-arrowhead' }));
  defs.appendChild(marker);
  svg.appendChild(defs);
  for (const e of plan.edges) {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    if (!a || !b) {
      continue;
    }
    const [x1, y1, x2, y2] = [a.x + BOX_W / 2, a.y + BOX_H, b.x + BOX_W / 2, b.y];
    // An edge that skips a layer would run through the boxes between: bend it aside.
    const skips = (depth.get(e.to) ?? 0) - (depth.get(e.from) ?? 0) > 1;
    const bend = skips ? BOX_W * 0.75 : 0;
    const line = el('path', {
      d: `M ${x1} ${y1} C ${x1 + bend} ${y1 + GAP_Y}, ${x2 + bend} ${y2 - GAP_Y}, ${x2} ${y2}`,
      fill: 'none',
      class: e.explicit ? 'nb2pipe-edge nb2pipe-edge-explicit' : 'nb2pipe-edge',
      'marker-end': 'url(#nb2pipe-arrow)'
    });
    const title = el('title', {});
    title.textContent = e.values.length
      ? `${e.from} → ${e.to}: ${e.values.join(', ')}`
      : `${e.from} → ${e.to}`;
    line.appendChild(title);
    svg.appendChild(line);
    if (e.values.length) {
      // The values an edge carries, as the CLI's mermaid and dot output name them.
      const names = e.values.join(', ');
      const label = el('text', { class: 'nb2pipe-edge-label', x: (x1 + x2) / 2 + bend * 0.75 + 4, y: (y1 + y2) / 2 + 3 });
      label.textContent = names.length > 24 ? names.slice(0, 23) + '…' : names;
      svg.appendChild(label);
    }
  }
  for (const t of plan.tasks) {
    const p = pos.get(t.name)!;
    const g = el('g', { class: 'nb2pipe-node', 'data-task': t.name, tabindex: 0 });
    g.appendChild(el('rect', { x: p.x, y: p.y, width: BOX_W, height: BOX_H, rx: 5 }));
    const text = el('text', { x: p.x + BOX_W / 2, y: p.y + BOX_H / 2 + 4, 'text-anchor': 'middle' });
    text.textContent = t.name.length > 16 ? t.name.slice(0, 15) + '…' : t.name;
    g.appendChild(text);
    const title = el('title', {});
    title.textContent = `${t.name} (cells ${t.cells.join(', ')})`;
    g.appendChild(title);
    g.addEventListener('click', () => onTask(t.name));
    svg.appendChild(g);
  }
  return svg;
}
