import { NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { IDiagnostic, IPlan, IResult, IRunTask, IRuns, ITask } from './api';
import { renderGraph } from './graph';
import { addSecret, getTags, removeTag, setResources, startTask } from './tags';

/** What the panel needs from the plugin. */
export interface IPanelHost {
  current(): NotebookPanel | null;
  goToCell(panel: NotebookPanel, index: number): Promise<void>;
  refresh(): Promise<void>;
  convert(): Promise<void>;
  runPipeline(): Promise<void>;
  selectTask(panel: NotebookPanel, task: string): void;
  /** Runs `%nb2pipe inputs TASK` in the notebook's kernel; what it printed. */
  loadInputs(task: string): Promise<string>;
}

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: { class?: string; text?: string; title?: string; data?: Record<string, string> } = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (props.class) {
    node.className = props.class;
  }
  if (props.text !== undefined) {
    node.textContent = props.text; // never innerHTML: messages quote notebook text
  }
  if (props.title) {
    node.title = props.title;
  }
  for (const [k, v] of Object.entries(props.data ?? {})) {
    node.dataset[k] = v;
  }
  for (const c of children) {
    node.append(c);
  }
  return node;
}

function button(label: string, action: string, onClick: () => void): HTMLButtonElement {
  const b = h('button', { class: 'jp-Button nb2pipe-button', text: label, data: { nb2pipe: action } });
  b.type = 'button';
  b.addEventListener('click', onClick);
  return b;
}

function input(placeholder: string, name: string, hint = placeholder): HTMLInputElement {
  const i = h('input', { class: 'jp-mod-styled nb2pipe-input', title: hint });
  i.placeholder = placeholder;
  i.name = name;
  i.setAttribute('aria-label', placeholder);
  return i;
}

/** A field with its name written above it: placeholders vanish once typed over. */
function field(label: string, i: HTMLInputElement): HTMLLabelElement {
  return h('label', { class: 'nb2pipe-field' }, h('span', { class: 'nb2pipe-field-label', text: label }), i);
}

/** A one-line summary of a task's settings: resources, secrets, env, retries, ... */
export function settingsLines(t: ITask): string[] {
  const s = t.settings ?? {};
  const out: string[] = [];
  const req = s.resources?.requests ?? {};
  const lim = s.resources?.limits ?? {};
  const res = Object.keys(req).map(k => (lim[k] && lim[k] !== req[k] ? `${k}=${req[k]} (limit ${lim[k]})` : `${k}=${req[k]}`));
  if (res.length) {
    out.push(`resources: ${res.join(', ')}`);
  }
  if (s.secrets?.length) {
    // Only Secret names and keys: values never exist in the plan.
    out.push(
      `secrets: ${s.secrets
        .map((x: any) => (x.key ? `${x.name}:${x.key} → ${x.env}` : x.mount_path ? `${x.name} @ ${x.mount_path}` : x.name))
        .join(', ')}`
    );
  }
  if (s.config_maps?.length) {
    out.push(`config maps: ${s.config_maps.join(', ')}`);
  }
  const env = Object.keys(s.env ?? {});
  if (env.length) {
    out.push(`env: ${env.join(', ')}`);
  }
  if (s.retries) {
    out.push(`retries: ${s.retries}`);
  }
  if (s.timeout_seconds) {
    out.push(`timeout: ${s.timeout_seconds}s`);
  }
  if (s.pool) {
    out.push(`pool: ${s.pool}`);
  }
  const ns = Object.entries(s.node_selector ?? {}).map(([k, v]) => `${k}=${v}`);
  if (ns.length) {
    out.push(`node selector: ${ns.join(', ')}`);
  }
  if (t.image?.prebuilt && t.image.reference) {
    out.push(`image: ${t.image.reference}`);
  }
  if (s.cache === false) {
    out.push('cache: off');
  }
  return out;
}

export class Nb2pipePanel extends Widget {
  private status = h('div', { class: 'nb2pipe-status' });
  private diagnosticsBox = h('div', { class: 'nb2pipe-diagnostics' });
  private graphBox = h('div', { class: 'nb2pipe-graph-box' });
  private tasksBox = h('div', { class: 'nb2pipe-tasks' });
  private cellBox = h('div', { class: 'nb2pipe-cell-tags' });
  private message = h('div', { class: 'nb2pipe-message' });
  plan: IPlan | null = null;
  private forPanel: NotebookPanel | null = null;
  private runBox = h('div', { class: 'nb2pipe-run-status' });
  private runTasks = new Map<string, IRunTask>();
  private lastRuns: IRuns | null = null;

