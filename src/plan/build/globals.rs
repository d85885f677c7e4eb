//! Process-wide state that the notebook's one kernel carries from cell to cell
//! (docs/running.md, "Process-wide state"): the global random generators (Python's
//! `random`, NumPy's legacy `np.random`) and library-wide settings. Once a cell seeds a
//! generator, every task from there on hands the generators' states to the next task
//! in notebook order (an edge), and a setting made in a task's cell is replayed, with
//! the imports it reads, in every later task.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::diag_at;
use super::edges::Edges;
use super::tasks::TaskDraft;
use crate::analysis::{CellFacts, TopLevel};
use crate::diagnostics::{Code, Diagnostic};
use crate::notebook::Notebook;
use crate::plan::tags::Role;
use crate::plan::{Chunk, RandomCarry};

pub(super) struct Globals {
    /// Per task: (cell, statement) of other tasks' cells it runs before its own cells:
    /// the settings it replays and the imports they read.
    pub(super) replays: Vec<Vec<(usize, usize)>>,
    /// The tasks that carry the random states, in notebook order (empty: nothing seeds
    /// a generator, or one task at most runs after the seed).
    pub(super) chain: Vec<usize>,
}

/// What a statement does to process-wide state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Seeds Python's or NumPy's global generator: carried.
    Seed,
    /// Seeds Python's and NumPy's generators (carried) and a framework's (not).
    SeedAlso(&'static str),
    /// Seeds only a framework's generator, which is not carried.
    FrameworkSeed(&'static str),
    /// A library-wide setting: replayed.
    Setting,
}

const SEEDS: &[&str] = &[
    "random.seed",
    "random.setstate",
    "numpy.random.seed",
    "numpy.random.set_state",
];

/// Helpers that seed `random`, NumPy and a framework at once.
const SEEDS_ALSO: &[(&str, &str)] = &[
    ("transformers.set_seed", "torch"),
    ("lightning.seed_everything", "torch"),
    ("lightning.pytorch.seed_everything", "torch"),
    ("pytorch_lightning.seed_everything", "torch"),
    ("keras.utils.set_random_seed", "Keras"),
    ("tensorflow.keras.utils.set_random_seed", "TensorFlow"),
];

const FRAMEWORK_SEEDS: &[(&str, &str)] = &[
    ("torch.manual_seed", "torch"),
    ("torch.random.manual_seed", "torch"),
    ("torch.cuda.manual_seed", "torch"),
    ("torch.cuda.manual_seed_all", "torch"),
    ("tensorflow.random.set_seed", "TensorFlow"),
    ("tensorflow.set_random_seed", "TensorFlow"),
];

/// Calls that change a library-wide setting (docs/running.md lists them).
const SETTING_CALLS: &[&str] = &[
    "sklearn.set_config",
    "pandas.set_option",
    "pandas.reset_option",
    "pandas.set_eng_float_format",
    "numpy.set_printoptions",
    "numpy.seterr",
    "warnings.filterwarnings",
    "warnings.simplefilter",
    "warnings.resetwarnings",
    "matplotlib.rc",
    "matplotlib.rcdefaults",
    "matplotlib.style.use",
    "matplotlib.rcParams.update",
    "matplotlib.pyplot.rc",
    "matplotlib.pyplot.rcdefaults",
    "matplotlib.pyplot.style.use",
    "matplotlib.pyplot.rcParams.update",
    "seaborn.set",
    "seaborn.set_theme",
    "seaborn.set_style",
    "seaborn.set_context",
    "seaborn.set_palette",
    "seaborn.set_color_codes",
    "seaborn.reset_defaults",
    "seaborn.reset_orig",
    "os.environ.update",
    "os.environ.setdefault",
    "os.environ.pop",
    "logging.basicConfig",
    "logging.disable",
    "torch.set_default_dtype",
    "torch.set_printoptions",
];

/// `polars.Config.set_tbl_rows(5)` and the like.
const SETTING_CALL_PREFIXES: &[&str] = &["polars.Config."];

/// Names whose items or attributes are settings (`pd.options.display.max_rows = 5`,
/// `plt.rcParams["figure.dpi"] = 80`, `os.environ["X"] = "1"`).
const SETTING_STORES: &[&str] = &[
    "pandas.options",
    "matplotlib.rcParams",
    "matplotlib.pyplot.rcParams",
    "os.environ",
];

fn effect_of(
    form: &TopLevel,
    aliases: &BTreeMap<String, (String, (usize, usize))>,
) -> Option<(Effect, String)> {
    let resolve = |dotted: &str| -> Option<String> {
        let (head, rest) = dotted.split_once('.').unwrap_or((dotted, ""));
        let (path, _) = aliases.get(head)?;
        Some(if rest.is_empty() {
            path.clone()
        } else {
            format!("{path}.{rest}")
        })
    };
    match form {
        TopLevel::Call(callee) => {
            let path = resolve(callee)?;
            let effect = if SEEDS.contains(&path.as_str()) {
                Effect::Seed
            } else if let Some((_, lib)) = SEEDS_ALSO.iter().find(|(p, _)| *p == path) {
                Effect::SeedAlso(lib)
            } else if let Some((_, lib)) = FRAMEWORK_SEEDS.iter().find(|(p, _)| *p == path) {
                Effect::FrameworkSeed(lib)
            } else if SETTING_CALLS.contains(&path.as_str())
                || SETTING_CALL_PREFIXES.iter().any(|p| path.starts_with(p))
            {
                Effect::Setting
            } else {
                return None;
            };
            Some((effect, callee.clone()))
        }
        TopLevel::Store(target) => {
            let path = resolve(target)?;
            SETTING_STORES
                .iter()
                .any(|s| path == *s || path.strip_prefix(s).is_some_and(|r| r.starts_with('.')))
                .then(|| (Effect::Setting, target.clone()))
        }
        TopLevel::Import(_) | TopLevel::Other => None,
    }
}

/// Walks the cells in notebook order, as the kernel runs them, resolving names through
/// the imports made so far.
pub(super) fn global_state(
    nb: &Notebook,
    facts: &[Option<CellFacts>],
    drafts: &[TaskDraft],
    roles: &BTreeMap<usize, Role>,
    diags: &mut Vec<Diagnostic>,
) -> Globals {
    let task_of: HashMap<usize, usize> = drafts
        .iter()
        .enumerate()
        .flat_map(|(t, d)| d.cells.iter().map(move |&c| (c, t)))
        .collect();
    let last_cell = |t: usize| drafts[t].cells.iter().max().copied().unwrap_or(0);
    // Tasks that run some cell after `cell`, other than the task of `cell`.
    let later = |cell: usize| -> Vec<usize> {
        (0..drafts.len())
            .filter(|&t| !drafts[t].cells.contains(&cell) && last_cell(t) > cell)
            .collect()
    };
    // Local name → (dotted path, the import statement that bound it).
    let mut aliases: BTreeMap<String, (String, (usize, usize))> = BTreeMap::new();
    let mut replays: Vec<BTreeSet<(usize, usize)>> = vec![BTreeSet::new(); drafts.len()];
    let mut first_seed: Option<usize> = None;
    for cell in &nb.cells {
        let c = cell.index;
        let Some(f) = &facts[c] else { continue };
        if f.syntax_error.is_some() || f.stmts.is_empty() {
            continue;
        }
        for (idx, st) in f.stmts.iter().enumerate() {
            let form = &st.form;
            if let TopLevel::Import(names) = form {
                for (local, path) in names {
                    aliases.insert(local.clone(), (path.clone(), (c, idx)));
                }
                continue;
            }
            let effect = effect_of(form, &aliases);
            for b in &st.binds {
                aliases.remove(b);
            }
            let Some((effect, what)) = effect else {
                continue;
            };
            let text = || {
                let t = f.python[st.start..st.end].trim();
                t.lines().next().unwrap_or(t).to_string()
            };
            match effect {
                Effect::Seed => {
                    first_seed.get_or_insert(c);
                }
                Effect::SeedAlso(lib) | Effect::FrameworkSeed(lib) => {
                    if matches!(effect, Effect::SeedAlso(_)) {
                        first_seed.get_or_insert(c);
                    }
                    if !later(c).is_empty() {
                        diags.push(
                            diag_at(nb, Code::GlobalStateNotCarried, c, format!("`{what}(...)` seeds {lib}'s random generator here only: later tasks start with it unseeded (Python's `random` and NumPy's global generator are carried)"))
                                .at_line(st.line, None)
                                .with_help(format!("seed {lib} again in the tasks that draw from it")),
                        );
                    }
                }
                // Role cells are every task's prelude already (prelude.rs).
                Effect::Setting if roles.contains_key(&c) => {}
                Effect::Setting => {
                    let Some(&owner) = task_of.get(&c) else {
                        continue;
                    };
                    let targets = later(c);
                    if targets.is_empty() {
                        continue;
                    }
                    let unbound: Vec<&String> = st
                        .reads
                        .iter()
                        .filter(|r| !aliases.contains_key(*r))
                        .collect();
                    if let Some(name) = unbound.first() {
                        diags.push(
                            diag_at(nb, Code::GlobalStateNotCarried, c, format!("`{}` changes a library-wide setting but reads `{name}`, a value of task `{}`: later tasks do not replay it", text(), drafts[owner].name))
                                .at_line(st.line, None)
                                .with_help("write the value into the statement, or move the statement and what it reads into an `imports` cell"),
                        );
                        continue;
                    }
                    let imports: Vec<(usize, usize)> =
                        st.reads.iter().map(|r| aliases[r].1).collect();
                    for t in targets {
                        replays[t].extend(imports.iter().copied());
                        replays[t].insert((c, idx));
                    }
                }
            }
        }
    }
    let chain = first_seed
        .map(|seed| random_chain(drafts, seed))
        .unwrap_or_default();
    Globals {
        replays: replays
            .into_iter()
            .map(|r| r.into_iter().collect())
            .collect(),
        chain,
    }
}

/// The tasks that run a cell at or after `seed`, in notebook order; fewer than two
/// have nothing to hand on.
fn random_chain(drafts: &[TaskDraft], seed: usize) -> Vec<usize> {
    let mut chain: Vec<usize> = (0..drafts.len())
        .filter(|&t| drafts[t].cells.iter().any(|&c| c >= seed))
        .collect();
    chain.sort_by_key(|&t| (drafts[t].first_cell, t));
    if chain.len() < 2 {
        chain.clear();
    }
    chain
}

/// Each task of the chain runs after the one before it, whose states it starts from.
pub(super) fn add_random_edges(globals: &Globals, edges: &mut Edges) {
    for w in globals.chain.windows(2) {
        edges.entry((w[0], w[1])).or_default();
    }
}

/// Task `t`'s place in the chain; the states are restored before the first chunk that
/// the previous task did not already see run (a prelude statement of a later cell, or
/// the task's own cells).
pub(super) fn random_carry(
    globals: &Globals,
    drafts: &[TaskDraft],
    t: usize,
    code: &[Chunk],
) -> Option<RandomCarry> {
    let pos = globals.chain.iter().position(|&c| c == t)?;
    let from = pos.checked_sub(1).map(|p| globals.chain[p]);
    let restore_at = match from {
        Some(f) => {
            let seen = drafts[f].cells.iter().max().copied().unwrap_or(0);
            code.iter()
                .position(|c| !c.prelude || c.cell > seen)
                .unwrap_or(code.len())
        }
        None => 0,
    };
    Some(RandomCarry {
        from: from.map(|f| drafts[f].name.clone()),
        to: globals.chain.get(pos + 1).map(|&n| drafts[n].name.clone()),
        restore_at,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::diagnostics::Code;
    use crate::plan::{build, BuildInput, Plan, RandomCarry, Task};

    fn built(cells: &[(&str, &[&str])]) -> super::super::Built {
        let cells: Vec<serde_json::Value> = cells
            .iter()
            .map(|(src, tags)| serde_json::json!({"cell_type": "code", "metadata": {"tags": tags}, "source": src, "outputs": [], "execution_count": null}))
            .collect();
        let nb = serde_json::json!({"nbformat": 4, "nbformat_minor": 4, "metadata": {"kernelspec": {"name": "python3", "language": "python"}, "language_info": {"name": "python", "version": "3.11"}}, "cells": cells});
        let nb = crate::notebook::parse_str(Path::new("t.ipynb"), &nb.to_string()).unwrap();
        build(BuildInput {
            notebook: &nb,
            project: None,
            cli: Default::default(),
            profile: None,
            python_env: None,
        })
    }

    fn task<'a>(plan: &'a Plan, name: &str) -> &'a Task {
        plan.task(name).unwrap()
    }

    fn carry<'a>(plan: &'a Plan, name: &str) -> Option<(Option<&'a str>, Option<&'a str>)> {
        task(plan, name)
            .random_state
            .as_ref()
            .map(|r: &RandomCarry| (r.from.as_deref(), r.to.as_deref()))
    }

    /// The statements a task runs before its cells, as written.
    fn before(plan: &Plan, name: &str) -> Vec<String> {
        task(plan, name)
            .code
            .iter()
            .filter(|c| c.prelude)
            .map(|c| c.python.clone())
            .collect()
    }

    fn edge(plan: &Plan, from: &str, to: &str) -> bool {
        plan.edges.iter().any(|e| e.from == from && e.to == to)
    }

    #[test]
    fn a_seed_chains_the_tasks_from_the_seeding_one_on() {
        let p = built(&[
            ("import numpy as np", &["imports"]),
            ("x = np.random.rand()", &["task:early"]),
            ("np.random.seed(0)\na = 1", &["task:seed"]),
            ("b = np.random.rand()", &["task:middle"]),
            ("c = np.random.rand()", &["task:last"]),
        ])
        .plan;
        assert_eq!(carry(&p, "early"), None);
        assert_eq!(carry(&p, "seed"), Some((None, Some("middle"))));
        assert_eq!(carry(&p, "middle"), Some((Some("seed"), Some("last"))));
        assert_eq!(carry(&p, "last"), Some((Some("middle"), None)));
        assert!(edge(&p, "seed", "middle") && edge(&p, "middle", "last"));
        assert!(!edge(&p, "early", "seed") && !edge(&p, "seed", "last"));
        let main = crate::emit::task_code::task_body(task(&p, "middle"), 1).0;
        let restore = main
            .find("_nb2pipe.restore_random_state(\"seed\")")
            .unwrap();
        let save = main.find("_nb2pipe.save_random_state()").unwrap();
        assert!(restore < main.find("b = np.random.rand()").unwrap());
        assert!(save > main.find("b = np.random.rand()").unwrap());
        let last = crate::emit::task_code::task_body(task(&p, "last"), 1).0;
        assert!(!last.contains("save_random_state"), "{last}");
        let table = crate::commands::inspect::table(&p);
        assert!(
            table.contains("  seed → middle  (random state)\n"),
            "{table}"
        );
    }

    #[test]
    fn seeds_through_any_import_name() {
        for seed in [
            "from numpy import random as npr\nnpr.seed(1)",
            "import numpy.random as npr\nnpr.set_state(s)",
            "import random as rnd\nrnd.seed(2)",
            "from random import seed\nseed(3)",
            "import transformers\ntransformers.set_seed(4)",
        ] {
            let p = built(&[(seed, &["task:a"]), ("b = 1", &["task:b"])]).plan;
            assert_eq!(carry(&p, "b"), Some((Some("a"), None)), "{seed}");
        }
        for not_seed in [
            "random.seed(1)",
            "import random\nrandom = Rng()\nrandom.seed(1)",
            "import numpy as np\nrng = np.random.default_rng(0)",
            "import numpy as np\nif True:\n    np.random.seed(0)",
        ] {
            let p = built(&[(not_seed, &["task:a"]), ("b = 1", &["task:b"])]).plan;
            assert_eq!(carry(&p, "b"), None, "{not_seed}");
            assert!(p.edges.is_empty(), "{not_seed}");
        }
    }

    #[test]
    fn a_seed_in_the_imports_cell_is_restored_over_after_the_first_task() {
        let p = built(&[
            ("import numpy as np\nnp.random.seed(0)", &["imports"]),
            ("a = np.random.rand()", &["task:a"]),
            ("b = np.random.rand()", &["task:b"]),
        ])
        .plan;
        assert_eq!(carry(&p, "a"), Some((None, Some("b"))));
        let main = crate::emit::task_code::task_body(task(&p, "b"), 1).0;
        // The prelude's seed runs, then the state `a` left replaces it.
        let seed = main.find("np.random.seed(0)").unwrap();
        let restore = main.find("restore_random_state(\"a\")").unwrap();
        assert!(seed < restore && restore < main.find("b = np.random").unwrap());
    }

    #[test]
    fn unseeded_notebooks_carry_nothing() {
        let p = built(&[
            ("import numpy as np\nimport random", &["imports"]),
            ("a = np.random.rand() + random.random()", &["task:a"]),
            ("b = np.random.rand()", &["task:b"]),
        ])
        .plan;
        assert!(p.tasks.iter().all(|t| t.random_state.is_none()));
        assert!(p.edges.is_empty());
    }

    #[test]
    fn settings_are_replayed_with_their_imports_in_later_tasks() {
        let b = built(&[
            ("x = 1", &["task:early"]),
            (
                "import sklearn\nimport pandas as pd\nfrom matplotlib import pyplot as plt\nimport os\nimport warnings\nfrom sklearn.exceptions import ConvergenceWarning\nfrom sklearn import set_config\nsklearn.set_config(enable_metadata_routing=True)\nset_config(display='text')\npd.options.display.max_rows = 5\nplt.rcParams['figure.dpi'] = 80\nos.environ['MODE'] = 'fast'\nwarnings.filterwarnings('ignore', category=ConvergenceWarning)\npd.set_option('display.width', x)\nprint(pd.get_option('display.width'))",
                &["task:setup"],
            ),
            ("y = x + 1", &["task:later"]),
        ]);
        let p = &b.plan;
        assert_eq!(before(p, "early"), Vec::<String>::new());
        assert_eq!(
            before(p, "later"),
            [
                "import sklearn",
                "import pandas as pd",
                "from matplotlib import pyplot as plt",
                "import os",
                "import warnings",
                "from sklearn.exceptions import ConvergenceWarning",
                "from sklearn import set_config",
                "sklearn.set_config(enable_metadata_routing=True)",
                "set_config(display='text')",
                "pd.options.display.max_rows = 5",
                "plt.rcParams['figure.dpi'] = 80",
                "os.environ['MODE'] = 'fast'",
                "warnings.filterwarnings('ignore', category=ConvergenceWarning)",
            ]
        );
        // The replayed imports are the task's: its requirements follow.
        assert!(task(p, "later").imports.contains(&"pandas".to_string()));
        assert!(task(p, "later").imports.contains(&"sklearn".to_string()));
        assert_eq!(task(p, "later").prelude.len(), 13);
        // Settings need no order and carry no random state (the edge setup -> later is
        // `x`, which `pd.set_option(..., x)` may have changed).
        assert!(task(p, "later").random_state.is_none());
        let not_replayed: Vec<&str> = b
            .diagnostics
            .iter()
            .filter(|d| d.code == Code::GlobalStateNotCarried)
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(not_replayed.len(), 1, "{not_replayed:?}");
        assert!(
            not_replayed[0].contains("`pd.set_option('display.width', x)`")
                && not_replayed[0].contains("reads `x`"),
            "{not_replayed:?}"
        );
    }

    #[test]
    fn a_setting_in_the_last_task_needs_no_replay() {
        let b = built(&[
            ("x = 1", &["task:a"]),
            (
                "import pandas as pd\npd.set_option('display.width', x)",
                &["task:b"],
            ),
        ]);
        assert!(b
            .diagnostics
            .iter()
            .all(|d| d.code != Code::GlobalStateNotCarried));
        assert!(before(&b.plan, "a").is_empty());
    }

    #[test]
    fn framework_seeds_are_reported_not_carried() {
        let b = built(&[
            ("import torch\ntorch.manual_seed(0)", &["task:a"]),
            ("y = 2", &["task:b"]),
        ]);
        assert_eq!(carry(&b.plan, "b"), None);
        let d: Vec<&str> = b
            .diagnostics
            .iter()
            .filter(|d| d.code == Code::GlobalStateNotCarried)
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(d.len(), 1);
        assert!(d[0].contains("`torch.manual_seed(...)`"), "{d:?}");
    }
}
