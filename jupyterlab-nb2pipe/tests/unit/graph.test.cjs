// The panel's graph layout, a pure function of the plan: `npm test` compiles src/graph.ts
// to CommonJS (tsconfig.test.json) and runs this with node's test runner.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const { layout, layers } = require(path.join(__dirname, '..', '..', 'lib-unit', 'graph.js'));

function plan(tasks, edges) {
  return {
    pipeline: 'p',
    notebook: 'p.ipynb',
    parameters: [],
    settings: {},
    tasks: tasks.map((name, i) => ({ name, cells: [i], inputs: [], outputs: [], parameters: [], requirements: [] })),
    edges: edges.map(([from, to, values = []]) => ({ from, to, values, explicit: false }))
  };
}

// The fixtures' shape: a diamond, and a report that also reads what load made (a skip edge).
const FIVE = plan(
  ['load', 'clean', 'features', 'train', 'report'],
  [
    ['load', 'clean', ['raw']],
    ['load', 'features', ['raw']],
    ['clean', 'train', ['cleaned']],
    ['features', 'train', ['feature_table', 'feature_names']],
    ['load', 'report', ['raw']],
    ['train', 'report', ['model', 'score']]
  ]
);

const EPS = 1e-6;

/** Whether segment p-q meets the closed rectangle (Liang-Barsky clipping). */
function segmentHitsBox(p, q, b) {
  let t0 = 0;
  let t1 = 1;
  const dx = q.x - p.x;
  const dy = q.y - p.y;
  const edges = [
    [-dx, p.x - b.x],
    [dx, b.x + b.width - p.x],
    [-dy, p.y - b.y],
    [dy, b.y + b.height - p.y]
  ];
  for (const [pp, qq] of edges) {
    if (Math.abs(pp) < EPS) {
      if (qq < 0) return false;
    } else {
      const t = qq / pp;
      if (pp < 0) t0 = Math.max(t0, t);
      else t1 = Math.min(t1, t);
      if (t0 > t1) return false;
    }
  }
  return true;
}

const orient = (a, b, c) => Math.sign((b.x - a.x) * (c.y - a.y) - (b.y - a.y) * (c.x - a.x));

/** Proper crossing: each segment's ends strictly on both sides of the other. */
function segmentsCross(a, b, c, d) {
  return orient(a, b, c) * orient(a, b, d) < 0 && orient(c, d, a) * orient(c, d, b) < 0;
}

function segments(points) {
  const out = [];
  for (let i = 0; i + 1 < points.length; i++) out.push([points[i], points[i + 1]]);
  return out;
}

function geometricCrossings(g) {
  let n = 0;
  for (let i = 0; i < g.edges.length; i++) {
    for (let j = i + 1; j < g.edges.length; j++) {
      for (const [a, b] of segments(g.edges[i].points)) {
        for (const [c, d] of segments(g.edges[j].points)) {
          if (segmentsCross(a, b, c, d)) n++;
        }
      }
    }
  }
  return n;
}

function permutations(xs) {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map(p => [x, ...p]));
}

/** The fewest crossings any order of the rows gives, a point per row a long edge passes:
 * every combination of row orders tried. */
function minimumCrossings(p) {
  const depth = layers(p);
  const rows = [];
  const links = []; // [upper id, lower id], ids `task` or `edge#k@layer`
  const put = (id, l) => (rows[l] = rows[l] || []).push(id);
  p.tasks.forEach(t => put(t.name, depth.get(t.name)));
  p.edges.forEach((e, k) => {
    let prev = e.from;
    for (let l = depth.get(e.from) + 1; l < depth.get(e.to); l++) {
      const id = `edge#${k}@${l}`;
      put(id, l);
      links.push([prev, id]);
      prev = id;
    }
    links.push([prev, e.to]);
  });
  const choices = rows.map(r => permutations(r));
  let best = Infinity;
  const pick = (r, pos) => {
    if (r === rows.length) {
      let n = 0;
      for (let i = 0; i < links.length; i++) {
        for (let j = i + 1; j < links.length; j++) {
          const [a, b] = links[i];
          const [c, d] = links[j];
          if (pos.get(a).l === pos.get(c).l && (pos.get(a).i - pos.get(c).i) * (pos.get(b).i - pos.get(d).i) < 0) n++;
        }
      }
      best = Math.min(best, n);
      return;
    }
    for (const order of choices[r]) {
      const next = new Map(pos);
      order.forEach((id, i) => next.set(id, { l: r, i }));
      pick(r + 1, next);
    }
  };
  pick(0, new Map());
  return best;
}

function checkNoEdgeThroughABox(p) {
  const g = layout(p);
  const box = new Map(g.nodes.map(n => [n.name, n]));
  for (const { edge, points } of g.edges) {
    const from = box.get(edge.from);
    const to = box.get(edge.to);
    // It starts on its source's bottom and ends on its target's top...
    assert.ok(Math.abs(points[0].y - (from.y + from.height)) < EPS && points[0].x > from.x && points[0].x < from.x + from.width, `${edge.from}→${edge.to} starts on ${edge.from}`);
    const last = points[points.length - 1];
    assert.ok(Math.abs(last.y - to.y) < EPS && last.x > to.x && last.x < to.x + to.width, `${edge.from}→${edge.to} ends on ${edge.to}`);
    // ... and meets no other box on the way.
    for (const [a, b] of segments(points)) {
      for (const n of g.nodes) {
        if (n.name !== edge.from && n.name !== edge.to) {
          assert.ok(!segmentHitsBox(a, b, n), `${edge.from}→${edge.to}: segment (${a.x},${a.y})-(${b.x},${b.y}) runs through ${n.name}`);
        }
      }
    }
  }
  return g;
}