  constructor(private host: IPanelHost) {
    super();
    this.id = 'nb2pipe-panel';
    this.addClass('nb2pipe-panel');
    this.title.caption = 'nb2pipe pipeline';
    this.title.label = 'nb2pipe';
    const head = h(
      'div',
      { class: 'nb2pipe-head' },
      h('span', { class: 'nb2pipe-title', text: 'nb2pipe pipeline' }),
      button('Refresh', 'refresh', () => void this.host.refresh()),
      button('Convert…', 'convert', () => void this.host.convert()),
      button('Run pipeline', 'run', () => void this.host.runPipeline())
    );
    this.node.append(
      head,
      this.status,
      this.runBox,
      h('h3', { text: 'Diagnostics' }),
      this.diagnosticsBox,
      h('h3', { text: 'Task graph' }),
      this.graphBox,
      h('h3', { text: 'Tasks' }),
      this.tasksBox,
      h('h3', { text: 'Tags of the active cell' }),
      this.cellBox
    );
    this.showEmpty('Open a notebook and press Refresh.');
  }

  showEmpty(text: string): void {
    this.plan = null;
    this.lastRuns = null;
    this.runBox.textContent = '';
    this.status.textContent = text;
    this.diagnosticsBox.replaceChildren();
    this.graphBox.replaceChildren();
    this.tasksBox.replaceChildren();
    this.renderCellTags();
  }

  /** Shows an inspect result, and optionally the outcome of a convert. */
  showResult(panel: NotebookPanel, inspect: IResult, convert?: IResult, keepCellTags = false): void {
    this.forPanel = panel;
    this.plan = inspect.plan ?? null;
    const diags: IDiagnostic[] = [...(inspect.diagnostics ?? [])];
    // convert repeats inspect's diagnostics; add only those it has on its own.
    for (const d of convert?.diagnostics ?? []) {
      if (!diags.some(x => x.code === d.code && x.message === d.message && x.location?.cell === d.location?.cell)) {
        diags.push(d);
      }
    }
    const parts = [panel.context.path];
    if (inspect.error) {
      parts.push(`inspect failed: ${inspect.error}`);
    }
    if (convert) {
      if (convert.ok) {
        parts.push(`bundle written to ${convert.bundle_path ?? convert.bundle} (${convert.files?.length ?? 0} files)`);
      } else {
        parts.push(convert.error ? `convert failed: ${convert.error}` : 'convert failed: see the diagnostics');
      }
    }
    this.status.replaceChildren(...parts.map(p => h('div', { text: p })));
    this.status.dataset.convert = convert ? (convert.ok ? 'ok' : 'failed') : '';
    this.status.setAttribute('role', 'status');
    this.renderDiagnostics(panel, diags);
    this.renderPlan(panel);
    if (this.lastRuns) {
      this.showRuns(this.lastRuns);
    }
    // A refresh on its own (tags edited) leaves the fields the user may be typing in.
    if (!keepCellTags) {
      this.renderCellTags();
    }
  }

  private renderDiagnostics(panel: NotebookPanel, diags: IDiagnostic[]): void {
    if (!diags.length) {
      this.diagnosticsBox.replaceChildren(h('div', { class: 'nb2pipe-none', text: 'No problems found.' }));
      return;
    }
    this.diagnosticsBox.replaceChildren(
      ...diags.map(d => {
        const cell = d.location?.cell;
        const where = describeWhere(d);
        const row = h(
          'div',
          { class: `nb2pipe-diagnostic nb2pipe-${d.severity}`, data: { code: d.code, cell: String(cell ?? '') } },
          h('span', { class: 'nb2pipe-code', text: `${d.severity} ${d.code}` }),
          ' ',
          h('span', { class: 'nb2pipe-where', text: where }),
          ': ',
          h('span', { class: 'nb2pipe-msg', text: d.message })
        );
        const quoted = quote(d);
        if (quoted) {
          row.append(quoted);
        }
        if (d.help) {
          row.append(h('div', { class: 'nb2pipe-help', text: d.help }));
        }
        if (typeof cell === 'number') {
          row.classList.add('nb2pipe-link');
          row.tabIndex = 0;
          row.title = `Go to cell ${cellNumber(d)}`;
          row.addEventListener('click', () => void this.host.goToCell(panel, cell));
        }
        return row;
      })
    );
  }

