// End to end in a real browser: JupyterLab on 127.0.0.1 with fixture notebooks, Debian's
// Chromium driven by playwright-core. Run by tests/run.sh (`node --test`), which sets:
//   NB2PIPE_VENV_BIN    the test venv's bin (jupyter, with both wheels installed)
//   NB2PIPE_NODE_PATH   node_modules holding playwright-core
//   NB2PIPE_ARTEFACTS   where screenshots and the server log go
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..', '..');
const VENV_BIN = process.env.NB2PIPE_VENV_BIN;
const ARTEFACTS = process.env.NB2PIPE_ARTEFACTS || fs.mkdtempSync(path.join(os.tmpdir(), 'nb2pipe-e2e-shots-'));
const CHROMIUM = process.env.NB2PIPE_CHROMIUM || '/usr/bin/chromium';
const { chromium } = require(path.join(process.env.NB2PIPE_NODE_PATH || '', 'playwright-core'));

const sleep = ms => new Promise(r => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// churn.ipynb with ten tall markdown cells in front and an unknown tag on its last cell,
// so the diagnostic's cell starts out of view.
function writeBrokenChurn(dest) {
  const nb = JSON.parse(fs.readFileSync(path.join(REPO, 'fixtures/notebooks/churn.ipynb'), 'utf8'));
  const filler = Array.from({ length: 10 }, (_, i) => ({
    cell_type: 'markdown',
    metadata: {},
    source: [`## Notes ${i}\n`, '\n', 'Some text.\n'.repeat(6)]
  }));
  nb.cells.splice(1, 0, ...filler);
  const last = nb.cells[nb.cells.length - 1];
  last.metadata.tags = [...(last.metadata.tags || []), 'cpus:2'];
  fs.writeFileSync(dest, JSON.stringify(nb, null, 1));
  return nb.cells.length - 1;
}

// Three tasks of plain Python (the test venv has no pandas), the last one skipped at first.
function writePlain(dest) {
  const cell = (source, tags) => ({ cell_type: 'code', execution_count: null, metadata: { tags }, outputs: [], source });
  const nb = {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { name: 'python3', display_name: 'Python 3', language: 'python' } },
    cells: [
      cell("numbers = [3, 1, 2]\nlabel = 'sum'\nprint('made', numbers)", ['task:make']),
      cell('import time\ntime.sleep(2)\ntotal = sum(numbers)\nprint(label, total)', ['task:total']),
      cell('print(total * 2)', []),
      cell("print('scratch')", ['skip'])
    ]
  };
  fs.writeFileSync(dest, JSON.stringify(nb, null, 1));
}

// Five tasks: a diamond, and a report that also reads what load made (an edge past two rows).
function writeFive(dest) {
  const cell = (source, tags) => ({ cell_type: 'code', execution_count: null, metadata: { tags }, outputs: [], source });
  const nb = {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { name: 'python3', display_name: 'Python 3', language: 'python' } },
    cells: [
      cell('raw = [1, 2, 3]', ['task:load']),
      cell('cleaned = [x for x in raw if x > 1]', ['task:clean']),
      cell("feature_table = [x * 2 for x in raw]\nfeature_names = ['double']", ['task:features']),
      cell('model = sum(cleaned) + sum(feature_table)\nscore = len(feature_names)', ['task:train']),
      cell('print(len(raw), model, score)', ['task:report'])
    ]
  };
  fs.writeFileSync(dest, JSON.stringify(nb, null, 1));
}

