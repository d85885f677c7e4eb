import { InputDialog } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';

import { IPlan } from './api';
import { getTags, joinTaskAbove, startTask } from './tags';

/** A task's colour: spread around the hue circle in plan order, the same on every redraw. */
export function taskColor(index: number): string {
  return `hsl(${(index * 137) % 360}, 55%, 42%)`;
}

/** What a code cell is in the plan: a task's (first) cell, skipped, or before any task. */
export function cellRoles(plan: IPlan, tags: string[][]): { task?: string; first?: boolean; color?: string; role: string }[] {
  const owner = new Map<number, number>();
  plan.tasks.forEach((t, i) => t.cells.forEach(c => owner.set(c, i)));
  return tags.map((cellTags, c) => {
    const i = owner.get(c);
    if (i !== undefined) {
      const t = plan.tasks[i];
      return { task: t.name, first: Math.min(...t.cells) === c, color: taskColor(i), role: 'task' };
    }
    if (cellTags.includes('skip')) {
      return { role: 'skipped' };
    }
    if (cellTags.includes('imports') || cellTags.includes('parameters')) {
      return { role: 'prelude' };
    }
    return { role: 'outside' };
  });
}

const MARKER = 'nb2pipe-cell-marker';

/** Marks each code cell with its task (colour at its edge, name on the task's first
 * cell) or as skipped / prelude; a marker's click offers to start or join a task. */
export function markCells(panel: NotebookPanel, plan: IPlan | null, changed: () => void): void {
  const widgets = panel.content.widgets;
  const roles = plan ? cellRoles(plan, widgets.map(w => getTags(w.model))) : [];
  widgets.forEach((w, c) => {
    w.node.querySelector(`:scope > .${MARKER}`)?.remove();
    w.removeClass('nb2pipe-cell-marked');
    w.node.style.removeProperty('--nb2pipe-task-color');
    delete w.node.dataset.nb2pipeTask;
    const r = roles[c];
    if (!r || w.model.type !== 'code') {
      return;
    }
    let text: string;
    if (r.task) {
      w.addClass('nb2pipe-cell-marked');
      w.node.style.setProperty('--nb2pipe-task-color', r.color!);
      w.node.dataset.nb2pipeTask = r.task;
      text = r.first ? `task ${r.task}` : r.task;
    } else {
      text = r.role === 'skipped' ? 'skipped' : r.role === 'prelude' ? 'prelude (every task)' : 'not in a task';
    }
    const marker = document.createElement('button');
    marker.type = 'button';
    marker.className = MARKER;
    marker.dataset.role = r.first ? 'first' : r.role;
    marker.textContent = text; // textContent: task names come from the notebook
    marker.title = 'nb2pipe: start a task here, or join the task above';
    marker.addEventListener('click', ev => {
      ev.stopPropagation();
      void cellMenu(w.model, changed);
    });
    w.node.append(marker);
  });
}

async function cellMenu(model: any, changed: () => void): Promise<void> {
  const choice = await InputDialog.getItem({
    title: 'nb2pipe: this cell',
    items: ['Start a task here', 'Join the task above'],
    current: 0
  });
  if (!choice.button.accept || !choice.value) {
    return;
  }
  if (choice.value === 'Join the task above') {
    joinTaskAbove(model);
  } else {
    const name = await InputDialog.getText({ title: 'nb2pipe: name of the new task', placeholder: 'task name' });
    if (!name.button.accept || !name.value || startTask(model, name.value) !== null) {
      return;
    }
  }
  changed();
}

/** Selects the task's cells in the notebook (clicking a task in the graph). */
export function selectTaskCells(panel: NotebookPanel, plan: IPlan, task: string): void {
  const t = plan.tasks.find(x => x.name === task);
  const nb = panel.content;
  if (!t || !t.cells.length) {
    return;
  }
  for (const c of t.cells) {
    const w = nb.widgets[c];
    if (w) {
      nb.select(w);
    }
  }
}
