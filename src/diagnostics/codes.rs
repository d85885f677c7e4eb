//! The one table of diagnostic codes. Codes are never reused; each carries its
//! documentation, printed by `nb2pipe rule CODE` and collected into docs/rules.md.

use serde::{Serialize, Serializer};

use super::Severity;

macro_rules! codes {
    ($( $(#[doc = $doc:literal])* $variant:ident = $code:literal, $name:literal, $sev:ident; )*) => {
        /// A stable diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as printed, e.g. `NB020`.
            pub fn as_str(self) -> &'static str { match self { $(Code::$variant => $code,)* } }

            /// A short kebab-case name, e.g. `unknown-tag`.
            pub fn name(self) -> &'static str { match self { $(Code::$variant => $name,)* } }

            pub fn severity(self) -> Severity { match self { $(Code::$variant => Severity::$sev,)* } }

            /// The rule's documentation (Markdown).
            pub fn docs(self) -> &'static str { match self { $(Code::$variant => concat!($($doc, "\n",)*),)* } }

            pub fn from_code(s: &str) -> Option<Code> {
                let s = s.trim();
                Code::ALL.iter().copied().find(|c| c.as_str().eq_ignore_ascii_case(s) || c.name() == s)
            }
        }
    };
}

codes! {
    /// ## What it does
    /// Reports a notebook file that cannot be read (missing, not readable, not UTF-8).
    /// ## Why is this bad?
    /// Nothing can be converted without the notebook.
    Unreadable = "NB001", "unreadable-notebook", Error;
    /// ## What it does
    /// Reports a notebook that is not valid JSON, with the line and column of the fault.
    /// ## Why is this bad?
    /// Jupyter itself would refuse to open it; often a merge conflict left in the file.
    InvalidJson = "NB002", "invalid-json", Error;
    /// ## What it does
    /// Reports a notebook whose `nbformat` is not 4 (nbformat 3 and older, or a future major).
    /// ## Why is this bad?
    /// nb2pipe reads nbformat 4.0 to 4.5. Upgrade with
    /// `jupyter nbconvert --to notebook --nbformat 4 --inplace NB.ipynb`.
    UnsupportedFormat = "NB003", "unsupported-nbformat", Error;
    /// ## What it does
    /// Reports a notebook whose kernel language is not Python (R, Julia, Scala...).
    /// ## Why is this bad?
    /// Tasks are generated as Python programs.
    NotPython = "NB004", "non-python-kernel", Error;
    /// ## What it does
    /// Reports a notebook with no code (no code cells, or only empty or skipped ones).
    /// ## Why is this bad?
    /// A pipeline needs at least one task.
    NoCode = "NB005", "no-code", Error;
    /// ## What it does
    /// Reports a notebook whose structure is not nbformat 4 (a cell without `cell_type`,
    /// `cells` not a list, `source` neither a string nor a list of strings).
    MalformedNotebook = "NB006", "malformed-notebook", Error;

    /// ## What it does
    /// Reports a cell of a task (or an `imports`, `functions` or `parameters` cell) that
    /// is not valid Python 3 (Python 2 `print x`, unfinished code, a NUL character, more
    /// than 200 nested brackets, a syntax tree more than 256 levels deep).
    /// ## Why is this bad?
    /// The cell cannot become task code: the task would silently skip it. Fix the cell,
    /// or tag it `skip` to leave it out (a `skip` cell is not reported).
    CellSyntaxError = "NB010", "cell-syntax-error", Error;
    /// ## What it does
    /// Warns about an IPython magic nb2pipe does not know how to run outside IPython.
    /// ## Why is this bad?
    /// The task would fail when it reaches that line. Known magics: `%pip`, `%conda`,
    /// `%matplotlib`, `%time`, `%timeit`, `%env`, `%cd`, `%load_ext`, `%autoreload`,
    /// `%config`, `%%writefile`, `%%bash`, `%%sh`, `%%script`, `%%time`, `%%timeit`,
    /// `%%capture`, `%%html`, `%%markdown`, `%%latex`, `%%javascript`, `%%svg`.
    UnknownMagic = "NB011", "unknown-magic", Warning;

    /// ## What it does
    /// Reports a cell tag that is not part of the tag vocabulary (docs/tags.md).
    /// ## Why is this bad?
    /// A misspelt tag (`cpus:2`, `tsak:train`) would otherwise be silently dropped.
    /// Tags that belong to other tools can be allowed with `allow_tags` in the settings.
    UnknownTag = "NB020", "unknown-tag", Error;
    /// ## What it does
    /// Reports a tag whose value is malformed: a bad quantity (`memory:4GB`, or above
    /// 2^63-1), a bad duration (`timeout:30 minutes`, or longer than 366 days), a
    /// non-integer retry count, a bad toleration effect, a control character.
    /// ## Why is this bad?
    /// Kubernetes or Airflow would reject it at deploy time, far from the notebook.
    InvalidTagValue = "NB021", "invalid-tag-value", Error;
    /// ## What it does
    /// Reports a task or pipeline name that is not a valid name for Kubernetes and Airflow:
    /// lowercase letters, digits, `-` and `_`, starting with a letter, at most 63 characters.
    InvalidName = "NB022", "invalid-name", Error;
    /// ## What it does
    /// Reports `after:X` / `prev:X` naming a task that does not exist.
    UnknownUpstream = "NB023", "unknown-upstream", Error;
    /// ## What it does
    /// Reports a dependency cycle between tasks (explicit `after:` edges together with data
    /// flow), naming the tasks on the cycle.
    DependencyCycle = "NB024", "dependency-cycle", Error;
    /// ## What it does
    /// Reports invalid structured settings: `metadata.nb2pipe` of a cell or of the notebook,
    /// `nb2pipe.toml`, `[tool.nb2pipe]`, or a `--set` flag (unknown key, wrong type, a
    /// value out of range, a control character in a string, affinity nested too deeply).
    InvalidSettings = "NB025", "invalid-settings", Error;
    /// ## What it does
    /// Reports a task-setting tag on a cell that belongs to no task (a `skip`, `imports`,
    /// `functions` or `parameters` cell).
    OrphanSetting = "NB026", "orphan-setting", Error;
    /// ## What it does
    /// Reports two task names that become the same Kubernetes name (`load_data` and
    /// `load-data`), or a repeated `task:` tag for the same task.
    DuplicateTask = "NB027", "duplicate-task", Error;
    /// ## What it does
    /// Reports an unknown `--profile` name.
    UnknownProfile = "NB028", "unknown-profile", Error;
    /// ## What it does
    /// Warns about a tag that has no effect where it is and is ignored, as Kale ignores
    /// it: `prev:X` on a `skip` or `functions` cell.
    IgnoredTag = "NB029", "ignored-tag", Warning;

    /// ## What it does
    /// Warns about an assignment in a `parameters` cell whose value is not a literal, or
    /// is a literal nested more than 100 levels deep.
    /// ## Why is this bad?
    /// Only literals (numbers, strings, booleans, None, lists and dicts of them) can be
    /// pipeline parameters that a run overrides; the statement stays as ordinary code.
    NonLiteralParameter = "NB030", "non-literal-parameter", Warning;
    /// ## What it does
    /// Reports a parameter whose string (or a string inside its list or dict) holds NUL
    /// or another control character (tab, newline and carriage return are text).
    /// ## Why is this bad?
    /// Parameters reach every target's output and each task's environment; a NUL cannot
    /// pass through a process's environment or the container runtime.
    UnsafeParameterValue = "NB031", "unsafe-parameter-value", Error;

    /// ## What it does
    /// Reports a credential written into a cell: a cloud access key, a private key, an API
    /// token, a password in a connection string, or a string literal assigned or passed to
    /// a name like `password`, `token`, `api_key`, `secret`. The value is never printed.
    /// ## Why is this bad?
    /// The notebook is committed; the credential leaks with it, and with every task image.
    /// ## Instead
    /// Store it in a Kubernetes Secret, tag the cell `secret:NAME:KEY:ENV` and read
    /// `os.environ["ENV"]` in the code. Obvious placeholders (`"<your-password>"`,
    /// `"${DB_PASSWORD}"`, `"changeme"`) and values read from the environment are not
    /// reported.
    ///
    /// `nb2pipe check`, `convert`, `run` and `build` stop on it (exit 1, nothing
    /// written). `--allow-secrets` lets `convert`, `run` and `build` write the bundle,
    /// but a `parameters` value that looks like a credential is still never written: its
    /// default becomes `""` (type `str`), plan.json marks it `"redacted": true`, and the
    /// value is given at run time (`nb2pipe run -p NAME=VALUE`, or the engine's
    /// parameters).
    HardCodedSecret = "NB040", "hard-coded-secret", Error;
    /// ## What it does
    /// Reports a generated bundle (at the configured output folder) that differs from what
    /// the notebook produces now: a file changed, missing, or left over.
    /// ## Why is this bad?
    /// The committed pipeline no longer does what the notebook says.
    /// ## Instead
    /// Run `nb2pipe check --fix NB` (or `nb2pipe convert NB`) and commit the result. Both
    /// regenerate every target the bundle holds (listed in its `bundle.json`; for a bundle
    /// without one, the target folders it has), and `check --fix` exits 0 when that fixed
    /// everything.
    StaleBundle = "NB050", "stale-bundle", Error;

    /// ## What it does
    /// Warns about a name a task reads that no earlier cell binds and that is not a builtin.
    /// ## Why is this bad?
    /// It will be a `NameError` when the task runs (it may also be a notebook that relied on
    /// out-of-order execution).
    UndefinedName = "NB101", "undefined-name", Warning;
    /// ## What it does
    /// Warns when a value passed between tasks is obviously not serialisable: an open
    /// file, a generator, a database connection or cursor, a lock.
    /// ## Why is this bad?
    /// The producing task would fail when it saves the value. Recreate it in the task that
    /// needs it, or pass what it was made from.
    UnserialisableValue = "NB102", "unserialisable-value", Warning;
    /// ## What it does
    /// Warns when the cells of one task are not together in notebook order (a `task:` tag
    /// repeated further down) and a name crosses the other tasks' cells in between: a
    /// later cell of the task binds or changes a name those cells read or bind, or the
    /// task reads a name they bind or change.
    /// ## Why is this bad?
    /// A task runs all its cells in one go, so the cells in between no longer run between
    /// them: the pipeline computes something else than the notebook.
    /// ## Instead
    /// Give the later cell its own task (`task:NAME`), or move it next to the task's other
    /// cells.
    ScatteredTask = "NB105", "scattered-task", Warning;
    /// ## What it does
    /// Warns about process-wide state that a later task does not get as the notebook's one
    /// kernel had it: a framework's random generator seeded in one task (`torch.manual_seed`,
    /// `tf.random.set_seed`), or a library-wide setting (`pd.set_option(...)`,
    /// `warnings.filterwarnings(...)`, ...) that reads a task's value and so is not replayed
    /// in later tasks (docs/running.md, "Process-wide state").
    /// ## Why is this bad?
    /// Later tasks draw other random numbers, or run with the library's defaults, and so
    /// print or compute something else than the notebook did.
    /// ## Instead
    /// Seed the framework again in each task that draws from it; write the setting's value
    /// into the statement, or move the statement and what it reads into an `imports` cell.
    GlobalStateNotCarried = "NB106", "global-state-not-carried", Warning;

    /// ## What it does
    /// Warns about task requirements that nothing pins: no requirements.txt, lock file,
    /// pyproject.toml or environment.yml next to or above the notebook names them, and no
    /// Python environment (`--python`, or a `.venv/` next to the notebook) has them installed.
    /// ## Why is this bad?
    /// Each image build installs whatever version is newest that day, so two builds of the
    /// same commit can differ and a release of a dependency can break the pipeline.
    /// `nb2pipe deps NB` shows where every pin comes from.
    UnpinnedRequirement = "NB201", "unpinned-requirement", Warning;
    /// ## What it does
    /// Warns about a project file nb2pipe reads for pins (requirements.txt and the files
    /// it includes, pyproject.toml, uv.lock, poetry.lock, Pipfile.lock, environment.yml)
    /// or a `.venv/` next to the notebook that cannot be read or parsed.
    /// ## Why is this bad?
    /// The file is ignored, so its pins are not used.
    ProjectFileProblem = "NB202", "project-file-problem", Warning;
    /// ## What it does
    /// Warns about an import of a module that the standard library of the tasks' Python
    /// version no longer has (`distutils` and `imp` left in 3.12, `cgi`, `telnetlib` and the
    /// other PEP 594 modules in 3.13).
    /// ## Why is this bad?
    /// The import fails in the task's image. Where a PyPI distribution brings the module
    /// back (`setuptools` for `distutils`, `standard-telnetlib` for `telnetlib`, ...) the
    /// task requires it; otherwise the task will fail.
    RemovedStdlibModule = "NB203", "removed-stdlib-module", Warning;
    /// ## What it does
    /// Reports a `--python` path that is not a Python environment nb2pipe can read (no
    /// `site-packages` folder under it).
    /// ## Why is this bad?
    /// Names and pins would silently come from elsewhere than the environment asked for.
    PythonEnvUnusable = "NB204", "python-env-unusable", Error;
    /// ## What it does
    /// Warns about `%pip install -r FILE` in a task when FILE cannot be read.
    /// ## Why is this bad?
    /// The requirements the file lists are missing from the task's image.
    PipFileMissing = "NB205", "pip-requirements-file-missing", Warning;
    /// ## What it does
    /// Warns about a word of a `pip install` line that is not a requirement nb2pipe can
    /// write: a variable (`$PKG`, IPython's `{pkg}`), or text that is not a PEP 508
    /// requirement. Options and their values, redirections (`> /dev/null 2>&1`) and the
    /// other commands of the line (`&&`, `;`, `|`) are not arguments of the install.
    /// ## Why is this bad?
    /// The task's image would lack what the notebook installed; the word is left out of
    /// requirements.txt (where it would break `pip install -r`).
    NotARequirement = "NB206", "not-a-requirement", Warning;
    /// ## What it does
    /// Warns about an import of a Python 2 standard-library module (`urllib2`,
    /// `StringIO`, `cPickle`, `ConfigParser`, ...) and names its Python 3 equivalent.
    /// ## Why is this bad?
    /// No distribution provides it; the import fails in the task. An import inside
    /// `try: ... except ImportError:` (the usual Python 2/3 fallback) is not reported.
    Python2Module = "NB207", "python2-module", Warning;
    /// ## What it does
    /// Reports a value that a chosen target would rewrite: Argo substitutes `{{...}}` and
    /// Tekton `$(...)` inside any string of a workflow, and neither has an escape.
    /// ## Why is this bad?
    /// The task would see a different value than the notebook says, or the workflow would
    /// be rejected. Nothing is written; change the value or leave that target out.
    TargetUnsafeValue = "NB301", "target-unsafe-value", Error;
    /// ## What it does
    /// Warns about a setting a chosen target cannot express, and says what nb2pipe does
    /// instead (docs/targets.md lists them all).
    TargetCannotExpress = "NB302", "target-cannot-express", Warning;
    /// ## What it does
    /// Warns when no registry is set (`registry` setting or `--registry`).
    /// ## Why is this bad?
    /// Image names without a registry resolve to Docker Hub's `docker.io/library/`, where
    /// the task images are not: every pod fails to pull its image.
    NoRegistry = "NB303", "no-registry", Warning;
    /// ## What it does
    /// Warns when the data claim is ReadWriteMany, tasks of the pipeline can run at the
    /// same time, and no `data.storage_class` is set.
    /// ## Why is this bad?
    /// The default storage classes of EKS, GKE and AKS provision ReadWriteOnce volumes
    /// only: a ReadWriteMany claim stays Pending and no task starts. Name a class that
    /// offers ReadWriteMany (EFS, Filestore, Azure Files, NFS), or set
    /// `data.access_mode = "ReadWriteOnce"` and run the tasks one after the other.
    SharedVolumeClass = "NB304", "shared-volume-class", Warning;
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_documented() {
        let mut seen = std::collections::BTreeSet::new();
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate code {}", c.as_str());
            assert!(
                c.docs().contains("## What it does"),
                "{} lacks docs",
                c.as_str()
            );
            assert_eq!(Code::from_code(c.as_str()), Some(*c));
            assert_eq!(Code::from_code(c.name()), Some(*c));
        }
    }
}