  private renderPlan(panel: NotebookPanel): void {
    const plan = this.plan;
    if (!plan) {
      this.graphBox.replaceChildren(h('div', { class: 'nb2pipe-none', text: 'No plan.' }));
      this.tasksBox.replaceChildren();
      return;
    }
    const goTask = (name: string) => {
      const t = plan.tasks.find(x => x.name === name);
      if (t && t.cells.length) {
        void this.host.goToCell(panel, t.cells[0]);
      }
    };
    this.graphBox.replaceChildren(
      renderGraph(plan, name => {
        const t = plan.tasks.find(x => x.name === name);
        if (t && t.cells.length) {
          // After the scroll, which makes the first cell the only selected one.
          void this.host.goToCell(panel, t.cells[0]).then(() => this.host.selectTask(panel, name));
        }
      })
    );
    const upstream = (name: string) => plan.edges.filter(e => e.to === name).map(e => e.from);
    this.tasksBox.replaceChildren(
      ...plan.tasks.map(t => {
        const rows: [string, string][] = [
          // Counted from 1, as the notebook and the diagnostics number cells.
          ['cells', t.cells.map(c => c + 1).join(', ')],
          ['after', upstream(t.name).join(', ') || '—'],
          ['inputs', t.inputs.map(i => `${i.name} ← ${i.from}`).join(', ') || '—'],
          ['outputs', t.outputs.join(', ') || '—'],
          ['parameters', t.parameters.join(', ') || '—'],
          ['requirements', t.requirements.map(r => r.line).join(', ') || '—']
        ];
        for (const line of settingsLines(t)) {
          const i = line.indexOf(': ');
          rows.push([line.slice(0, i), line.slice(i + 2)]);
        }
        const name = h('a', { class: 'nb2pipe-task-name nb2pipe-link', text: t.name, title: `Go to cell ${t.cells[0] + 1}` });
        name.addEventListener('click', () => goTask(t.name));
        const table = h('table', { class: 'nb2pipe-task-table' });
        for (const [k, v] of rows) {
          table.append(h('tr', {}, h('th', { text: k }), h('td', { text: v })));
        }
        const state = h('span', { class: 'nb2pipe-task-state', text: 'not run', data: { state: 'none' } });
        const load = button('Load inputs into kernel', 'load-inputs', () => void this.loadInputs(t.name, out));
        load.disabled = !t.inputs.length;
        load.title = t.inputs.length ? `%nb2pipe inputs ${t.name}: the values the task received in its last run` : 'this task receives no values';
        const out = h('pre', { class: 'nb2pipe-kernel-out' });
        const tail = h('pre', { class: 'nb2pipe-log-tail' });
        return h(
          'div',
          { class: 'nb2pipe-task', data: { task: t.name } },
          h('div', { class: 'nb2pipe-task-head' }, name, state),
          table,
          h('div', { class: 'nb2pipe-row' }, load),
          out,
          tail
        );
      })
    );
  }

  private async loadInputs(task: string, out: HTMLElement): Promise<void> {
    out.textContent = `loading the inputs of ${task}…`;
    out.textContent = await this.host.loadInputs(task);
  }

  /** States of the live run, else of the last one, with the end of each task's log. */
  showRuns(doc: IRuns): void {
    this.lastRuns = doc;
    const run = doc.active ?? doc.last;
    this.runTasks = new Map((run?.tasks ?? []).map(t => [t.name, t]));
    let text = '';
    if (!doc.ok) {
      text = `runs: ${doc.error ?? 'unknown error'}`;
    } else if (doc.active) {
      const s = doc.active.running ? 'running' : doc.active.exit_code === 0 ? 'finished' : `finished with exit status ${doc.active.exit_code}`;
      text = `run ${doc.active.run_id ?? '(starting)'}: ${s}`;
      if (!doc.active.running && doc.active.exit_code !== 0 && !doc.active.tasks.length) {
        text += `\n${doc.active.stderr_tail}`;
      }
    } else if (doc.last) {
      text = `last run ${doc.last.run_id}`;
    } else {
      text = 'not run yet: Run pipeline runs it here (nb2pipe run)';
    }
    this.runBox.textContent = text;
    this.runBox.dataset.running = doc.active?.running ? 'true' : 'false';
    for (const node of Array.from(this.node.querySelectorAll('.nb2pipe-task')) as HTMLElement[]) {
      const t = this.runTasks.get(node.dataset.task ?? '');
      const state = node.querySelector('.nb2pipe-task-state') as HTMLElement | null;
      if (state) {
        // The state set is open (a newer nb2pipe may add some): show it as it comes.
        state.textContent = t?.state ?? 'not run';
        state.dataset.state = t?.state ?? 'none';
      }
      const tail = node.querySelector('.nb2pipe-log-tail') as HTMLElement | null;
      if (tail) {
        const err = t?.error?.message ? `failed in cell ${(t.error.cell ?? 0) + 1}, line ${t.error.line}: ${t.error.message}\n` : '';
        tail.textContent = t?.log_tail || err ? `${err}${t?.log_tail ?? ''}` : '';
      }
    }
    for (const g of Array.from(this.graphBox.querySelectorAll('.nb2pipe-node')) as SVGGElement[]) {
      g.dataset.state = this.runTasks.get(g.dataset.task ?? '')?.state ?? 'none';
    }
  }

