import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Dialog, Notification, ToolbarButton, showDialog } from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { INotebookModel, INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';
import { Widget } from '@lumino/widgets';

import { IConvertOptions, IResult, IRuns, call } from './api';
import { markCells, selectTaskCells } from './cells';
import { IPanelHost, Nb2pipePanel } from './panel';

const TARGETS = ['airflow', 'argo', 'tekton', 'kfp', 'all'];

/** The dialog body: target, profile, output folder. */
class ConvertForm extends Widget {
  constructor(defaults: IConvertOptions) {
    super();
    this.addClass('nb2pipe-form');
    const target = document.createElement('select');
    target.name = 'target';
    target.className = 'jp-mod-styled';
    for (const t of TARGETS) {
      const o = document.createElement('option');
      o.value = t;
      o.textContent = t;
      o.selected = t === defaults.target;
      target.append(o);
    }
    const profile = document.createElement('input');
    profile.name = 'profile';
    profile.className = 'jp-mod-styled';
    profile.placeholder = '(none)';
    profile.value = defaults.profile;
    const out = document.createElement('input');
    out.name = 'out';
    out.className = 'jp-mod-styled';
    out.value = defaults.out;
    const row = (label: string, field: HTMLElement, help: string) => {
      const l = document.createElement('label');
      l.className = 'nb2pipe-form-row';
      const s = document.createElement('span');
      s.textContent = label;
      const hint = document.createElement('small');
      hint.textContent = help;
      l.append(s, field, hint);
      return l;
    };
    this.node.append(
      row('Target', target, 'airflow, argo, tekton, kfp, or all of them'),
      row('Profile', profile, 'a [profile.NAME] from nb2pipe.toml, or empty'),
      row('Output folder', out, 'relative to the notebook; the bundle goes to <folder>/<pipeline>/')
    );
  }

  getValue(): IConvertOptions {
    const v = (name: string) => (this.node.querySelector(`[name="${name}"]`) as HTMLInputElement).value.trim();
    return { target: v('target'), profile: v('profile'), out: v('out') };
  }
}

class Nb2pipeButton implements DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel> {
  constructor(private run: (panel: NotebookPanel) => void) {}

  createNew(panel: NotebookPanel): IDisposable {
    const button = new ToolbarButton({
      className: 'nb2pipe-toolbar-button',
      label: 'nb2pipe',
      tooltip: 'nb2pipe: show the pipeline and convert this notebook',
      onClick: () => this.run(panel)
    });
    panel.toolbar.insertAfter('cellType', 'nb2pipe', button);
    return button;
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyterlab-nb2pipe:plugin',
  description: 'nb2pipe: show a notebook’s pipeline and its problems, write the bundle',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILabShell, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    labShell: ILabShell | null,
    restorer: ILayoutRestorer | null
  ) => {
    let options: IConvertOptions = { target: 'airflow', profile: '', out: 'build' };

    // The binary reads the notebook from disk: save what the user sees first.
    const saved = async (panel: NotebookPanel) => {
      if (panel.context.model.dirty) {
        await panel.context.save();
      }
      return panel.context.path;
    };

    const goToCell = async (panel: NotebookPanel, index: number) => {
      const nb = panel.content;
      if (index < 0 || index >= nb.widgets.length) {
        return;
      }
      app.shell.activateById(panel.id);
      nb.mode = 'command';
      nb.activeCellIndex = index;
      nb.deselectAll();
      const cell = nb.widgets[index];
      await nb.scrollToCell(cell, 'center');
      cell.addClass('nb2pipe-flash');
      setTimeout(() => cell.removeClass('nb2pipe-flash'), 1500);
    };

    // Inspections overlap (a refresh, one after a tag edit): only the latest is shown.
    let latest = 0;
    const inspect = async (panel: NotebookPanel, convert?: IResult, auto = false) => {
      const mine = ++latest;
      const path = await saved(panel);
      const result = await call('inspect', { path, profile: options.profile });
      const runs = (await call('runs', { path, out: options.out })) as IRuns;
      if (mine !== latest) {
        return result;
      }
      nb2pipePanel.showResult(panel, result, convert, auto);
      markCells(panel, result.plan ?? null, () => {
        nb2pipePanel.renderCellTags();
        later(panel);
      });
      watchTags(panel);
      nb2pipePanel.showRuns(runs);
      return result;
    };

    // Tags changed (here, in the property inspector, by the markers): inspect again soon.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const later = (panel: NotebookPanel) => {
      clearTimeout(timer);
      timer = setTimeout(() => void inspect(panel, undefined, true), 700);
    };
    const watched = new WeakSet<object>();
    const watchTags = (panel: NotebookPanel) => {
      for (const w of panel.content.widgets) {
        if (!watched.has(w.model)) {
          watched.add(w.model);
          w.model.metadataChanged.connect((_, change) => {
            if (change.key === 'tags') {
              later(panel);
            }
          });
        }
      }
    };

    // Polls the live run's states until it is over.
    let polling = false;
    const follow = async (panel: NotebookPanel) => {
      if (polling) {
        return;
      }
      polling = true;
      try {
        for (;;) {
          const doc = (await call('runs', { path: panel.context.path, out: options.out })) as IRuns;
          if (nb2pipePanel.shownPanel === panel) {
            nb2pipePanel.showRuns(doc);
          }
          if (!doc.ok || !doc.active?.running) {
            return;
          }
          await new Promise(r => setTimeout(r, 700));
        }
      } finally {
        polling = false;
      }
    };

    /** `line` run in the kernel as a cell would be, out of history; its text output. */
    const inKernel = async (panel: NotebookPanel, code: string): Promise<string> => {
      await panel.sessionContext.ready;
      const kernel = panel.sessionContext.session?.kernel;
      if (!kernel) {
        return 'the notebook has no kernel: start one first';
      }
      let text = '';
      const future = kernel.requestExecute({ code, store_history: false, silent: false });
      future.onIOPub = msg => {
        const c: any = msg.content;
        if (msg.header.msg_type === 'stream') {
          text += c.text;
        } else if (msg.header.msg_type === 'error') {
          text += `${c.ename}: ${c.evalue}\n`;
        }
      };
      await future.done;
      return text.trim();
    };
    // Text for a Python string literal in a magic's line (shlex reads it back).
    const shq = (s: string) => `'${s.replace(/'/g, `'"'"'`)}'`;

    const host: IPanelHost = {
      current: () => tracker.currentWidget,
      goToCell,
      refresh: async () => {
        const panel = tracker.currentWidget;
        if (panel) {
          await inspect(panel);
        } else {
          nb2pipePanel.showEmpty('No notebook is open.');
        }
      },
      convert: async () => {
        const panel = tracker.currentWidget;
        if (panel) {
          await openDialog(panel);
        }
      },
      selectTask: (panel, task) => {
        const plan = nb2pipePanel.plan;
        if (plan) {
          selectTaskCells(panel, plan, task);
        }
      },
      runPipeline: async () => {
        const panel = tracker.currentWidget;
        if (!panel) {
          return;
        }
        const path = await saved(panel);
        if (nb2pipePanel.shownPanel !== panel) {
          await inspect(panel);
        }
        const started = await call('run', { path, out: options.out });
        if (!started.ok) {
          nb2pipePanel.showRuns({ ok: false, error: started.error });
          return;
        }
        await follow(panel);
      },
      loadInputs: async (task: string) => {
        const panel = nb2pipePanel.shownPanel ?? tracker.currentWidget;
        if (!panel) {
          return 'no notebook';
        }
        const runs = `${options.out || 'build'}/nb2pipe-data`;
        const pipeline = nb2pipePanel.plan ? ` --pipeline ${shq(nb2pipePanel.plan.pipeline)}` : '';
        return inKernel(panel, `%load_ext nb2pipe\n%nb2pipe inputs ${shq(task)} --runs ${shq(runs)}${pipeline}`);
      }
    };
    const nb2pipePanel = new Nb2pipePanel(host);
    app.shell.add(nb2pipePanel, 'right', { rank: 900 });
    // The panel comes back where it was when the page (and the notebook) is reopened.
    if (restorer) {
      restorer.add(nb2pipePanel, 'nb2pipe-panel');
    }
    // ... showing the notebook's pipeline again.
    void app.restored.then(async () => {
      const panel = tracker.currentWidget;
      if (panel && nb2pipePanel.isVisible) {
        await panel.context.ready;
        await inspect(panel);
      }
    });

    const showPanel = () => {
      if (labShell) {
        labShell.expandRight();
      }
      app.shell.activateById(nb2pipePanel.id);
    };

    const convert = async (panel: NotebookPanel) => {
      const path = await saved(panel);
      const result = await call('convert', { path, target: options.target, profile: options.profile, out: options.out });
      await inspect(panel, result);
      showPanel();
      nb2pipePanel.revealStatus();
      // The panel's status line says how it went; a toast would cover the panel's bottom.
      // Only a failure the user cannot see (the panel did not open) gets one.
      if (!result.ok && !nb2pipePanel.isVisible) {
        const n = result.diagnostics?.length ?? 0;
        Notification.error(result.error ? `nb2pipe: ${result.error}` : `nb2pipe: ${n} problem(s), see the nb2pipe panel`, {
          autoClose: 8000
        });
      }
    };

    const openDialog = async (panel: NotebookPanel) => {
      const form = new ConvertForm(options);
      const choice = await showDialog({
        title: 'nb2pipe: convert this notebook',
        body: form,
        buttons: [
          Dialog.cancelButton(),
          Dialog.okButton({ label: 'Inspect', className: 'nb2pipe-inspect', displayType: 'default' }),
          Dialog.okButton({ label: 'Convert', className: 'nb2pipe-convert' })
        ],
        focusNodeSelector: 'select'
      });
      if (!choice.button.accept) {
        return;
      }
      options = form.getValue();
      if (choice.button.label === 'Convert') {
        await convert(panel);
      } else {
        await inspect(panel);
        showPanel();
      }
    };

    app.docRegistry.addWidgetExtension('Notebook', new Nb2pipeButton(p => void openDialog(p)));

    // Keep the "tags of the active cell" section in step with the notebook.
    tracker.activeCellChanged.connect(() => nb2pipePanel.renderCellTags());
    tracker.currentChanged.connect(() => {
      const panel = tracker.currentWidget;
      if (panel && nb2pipePanel.isVisible && panel !== nb2pipePanel.shownPanel) {
        void panel.context.ready.then(() => inspect(panel));
      } else {
        nb2pipePanel.renderCellTags();
      }
    });

    app.commands.addCommand('nb2pipe:open', {
      label: 'nb2pipe: Convert Notebook…',
      isEnabled: () => !!tracker.currentWidget,
      execute: () => (tracker.currentWidget ? openDialog(tracker.currentWidget) : undefined)
    });
    app.commands.addCommand('nb2pipe:inspect', {
      label: 'nb2pipe: Show Pipeline',
      isEnabled: () => !!tracker.currentWidget,
      execute: async () => {
        showPanel();
        await host.refresh();
      }
    });
  }
};

export default plugin;