test('five tasks: no edge runs through a box other than its ends', () => {
  const g = checkNoEdgeThroughABox(FIVE);
  // The skip edge load→report passes the rows of clean/features and of train: a point in each.
  const skip = g.edges.find(e => e.edge.from === 'load' && e.edge.to === 'report');
  assert.equal(skip.points.length, 6);
});

test('five tasks: no edges cross (the fewest possible)', () => {
  assert.equal(minimumCrossings(FIVE), 0);
  assert.equal(geometricCrossings(layout(FIVE)), 0);
});

test('rows are ordered for fewer crossings than the plan order gives', () => {
  // Plan order puts a over d's parent b's child: a→d, b→c cross unless a row is flipped.
  const swapped = plan(['a', 'b', 'c', 'd'], [['a', 'd'], ['b', 'c']]);
  assert.equal(geometricCrossings(layout(swapped)), 0);
  // Two long edges around a chain, and a complete bipartite pair that must cross once.
  const tangled = plan(
    ['s', 'x', 'y', 'm', 'n', 'z', 'e'],
    [['s', 'x'], ['s', 'y'], ['x', 'n'], ['y', 'm'], ['x', 'm'], ['y', 'n'], ['m', 'z'], ['s', 'z'], ['s', 'e'], ['n', 'e'], ['z', 'e']]
  );
  const min = minimumCrossings(tangled);
  assert.ok(min >= 1);
  assert.equal(geometricCrossings(layout(tangled)), min);
  checkNoEdgeThroughABox(tangled);
});

test('boxes of a row do not overlap, rows go down by depth', () => {
  const g = layout(FIVE);
  for (const a of g.nodes) {
    for (const b of g.nodes) {
      if (a !== b && a.layer === b.layer) {
        assert.ok(a.x + a.width <= b.x || b.x + b.width <= a.x, `${a.name} overlaps ${b.name}`);
      }
    }
    assert.ok(a.x >= 0 && a.x + a.width <= g.width && a.y >= 0 && a.y + a.height <= g.height, `${a.name} inside the drawing`);
  }
  const y = Object.fromEntries(g.nodes.map(n => [n.name, n.y]));
  assert.ok(y.load < y.clean && y.clean === y.features && y.features < y.train && y.train < y.report);
});

test('value labels sit at the middle of a segment, on no box and no other label', () => {
  const g = layout(FIVE);
  const overlap = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
  const labels = g.edges.map(e => e.label);
  assert.ok(labels.every(Boolean), 'every edge here carries values');
  assert.equal(g.edges.find(e => e.edge.to === 'train' && e.edge.from === 'features').label.text, 'feature_table, feature_…');
  for (const { edge, points, label } of g.edges) {
    const mid = segments(points).map(([a, b]) => ({ x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 }));
    assert.ok(
      mid.some(m => Math.abs(label.x - 4 - m.x) < EPS && Math.abs(label.y + label.height / 2 - m.y) < EPS),
      `${edge.from}→${edge.to}: label at a segment's middle`
    );
    for (const n of g.nodes) {
      assert.ok(!overlap(label, n), `${edge.from}→${edge.to}: label on ${n.name}`);
    }
    assert.ok(label.x + label.width <= g.width, 'label inside the drawing');
  }
  for (let i = 0; i < labels.length; i++) {
    for (let j = i + 1; j < labels.length; j++) {
      assert.ok(!overlap(labels[i], labels[j]), `labels ${labels[i].text} and ${labels[j].text} overlap`);
    }
  }
});

test('a cycle, a self edge and an unknown task do not break the layout', () => {
  const g = layout(plan(['a', 'b'], [['a', 'b'], ['b', 'a'], ['a', 'a'], ['a', 'ghost']]));
  assert.equal(g.nodes.length, 2);
  for (const e of g.edges) {
    assert.ok(e.points.every(p => Number.isFinite(p.x) && Number.isFinite(p.y)));
  }
});

test('a plan too big to try every order still has no edge through a box', () => {
  // Rows of 6-9 items: beyond the exhaustive search, the sweeps' order is drawn.
  const names = Array.from({ length: 16 }, (_, i) => `t${i}`);
  const edges = [];
  for (let i = 1; i < 16; i++) {
    edges.push([`t${Math.floor((i - 1) / 3)}`, `t${i}`]);
    if (i > 4) edges.push([`t0`, `t${i}`]);
    if (i % 4 === 0 && i + 5 < 16) edges.push([`t${i}`, `t${i + 5}`]);
  }
  const g = checkNoEdgeThroughABox(plan(names, edges));
  assert.equal(g.edges.length, edges.length);
});
