import { IEdge, IPlan } from './api';

const SVG_NS = 'http://www.w3.org/2000/svg';
const BOX_W = 120;
const MIN_BOX_W = 56;
const NAME_CHAR_W = 6.6;
const BOX_H = 28;
/** Width of the slot a long edge takes in a row it passes through. */
const DUMMY_W = 12;
const GAP_X = 20;
const GAP_Y = 40;
const MARGIN = 12;
/** Between two ports of one box. */
const PORT_GAP = 14;
const LABEL_MAX = 24;
/** Estimated from the 9px label font; the layout runs without a DOM to measure text. */
const LABEL_CHAR_W = 5.2;
const LABEL_H = 11;

export interface IPoint {
  x: number;
  y: number;
}

export interface IBox {
  name: string;
  x: number;
  y: number;
  width: number;
  height: number;
  layer: number;
}

export interface ILabel {
  text: string;
  /** The top left corner of the text's box. */
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface IEdgeLayout {
  edge: IEdge;
  /** From the source box's bottom to the target box's top, through a point above and one
   * below each row the edge passes. */
  points: IPoint[];
  label: ILabel | null;
}

export interface ILayout {
  width: number;
  height: number;
  nodes: IBox[];
  edges: IEdgeLayout[];
}

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

/** The name a box shows: long ones cut short. */
export function shownName(name: string): string {
  return name.length > 16 ? name.slice(0, 15) + '…' : name;
}

/** As wide as the name needs (11px font), so that the graph fits a narrow panel. */
function boxWidth(name: string): number {
  return Math.max(MIN_BOX_W, Math.min(BOX_W, Math.ceil(shownName(name).length * NAME_CHAR_W) + 20));
}

/** A box of a row: a task, or the point where a long edge crosses the row. */
interface IItem {
  id: number;
  task: string | null;
  layer: number;
  width: number;
  up: number[];
  down: number[];
  x: number; // centre
}

/** Crossings between rows `r` and `r + 1` for the given order of each row. */
function rowCrossings(items: IItem[], upper: number[], lower: number[]): number {
  const pos = new Map<number, number>();
  lower.forEach((id, i) => pos.set(id, i));
  const ends: [number, number][] = [];
  upper.forEach((id, i) => {
    for (const d of items[id].down) {
      ends.push([i, pos.get(d)!]);
    }
  });
  let n = 0;
  for (let a = 0; a < ends.length; a++) {
    for (let b = a + 1; b < ends.length; b++) {
      const [u1, l1] = ends[a];
      const [u2, l2] = ends[b];
      if ((u1 - u2) * (l1 - l2) < 0) {
        n++;
      }
    }
  }
  return n;
}

function totalCrossings(items: IItem[], rows: number[][]): number {
  let n = 0;
  for (let r = 0; r + 1 < rows.length; r++) {
    n += rowCrossings(items, rows[r], rows[r + 1]);
  }
  return n;
}

/** Orders each row to reduce crossings: barycenter sweeps down and up, each followed by
 * swaps of neighbours that lower the count; the best order seen wins. */
function orderRows(items: IItem[], rows: number[][]): number[][] {
  let best = rows.map(r => [...r]);
  let bestN = totalCrossings(items, best);
  let cur = rows.map(r => [...r]);
  const sortBy = (r: number, side: 'up' | 'down') => {
    const ref = side === 'up' ? cur[r - 1] : cur[r + 1];
    const at = new Map<number, number>();
    ref.forEach((id, i) => at.set(id, i));
    const key = cur[r].map((id, i) => {
      const ns = items[id][side].map(n => at.get(n)!);
      // No neighbour on that side: it keeps its place.
      return { id, i, k: ns.length ? ns.reduce((a, b) => a + b, 0) / ns.length : i };
    });
    key.sort((a, b) => a.k - b.k || a.i - b.i);
    cur[r] = key.map(k => k.id);
  };
  const transpose = () => {
    for (let improved = true, rounds = 0; improved && rounds < 20; rounds++) {
      improved = false;
      for (let r = 0; r < cur.length; r++) {
        for (let i = 0; i + 1 < cur[r].length; i++) {
          const local = () =>
            (r > 0 ? rowCrossings(items, cur[r - 1], cur[r]) : 0) +
            (r + 1 < cur.length ? rowCrossings(items, cur[r], cur[r + 1]) : 0);
          const before = local();
          [cur[r][i], cur[r][i + 1]] = [cur[r][i + 1], cur[r][i]];
          if (local() < before) {
            improved = true;
          } else {
            [cur[r][i], cur[r][i + 1]] = [cur[r][i + 1], cur[r][i]];
          }
        }
      }
    }
  };
  for (let sweep = 0; sweep < 8 && bestN > 0; sweep++) {
    if (sweep % 2 === 0) {
      for (let r = 1; r < cur.length; r++) {
        sortBy(r, 'up');
      }
    } else {
      for (let r = cur.length - 2; r >= 0; r--) {
        sortBy(r, 'down');
      }
    }
    transpose();
    const n = totalCrossings(items, cur);
    if (n < bestN) {
      best = cur.map(r => [...r]);
      bestN = n;
    }
  }
  return bestN > 0 ? exhaustive(items, best, bestN) : best;
}

/** Above this many combinations of row orders the sweeps' result stands. */
const EXHAUSTIVE_LIMIT = 50000;

/** The fewest crossings, by trying the orders of each row in turn (a branch cut once its
 * crossings reach the best found), when the rows are few and short: the sweeps alone miss
 * the optimum on small tangled graphs, which is what notebooks have. */
function exhaustive(items: IItem[], start: number[][], startN: number): number[][] {
  let combos = 1;
  for (const r of start) {
    for (let k = 2; k <= r.length; k++) {
      combos *= k;
    }
    if (combos > EXHAUSTIVE_LIMIT) {
      return start;
    }
  }
  let best = start;
  let bestN = startN;
  const cur: number[][] = [];
  const perms = (xs: number[]): number[][] =>
    xs.length <= 1 ? [xs] : xs.flatMap((x, i) => perms([...xs.slice(0, i), ...xs.slice(i + 1)]).map(p => [x, ...p]));
  const go = (r: number, n: number) => {
    if (n >= bestN) {
      return;
    }
    if (r === start.length) {
      best = cur.map(row => [...row]);
      bestN = n;
      return;
    }
    for (const order of perms(start[r])) {
      cur[r] = order;
      go(r + 1, n + (r > 0 ? rowCrossings(items, cur[r - 1], order) : 0));
      if (bestN === 0) {
        return;
      }
    }
    cur.length = r;
  };
  go(0, 0);
  return best;
}

/** Centres `x` closest (least squares) to `want`, in this order, each at least `sep[i]`
 * right of the one before: isotonic regression by pooling adjacent violators. */
function place(want: number[], sep: number[]): number[] {
  const off: number[] = [];
  want.forEach((_, i) => off.push(i === 0 ? 0 : off[i - 1] + sep[i]));
  const blocks: { sum: number; n: number }[] = [];
  want.forEach((w, i) => {
    blocks.push({ sum: w - off[i], n: 1 });
    while (blocks.length > 1) {
      const b = blocks[blocks.length - 1];
      const a = blocks[blocks.length - 2];
      if (a.sum / a.n <= b.sum / b.n) {
        break;
      }
      blocks.pop();
      a.sum += b.sum;
      a.n += b.n;
    }
  });
  const out: number[] = [];
  for (const b of blocks) {
    for (let k = 0; k < b.n; k++) {
      out.push(b.sum / b.n + off[out.length]);
    }
  }
  return out;
}

/** Positions the rows' items: each pulled to its neighbours' mean, long edges pulled
 * straight the hardest, never closer than GAP_X to the next in its row. */
function positions(items: IItem[], rows: number[][]): void {
  const weight = (a: IItem, b: IItem) => (a.task === null && b.task === null ? 8 : a.task === null || b.task === null ? 2 : 1);
  for (const row of rows) {
    let x = 0;
    row.forEach(id => {
      items[id].x = x + items[id].width / 2;
      x += items[id].width + GAP_X;
    });
  }
  const pass = (order: number[], sides: ('up' | 'down')[]) => {
    for (const r of order) {
      const row = rows[r];
      const want = row.map(id => {
        const it = items[id];
        let s = 0;
        let w = 0;
        for (const side of sides) {
          for (const n of it[side]) {
            const k = weight(it, items[n]);
            s += k * items[n].x;
            w += k;
          }
        }
        return w ? s / w : it.x;
      });
      const sep = row.map((id, i) => (i === 0 ? 0 : (items[row[i - 1]].width + items[id].width) / 2 + GAP_X));
      place(want, sep).forEach((x, i) => (items[row[i]].x = x));
    }
  };
  const down = rows.map((_, r) => r);
  const up = [...down].reverse();
  for (let k = 0; k < 6; k++) {
    pass(down.slice(1), ['up']);
    pass(up.slice(1), ['down']);
  }
  pass(down, ['up', 'down']);
}

/** A layered (Sugiyama) drawing, top to bottom: tasks in rows by depth, a point in every
 * row a long edge passes, rows ordered to reduce crossings, and every edge made of
 * segments between rows (where there are no boxes) and straight through its own slots. */
export function layout(plan: IPlan): ILayout {
  const depth = layers(plan);
  const items: IItem[] = [];
  const byTask = new Map<string, number>();
  for (const t of plan.tasks) {
    byTask.set(t.name, items.length);
    items.push({ id: items.length, task: t.name, layer: depth.get(t.name) ?? 0, width: boxWidth(t.name), up: [], down: [], x: 0 });
  }
  // Each edge's chain of items, top to bottom; an edge against the layers (a cycle) is laid
  // out reversed.
  const chains: (number[] | null)[] = plan.edges.map(e => {
    const a = byTask.get(e.from);
    const b = byTask.get(e.to);
    if (a === undefined || b === undefined || a === b) {
      return null;
    }
    const [top, bottom] = items[a].layer <= items[b].layer ? [a, b] : [b, a];
    const chain = [top];
    for (let l = items[top].layer + 1; l < items[bottom].layer; l++) {
      const id = items.length;
      items.push({ id, task: null, layer: l, width: DUMMY_W, up: [], down: [], x: 0 });
      chain.push(id);
    }
    chain.push(bottom);
    for (let i = 0; i + 1 < chain.length; i++) {
      if (items[chain[i]].layer < items[chain[i + 1]].layer) {
        items[chain[i]].down.push(chain[i + 1]);
        items[chain[i + 1]].up.push(chain[i]);
      }
    }
    return chain;
  });
  const nRows = Math.max(0, ...items.map(i => i.layer + 1));
  const rows: number[][] = Array.from({ length: nRows }, () => []);
  for (const it of items) {
    rows[it.layer].push(it.id); // tasks first, in plan order
  }
  const ordered = orderRows(items, rows);
  positions(items, ordered);

  const rowY = (l: number) => MARGIN + l * (BOX_H + GAP_Y);
  // Ports: the edges leaving (entering) a task spread along its bottom (top), in the order
  // of their other ends, so that edges of one task neither meet nor cross there.
  const ports = new Map<string, number[]>();
  for (const it of items) {
    for (const side of ['up', 'down'] as const) {
      const others = [...it[side]].sort((p, q) => items[p].x - items[q].x);
      // Closer together when many, to stay on the box.
      const gap = Math.min(PORT_GAP, (it.width - 2 * PORT_GAP) / Math.max(1, others.length - 1));
      others.forEach((o, i) => {
        const key = `${it.id}:${side}:${o}`;
        const x = it.task === null ? it.x : it.x + (i - (others.length - 1) / 2) * gap;
        ports.set(key, [...(ports.get(key) ?? []), x]);
      });
    }
  }
  // Two edges between the same tasks take the ports in turn.
  const takePort = (id: number, side: 'up' | 'down', other: number): number => {
    const list = ports.get(`${id}:${side}:${other}`);
    return !list ? items[id].x : list.length > 1 ? list.shift()! : list[0];
  };

  let minX = Infinity;
  let maxX = -Infinity;
  for (const it of items) {
    minX = Math.min(minX, it.x - it.width / 2);
    maxX = Math.max(maxX, it.x + it.width / 2);
  }
  const nodes: IBox[] = plan.tasks.map(t => {
    const it = items[byTask.get(t.name)!];
    return { name: t.name, x: it.x - it.width / 2, y: rowY(it.layer), width: it.width, height: BOX_H, layer: it.layer };
  });
  const placed: ILabel[] = [];
  const overlaps = (a: ILabel, b: ILabel) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
  const edges: IEdgeLayout[] = [];
  plan.edges.forEach((e, k) => {
    const chain = chains[k];
    if (!chain) {
      return;
    }
    const points: IPoint[] = [];
    chain.forEach((id, i) => {
      const it = items[id];
      const top = rowY(it.layer);
      if (i > 0) {
        points.push({ x: takePort(id, 'up', chain[i - 1]), y: top });
      }
      if (i + 1 < chain.length) {
        points.push({ x: takePort(id, 'down', chain[i + 1]), y: top + BOX_H });
      }
    });
    if (items[chain[0]].task !== e.from) {
      points.reverse();
    }
    let label: ILabel | null = null;
    if (e.values.length) {
      const all = e.values.join(', ');
      const text = all.length > LABEL_MAX ? all.slice(0, LABEL_MAX - 1) + '…' : all;
      const width = text.length * LABEL_CHAR_W;
      // At the middle of a segment between rows, the first one clear of labels placed.
      const spans: ILabel[] = [];
      for (let i = 0; i + 1 < points.length; i += 2) {
        const [p, q] = [points[i], points[i + 1]];
        spans.push({ text, x: (p.x + q.x) / 2 + 4, y: (p.y + q.y) / 2 - LABEL_H / 2, width, height: LABEL_H });
      }
      label = spans.find(s => !placed.some(p => overlaps(s, p))) ?? spans[0];
      placed.push(label);
      maxX = Math.max(maxX, label.x + label.width);
    }
    edges.push({ edge: e, points, label });
  });
  // Shift everything right of the margin.
  const dx = MARGIN - minX;
  for (const n of nodes) {
    n.x += dx;
  }
  for (const e of edges) {
    e.points.forEach(p => (p.x += dx));
    if (e.label) {
      e.label.x += dx;
    }
  }
  return {
    width: Math.ceil(maxX - minX + 2 * MARGIN),
    height: nRows ? rowY(nRows - 1) + BOX_H + MARGIN : 2 * MARGIN,
    nodes,
    edges
  };
}

/** The SVG path through an edge's points: a curve across each gap between rows (its
 * control points stay inside the segment's bounding box, so it meets no box either), a
 * straight line down each row the edge passes. */
export function edgePath(points: IPoint[]): string {
  let d = `M ${points[0].x} ${points[0].y}`;
  for (let i = 1; i < points.length; i++) {
    const [p, q] = [points[i - 1], points[i]];
    if (i % 2 === 1) {
      const my = (p.y + q.y) / 2;
      d += ` C ${p.x} ${my}, ${q.x} ${my}, ${q.x} ${q.y}`;
    } else {
      d += ` L ${q.x} ${q.y}`;
    }
  }
  return d;
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
  const g = layout(plan);
  const svg = el('svg', {
    class: 'nb2pipe-graph',
    width: g.width,
    height: g.height,
    viewBox: `0 0 ${g.width} ${g.height}`,
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
  const labels: SVGTextElement[] = [];
  for (const { edge: e, points, label } of g.edges) {
    const line = el('path', {
      d: edgePath(points),
      fill: 'none',
      class: e.explicit ? 'nb2pipe-edge nb2pipe-edge-explicit' : 'nb2pipe-edge',
      'marker-end': 'url(#nb2pipe-arrow)'
    });
    const title = el('title', {});
    title.textContent = e.values.length ? `${e.from} → ${e.to}: ${e.values.join(', ')}` : `${e.from} → ${e.to}`;
    line.appendChild(title);
    svg.appendChild(line);
    if (label) {
      // The values an edge carries, as the CLI's mermaid and dot output name them.
      const text = el('text', { class: 'nb2pipe-edge-label', x: label.x, y: label.y + label.height - 2 });
      text.textContent = label.text;
      labels.push(text);
    }
  }
  // Over the edges, so that a line never strikes through a label.
  labels.forEach(l => svg.appendChild(l));
  for (const t of plan.tasks) {
    const b = g.nodes.find(n => n.name === t.name)!;
    const node = el('g', { class: 'nb2pipe-node', 'data-task': t.name, tabindex: 0 });
    node.appendChild(el('rect', { x: b.x, y: b.y, width: b.width, height: b.height, rx: 5 }));
    const text = el('text', { x: b.x + b.width / 2, y: b.y + b.height / 2 + 4, 'text-anchor': 'middle' });
    text.textContent = shownName(t.name);
    node.appendChild(text);
    const title = el('title', {});
    title.textContent = `${t.name} (cells ${t.cells.map(c => c + 1).join(', ')})`;
    node.appendChild(title);
    node.addEventListener('click', () => onTask(t.name));
    svg.appendChild(node);
  }
  return svg;
}