async function waitHttp(url, timeoutMs, proc) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) {
      throw new Error(`jupyter lab exited with ${proc.exitCode}`);
    }
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
      if (r.status < 500) {
        return;
      }
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = String(e);
    }
    await sleep(300);
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms: ${last}`);
}

test('button → convert to Airflow → panel → diagnostic → its cell → tags', { timeout: 300_000 }, async t => {
  assert.ok(VENV_BIN && fs.existsSync(path.join(VENV_BIN, 'jupyter')), 'NB2PIPE_VENV_BIN must hold jupyter');
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
  fs.mkdirSync(ARTEFACTS, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nb2pipe-e2e-'));
  const root = path.join(tmp, 'root');
  fs.mkdirSync(root);
  // A pinned project, as users have: the panel then shows no unpinned-requirement warning.
  fs.writeFileSync(path.join(root, 'requirements.txt'), 'numpy==2.1.3\npandas==2.2.3\npyarrow==18.1.0\nscikit-learn==1.5.2\n');
  // ... and a registry, so no plan warns that images would come from Docker Hub (NB303).
  fs.writeFileSync(path.join(root, 'nb2pipe.toml'), 'registry = "registry.example.com/ml"\n');
  fs.copyFileSync(path.join(REPO, 'fixtures/notebooks/churn.ipynb'), path.join(root, 'churn.ipynb'));
  fs.copyFileSync(path.join(REPO, 'fixtures/broken/NB020_unknown_tag.ipynb'), path.join(root, 'NB020_unknown_tag.ipynb'));
  const lastCell = writeBrokenChurn(path.join(root, 'churn_broken.ipynb'));
  writePlain(path.join(root, 'plain.ipynb'));
  writeFive(path.join(root, 'five.ipynb'));

  // JupyterLab asks whether to fetch its news feed; the answer is no (loopback only).
  const settings = path.join(tmp, 'settings', '@jupyterlab', 'apputils-extension');
  fs.mkdirSync(settings, { recursive: true });
  fs.writeFileSync(path.join(settings, 'notification.jupyterlab-settings'), JSON.stringify({ fetchNews: 'false' }));

  const port = await freePort();
  const token = crypto.randomBytes(16).toString('hex');
  const log = fs.openSync(path.join(ARTEFACTS, 'jupyterlab.log'), 'w');
  const lab = spawn(
    path.join(VENV_BIN, 'jupyter'),
    [
      'lab', '--no-browser', '--ip=127.0.0.1', `--port=${port}`, `--IdentityProvider.token=${token}`,
      `--ServerApp.root_dir=${root}`, '--allow-root',
      '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
      `--LabServerApp.workspaces_dir=${path.join(tmp, 'workspaces')}`,
      `--LabServerApp.user_settings_dir=${path.join(tmp, 'settings')}`,
      // No news feed or update check: the test talks to 127.0.0.1 only.
      '--LabApp.news_url=None'
    ],
    {
      detached: true,
      stdio: ['ignore', log, log],
      env: {
        ...process.env,
        PATH: `${VENV_BIN}:${process.env.PATH}`,
        JUPYTER_CONFIG_DIR: path.join(tmp, 'config'),
        JUPYTER_RUNTIME_DIR: path.join(tmp, 'runtime'),
        HOME: path.join(tmp, 'home')
      }
    }
  );
  const base = `http://127.0.0.1:${port}`;
  let context;
  try {
    await waitHttp(`${base}/api/status?token=${token}`, 60_000, lab);
    context = await chromium.launchPersistentContext(path.join(tmp, 'chromium-profile'), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 900 },
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'
      ]
    });
    context.setDefaultTimeout(30_000);
    const page = context.pages()[0] || (await context.newPage());
    page.on('pageerror', e => console.error('page error:', e.message));
    const shot = async name => {
      const file = path.join(ARTEFACTS, `${name}.png`);
      await page.screenshot({ path: file });
      console.log(`screenshot: ${file}`);
    };
    // As drawn: no edge passes over a box other than its ends, no label sits on a box.
    const overBoxes = () =>
      panel.locator('.nb2pipe-graph').evaluate(svg => {
        const boxes = [...svg.querySelectorAll('.nb2pipe-node')].map(g => [g.dataset.task, g.querySelector('rect').getBBox()]);
        const inside = (p, b) => p.x > b.x && p.x < b.x + b.width && p.y > b.y && p.y < b.y + b.height;
        const bad = [];
        for (const e of svg.querySelectorAll('.nb2pipe-edge')) {
          const [from, to] = e.querySelector('title').textContent.split(':')[0].split(' → ');
          for (let l = 0; l <= e.getTotalLength(); l += 2) {
            const p = e.getPointAtLength(l);
            for (const [name, b] of boxes) {
              if (name !== from && name !== to && inside(p, b)) bad.push(`${from}→${to} over ${name}`);
            }
          }
        }
        for (const t of svg.querySelectorAll('.nb2pipe-edge-label')) {
          const r = t.getBBox();
          for (const [name, b] of boxes) {
            if (r.x < b.x + b.width && b.x < r.x + r.width && r.y < b.y + b.height && b.y < r.y + r.height) bad.push(`label ${t.textContent} on ${name}`);
          }
        }
        return [...new Set(bad)];
      });
    // A convert's outcome goes to the panel's status line, not a toast over the panel.
    const noToast = async () => {
      await sleep(1500);
      assert.equal(await page.locator('.Toastify__toast').count(), 0, 'a notification toast is shown');
    };
    // Hidden dock tabs are scaled to nothing, not display:none: pick the visible one.
    const notebook = () => page.locator('.jp-NotebookPanel:visible');
    const openNotebook = async name => {
      // ?reset: a fresh workspace, so only this notebook is open.
      await page.goto(`${base}/lab/tree/${name}?reset&token=${token}`, { timeout: 60_000 });
      await notebook().locator('.nb2pipe-toolbar-button').waitFor({ timeout: 60_000 });
      await notebook().locator('.jp-Cell').first().waitFor({ timeout: 60_000 });
      await page.locator('.jp-NotebookPanel .jp-Spinner').waitFor({ state: 'hidden', timeout: 60_000 });
      // The kernel is not needed, but its start changes the layout: let it settle first.
      await page.getByText(/\| Idle/).first().waitFor({ timeout: 60_000 }).catch(() => {});
    };
    const convertTo = async (target, out) => {
      await notebook().locator('.nb2pipe-toolbar-button button, button.nb2pipe-toolbar-button').first().click();
      const dialog = page.locator('.jp-Dialog');
      await dialog.waitFor();
      await dialog.locator('select[name="target"]').selectOption(target);
      await dialog.locator('input[name="out"]').fill(out);
      return dialog;
    };
    const panel = page.locator('#nb2pipe-panel');
    // Each step screenshots the page when it fails.
    const step = (name, fn) =>
      t.test(name, async () => {
        try {
          await fn();
        } catch (e) {
          await shot(`failed-${name.replace(/\W+/g, '-')}`).catch(() => {});
          throw e;
        }
      });

    await step('the button converts churn.ipynb to Airflow', async () => {
      await openNotebook('churn.ipynb');
      await shot('01-notebook-with-button');
      const dialog = await convertTo('airflow', 'pipelines');
      await shot('02-dialog');
      await dialog.locator('button.nb2pipe-convert').click();
      await panel.locator('.nb2pipe-status[data-convert="ok"]').waitFor();
      const dag = path.join(root, 'pipelines', 'churn', 'airflow', 'churn.py');
      assert.ok(fs.existsSync(dag), `${dag} was not written`);
      assert.match(fs.readFileSync(dag, 'utf8'), /KubernetesPodOperator/);
      const plan = JSON.parse(fs.readFileSync(path.join(root, 'pipelines', 'churn', 'plan.json'), 'utf8'));
      assert.deepEqual(plan.tasks.map(x => x.name), ['load', 'clean', 'train', 'evaluate']);
      assert.match(await panel.locator('.nb2pipe-status').innerText(), /pipelines\/churn/);
      await noToast();
    });

    await step('the panel shows the task graph, inputs, outputs, requirements, settings', async () => {
      assert.equal(await panel.locator('.nb2pipe-graph .nb2pipe-node').count(), 4);
      assert.ok((await panel.locator('.nb2pipe-graph .nb2pipe-edge').count()) >= 3);
      assert.deepEqual(await overBoxes(), []);
      await panel.locator('.nb2pipe-graph').screenshot({ path: path.join(ARTEFACTS, '03b-graph.png') });
      const train = panel.locator('.nb2pipe-task[data-task="train"]');
      const text = await train.innerText();
      assert.match(text, /X ← clean/);
      assert.match(text, /model/);
      assert.match(text, /scikit-learn/);
      assert.match(text, /cpu=2, memory=4Gi/);
      assert.match(text, /retries\s+2/);
      assert.match(await panel.locator('.nb2pipe-diagnostics').innerText(), /No problems found/);
      await shot('03-panel-after-convert');
    });

    await step('five tasks: no edge or label over a box as drawn', async () => {
      await openNotebook('five.ipynb');
      await notebook().locator('.nb2pipe-toolbar-button button, button.nb2pipe-toolbar-button').first().click();
      await page.locator('.jp-Dialog button.nb2pipe-inspect').click();
      await panel.locator('.nb2pipe-graph .nb2pipe-node[data-task="report"]').waitFor();
      assert.equal(await panel.locator('.nb2pipe-graph .nb2pipe-edge').count(), 6);
      assert.deepEqual(await overBoxes(), []);
      await panel.locator('.nb2pipe-graph').screenshot({ path: path.join(ARTEFACTS, '03c-graph-five-tasks.png') });
    });

    await step('a diagnostic leads to its cell', async () => {
      await openNotebook('churn_broken.ipynb');
      const dialog = await convertTo('airflow', 'build');
      await dialog.locator('button.nb2pipe-convert').click();
      await panel.locator('.nb2pipe-status[data-convert="failed"]').waitFor();
      await noToast();
      assert.ok(!fs.existsSync(path.join(root, 'build', 'churn_broken')), 'a failed convert must write nothing');
      const diag = panel.locator(`.nb2pipe-diagnostic[data-code="NB020"][data-cell="${lastCell}"]`);
      await diag.waitFor();
      assert.match(await diag.innerText(), /cpus:2/);
      // Named as the notebook shows it: counted from 1 with the markdown cells, and its first line.
      assert.match(await diag.locator('.nb2pipe-where').innerText(), new RegExp(`^cell ${lastCell + 1} .*\`.+\`, tag cpus:2$`));
      const target = notebook().locator('.jp-Cell').nth(lastCell);
      const scroller = notebook().locator('.jp-WindowedPanel-outer');
      const inView = async () => {
        const [c, s] = [await target.boundingBox(), await scroller.boundingBox()];
        return !!c && !!s && c.y < s.y + s.height && c.y + c.height > s.y;
      };
      assert.equal(await inView(), false, 'the broken cell should start out of view');
      await shot('04-diagnostic-in-panel');
      await diag.click();
      await page.waitForFunction(
        i => {
          const nb = [...document.querySelectorAll('.jp-NotebookPanel')].find(n => n.getBoundingClientRect().width > 0);
          return nb?.querySelectorAll('.jp-Cell')[i]?.classList.contains('jp-mod-active');
        },
        lastCell
      );
      const deadline = Date.now() + 10_000;
      while (!(await inView()) && Date.now() < deadline) {
        await sleep(200);
      }
      assert.ok(await inView(), 'the cell was not scrolled into view');
      assert.match(await target.innerText(), /accuracy/);
      await shot('05-followed-to-cell');
    });

    await step('tags written from the panel fix the notebook', async () => {
      const tags = panel.locator('.nb2pipe-cell-tags');
      assert.match(await tags.locator('.nb2pipe-cell-label').innerText(), new RegExp(`cell ${lastCell + 1}$`));
      await tags.locator('.nb2pipe-chip[data-tag="cpus:2"] button').click();
      await tags.locator('input[name="cpu"]').fill('2');
      await tags.locator('input[name="memory"]').fill('8Gi');
      await tags.locator('button[data-nb2pipe="set-resources"]').click();
      await tags.locator('input[name="secret"]').fill('db');
      await tags.locator('input[name="secret-key"]').fill('password');
      await tags.locator('input[name="secret-env"]').fill('DB_PASSWORD');
      await tags.locator('button[data-nb2pipe="add-secret"]').click();
      // A bad quantity is refused in the panel, before it becomes a tag.
      await tags.locator('input[name="memory"]').fill('4GB');
      await tags.locator('button[data-nb2pipe="set-resources"]').click();
      assert.match(await tags.locator('.nb2pipe-message').innerText(), /not a valid memory/);
      // Start a task at the untagged cell that splits the data (churn's cell 5).
      const split = notebook().locator('.jp-Cell').nth(5 + 10);
      await split.scrollIntoViewIfNeeded();
      await split.locator('.jp-InputPrompt').click();
      await page.waitForFunction(() => document.querySelector('#nb2pipe-panel .nb2pipe-cell-label')?.textContent === 'cell 16');
      await tags.locator('input[name="task"]').fill('split');
      await tags.locator('button[data-nb2pipe="start-task"]').click();
      await panel.locator('button[data-nb2pipe="refresh"]').click();
      await panel.locator('.nb2pipe-task[data-task="split"]').waitFor();
      assert.match(await panel.locator('.nb2pipe-diagnostics').innerText(), /No problems found/);
      const evaluate = await panel.locator('.nb2pipe-task[data-task="evaluate"]').innerText();
      assert.match(evaluate, /cpu=2, memory=8Gi/);
      assert.match(evaluate, /db:password → DB_PASSWORD/);
      // Refresh saved the notebook: the tags are ordinary cell tags on disk.
      const saved = JSON.parse(fs.readFileSync(path.join(root, 'churn_broken.ipynb'), 'utf8'));
      assert.deepEqual(saved.cells[lastCell].metadata.tags, ['task:evaluate', 'metrics', 'cpu:2', 'memory:8Gi', 'secret:db:password:DB_PASSWORD']);
      assert.deepEqual(saved.cells[15].metadata.tags, ['task:split']);
      await shot('06-tags-from-panel');
      await tags.scrollIntoViewIfNeeded();
      await tags.screenshot({ path: path.join(ARTEFACTS, '07-cell-tags-section.png') });
    });

    await step('the exporter is in File → Save and Export Notebook As', async () => {
      await notebook().locator('.jp-Cell').first().click();
      await page.locator('.lm-MenuBar-itemLabel', { hasText: /^File$/ }).click();
      await page.locator('.lm-Menu-itemLabel', { hasText: 'Save and Export Notebook As' }).hover();
      const item = page.locator('.lm-Menu-itemLabel', { hasText: /nb2pipe/i });
      await item.waitFor();
      await shot('08-export-menu');
      await page.keyboard.press('Escape');
      await page.keyboard.press('Escape');
    });

    await step('cells show their task; Run pipeline shows live states; inputs load into the kernel', async () => {
      await openNotebook('plain.ipynb');
      const dialog = page.locator('.jp-Dialog');
      await notebook().locator('.nb2pipe-toolbar-button button, button.nb2pipe-toolbar-button').first().click();
      await dialog.locator('button.nb2pipe-inspect').click();
      await panel.locator('.nb2pipe-task[data-task="total"]').waitFor();
      // Every code cell says what it is in the pipeline.
      const cells = notebook().locator('.jp-Cell');
      const marker = i => cells.nth(i).locator('.nb2pipe-cell-marker');
      await marker(0).waitFor();
      assert.equal(await marker(0).innerText(), 'task make');
      assert.equal(await marker(1).innerText(), 'task total');
      assert.equal(await marker(2).innerText(), 'total');
      assert.equal(await marker(3).innerText(), 'skipped');
      assert.equal(await cells.nth(2).getAttribute('data-nb2pipe-task'), 'total');
      assert.match(await panel.locator('.nb2pipe-run-status').innerText(), /not run yet/);
      // Cells are numbered as the notebook shows them, from 1.
      assert.match(await panel.locator('.nb2pipe-task[data-task="total"]').innerText(), /cells\s+2, 3/);
      await shot('09-cells-marked-with-tasks');
      // The graph's edge names the values it carries.
      assert.match(await panel.locator('.nb2pipe-graph .nb2pipe-edge-label').first().textContent(), /label, numbers/);
      await panel.locator('button[data-nb2pipe="run"]').click();
      const state = name => panel.locator(`.nb2pipe-task[data-task="${name}"] .nb2pipe-task-state`);
      await panel.locator('.nb2pipe-task[data-task="total"] .nb2pipe-task-state[data-state="running"]').waitFor({ timeout: 60_000 });
      assert.equal(await state('make').getAttribute('data-state'), 'succeeded');
      await shot('10-run-live-states');
      await panel.locator('.nb2pipe-run-status[data-running="false"]').waitFor({ timeout: 60_000 });
      assert.equal(await state('total').innerText(), 'succeeded');
      assert.match(await panel.locator('.nb2pipe-task[data-task="total"] .nb2pipe-log-tail').innerText(), /sum 6/);
      assert.equal(await panel.locator('.nb2pipe-graph .nb2pipe-node[data-task="total"]').getAttribute('data-state'), 'succeeded');
      // Load inputs: %nb2pipe inputs in the notebook's own kernel.
      await page.getByText(/\| Idle/).first().waitFor({ timeout: 60_000 }).catch(() => {});
      await panel.locator('.nb2pipe-task[data-task="total"] button[data-nb2pipe="load-inputs"]').click();
      const out = panel.locator('.nb2pipe-task[data-task="total"] .nb2pipe-kernel-out');
      await page.waitForFunction(() =>
        /inputs of task 'total'/.test(document.querySelector('#nb2pipe-panel .nb2pipe-task[data-task="total"] .nb2pipe-kernel-out')?.textContent || '')
      , null, { timeout: 60_000 });
      assert.match(await out.innerText(), /label \(str\), numbers \(list\)/);
      await shot('11-inputs-loaded-into-kernel');
      // A task clicked in the graph selects its cells.
      await panel.locator('.nb2pipe-graph .nb2pipe-node[data-task="total"]').click();
      await page.waitForFunction(() => {
        const nb = [...document.querySelectorAll('.jp-NotebookPanel')].find(n => n.getBoundingClientRect().width > 0);
        const c = nb?.querySelectorAll('.jp-Cell');
        return c && c[1].classList.contains('jp-mod-selected') && c[2].classList.contains('jp-mod-selected') && !c[0].classList.contains('jp-mod-selected');
      });
      // A marker joins its cell to the task above; the markers follow the new tags.
      await marker(1).click();
      const menu = page.locator('.jp-Dialog');
      await menu.locator('select').selectOption('Join the task above');
      await menu.locator('.jp-mod-accept').click();
      await page.waitForFunction(() => {
        const nb = [...document.querySelectorAll('.jp-NotebookPanel')].find(n => n.getBoundingClientRect().width > 0);
        return nb?.querySelectorAll('.jp-Cell')[2]?.dataset.nb2pipeTask === 'make';
      }, null, { timeout: 30_000 });
      assert.equal(await panel.locator('.nb2pipe-task[data-task="total"]').count(), 0);
      await shot('12-joined-the-task-above');
      // The panel comes back with the notebook.
      await page.reload();
      await panel.waitFor({ state: 'visible', timeout: 60_000 });
      await panel.locator('.nb2pipe-task[data-task="make"] .nb2pipe-task-state[data-state="succeeded"]').waitFor({ timeout: 60_000 });
      await shot('13-panel-restored');
    });
  } finally {
    if (context) {
      await context.close().catch(() => {});
    }
    try {
      process.kill(-lab.pid, 'SIGTERM');
    } catch {}
    const deadline = Date.now() + 15_000;
    while (lab.exitCode === null && lab.signalCode === null && Date.now() < deadline) {
      await sleep(200);
    }
    if (lab.exitCode === null && lab.signalCode === null) {
      try {
        process.kill(-lab.pid, 'SIGKILL');
      } catch {}
    }
    fs.closeSync(log);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