  /** The active cell's tags, and forms to add task / resource / secret tags. */
  renderCellTags(): void {
    const panel = this.host.current();
    const cell = panel?.content.activeCell;
    this.message.textContent = '';
    if (!panel || !cell) {
      this.cellBox.replaceChildren(h('div', { class: 'nb2pipe-none', text: 'No active cell.' }));
      return;
    }
    const model = cell.model;
    const index = panel.content.activeCellIndex;
    const chips = h('div', { class: 'nb2pipe-chips' });
    for (const tag of getTags(model)) {
      const chip = h('span', { class: 'nb2pipe-chip', text: tag, data: { tag } });
      const x = h('button', { class: 'nb2pipe-chip-remove', text: '×', title: `Remove ${tag}` });
      x.type = 'button';
      x.addEventListener('click', () => this.apply(() => (removeTag(model, tag), null)));
      chip.append(x);
      chips.append(chip);
    }
    if (!chips.childElementCount) {
      chips.append(h('span', { class: 'nb2pipe-none', text: 'no tags' }));
    }
    const taskName = input('task name', 'task');
    const cpu = input('cpu', 'cpu', 'CPU request, e.g. 2 or 500m');
    const memory = input('memory', 'memory', 'memory request, e.g. 4Gi');
    const gpu = input('gpu', 'gpu', 'number of GPUs, e.g. 1');
    const secret = input('Secret', 'secret', 'name of a Kubernetes Secret (never its value)');
    const key = input('key', 'secret-key', 'optional: one key of the Secret');
    const env = input('env var', 'secret-env', 'optional: the environment variable that gets the key');
    this.cellBox.replaceChildren(
      h('div', { class: 'nb2pipe-cell-label', text: `cell ${index + 1}` }),
      chips,
      h('div', { class: 'nb2pipe-row' }, field('Task name', taskName), button('Start a task here', 'start-task', () => this.apply(() => startTask(model, taskName.value)))),
      h(
        'div',
        { class: 'nb2pipe-row' },
        field('CPU', cpu),
        field('Memory', memory),
        field('GPUs', gpu),
        button('Set resources', 'set-resources', () =>
          this.apply(() => setResources(model, { cpu: cpu.value, memory: memory.value, gpu: gpu.value }))
        )
      ),
      h('div', { class: 'nb2pipe-row' }, field('Secret', secret), field('Key', key), field('Env var', env), button('Add secret', 'add-secret', () => this.apply(() => addSecret(model, secret.value, key.value, env.value)))),
      this.message
    );
  }

  private apply(change: () => string | null): void {
    const error = change();
    this.renderCellTags();
    this.message.textContent = error ?? 'Tag written; Refresh to see the new plan.';
    this.message.classList.toggle('nb2pipe-error-text', !!error);
  }

  /** The outcome of a convert is told in the status line (no toast): bring it into view. */
  revealStatus(): void {
    this.status.scrollIntoView({ block: 'nearest' });
  }

  get shownPanel(): NotebookPanel | null {
    return this.forPanel;
  }
}

/** The cell's number as the notebook shows it: counted from 1, markdown cells too. */
function cellNumber(d: IDiagnostic): number {
  const loc = d.location ?? {};
  return loc.cell_number ?? (loc.cell ?? 0) + 1;
}

/** Where a diagnostic points, named as the notebook shows the cell: its number, its
 * `[n]` prompt when it has run, and its first line. */
export function describeWhere(d: IDiagnostic): string {
  const loc = d.location;
  if (!loc || loc.cell === undefined || loc.cell === null) {
    return 'notebook';
  }
  let where = `cell ${cellNumber(d)}`;
  if (typeof loc.execution_count === 'number') {
    where += ` [${loc.execution_count}]`;
  }
  if (loc.cell_first_line) {
    const first = loc.cell_first_line.length > 40 ? `${loc.cell_first_line.slice(0, 40)}…` : loc.cell_first_line;
    where += ` \`${first}\``;
  }
  if (loc.line) {
    where += `, line ${loc.line}`;
  }
  if (loc.tag) {
    where += `, tag ${loc.tag}`;
  }
  return where;
}

/** The line the diagnostic points at, with a caret under its column. */
function quote(d: IDiagnostic): HTMLElement | null {
  const loc = d.location;
  if (!loc?.source_line || !loc.line) {
    return null;
  }
  let text = loc.source_line.replace(/\t/g, '    ');
  if (loc.column) {
    // The column counts UTF-8 bytes: find the character it falls on.
    const bytes = new TextEncoder().encode(loc.source_line);
    const before = new TextDecoder().decode(bytes.slice(0, Math.max(0, loc.column - 1))).replace(/\uFFFD$/, '');
    const at = before.replace(/\t/g, '    ').length;
    text += `\n${' '.repeat(at)}^`;
  }
  return h('pre', { class: 'nb2pipe-quote', text });
}
