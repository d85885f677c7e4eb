import {
  ILabShell,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Dialog, Notification, ToolbarButton, showDialog } from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { INotebookModel, INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IDisposable } from '@lumino/disposable';
import { Widget } from '@lumino/widgets';

import { IConvertOptions, IResult, call } from './api';
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
  optional: [ILabShell],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, labShell: ILabShell | null) => {
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

    const inspect = async (panel: NotebookPanel, convert?: IResult) => {
      const path = await saved(panel);
      const result = await call('inspect', { path, profile: options.profile });
      nb2pipePanel.showResult(panel, result, convert);
      return result;
    };

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
      }
    };
    const nb2pipePanel = new Nb2pipePanel(host);
    app.shell.add(nb2pipePanel, 'right', { rank: 900 });

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
      if (result.ok) {
        Notification.success(`nb2pipe: bundle written to ${result.bundle_path ?? result.bundle}`, { autoClose: 5000 });
      } else {
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
