//! Templates for Python and Dockerfile outputs: embedded from `templates/`, each
//! overridable by a file of the same relative path in a user folder (`--templates DIR`).
//! YAML targets are typed structs, not templates.

use sha2::Digest;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior};

/// (relative path, built-in text). LOAD-BEARING: emitters refer to these names.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "airflow/dag.py.j2",
        include_str!("../../templates/airflow/dag.py.j2"),
    ),
    (
        "task/main.py.j2",
        include_str!("../../templates/task/main.py.j2"),
    ),
    (
        "task/Dockerfile.j2",
        include_str!("../../templates/task/Dockerfile.j2"),
    ),
    (
        "task/nb2pipe_runtime.py",
        include_str!("../../templates/task/nb2pipe_runtime.py"),
    ),
];

pub struct Templates {
    env: Environment<'static>,
    /// Files copied as they are (not `.j2`, never parsed as templates: the runtime), each
    /// ending with a newline.
    verbatim: Vec<(&'static str, std::sync::Arc<String>)>,
    user_dir: Option<PathBuf>,
    /// The templates the user's folder replaced.
    replaced: Vec<&'static str>,
    /// sha256 over every template's name and text (after the user's replacements).
    digest: String,
}

impl Templates {
    /// Built-in templates, each replaced by `<dir>/<name>` where that file exists.
    pub fn load(user_dir: Option<&Path>) -> Result<Templates> {
        if let Some(d) = user_dir {
            anyhow::ensure!(
                d.is_dir(),
                "the templates folder {} does not exist",
                d.display()
            );
        }
        let mut env = Environment::new();
        // Generated DAGs carry Airflow's own `{{ ... }}` macros: ours must not collide.
        env.set_syntax(
            SyntaxConfig::builder()
                .block_delimiters("{%%", "%%}")
                .variable_delimiters("{{{", "}}}")
                .comment_delimiters("{##", "##}")
                .trim_blocks(true)
                .lstrip_blocks(true)
                .keep_trailing_newline(true)
                .build()
                .expect("valid delimiters"),
        );
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_filter("py", |v: minijinja::Value| super::pyrepr::py_value(&v));
        env.add_filter("pystr", |s: String| super::pyrepr::py_str(&s));
        let mut verbatim = Vec::new();
        let mut replaced = Vec::new();
        let mut digest = sha2::Sha256::new();
        for (name, text) in BUILTIN {
            let text: String = match user_dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(p) => {
                    replaced.push(*name);
                    std::fs::read_to_string(&p)
                        .with_context(|| format!("reading template {}", p.display()))?
                }
                None => (*text).to_string(),
            };
            for part in [name.as_bytes(), text.as_bytes()] {
                digest.update((part.len() as u64).to_le_bytes());
                digest.update(part);
            }
            if !name.ends_with(".j2") {
                let mut text = text;
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                verbatim.push((*name, std::sync::Arc::new(text)));
                continue;
            }
            env.add_template_owned(*name, text)
                .with_context(|| format!("template {name} does not parse"))?;
        }
        Ok(Templates {
            env,
            verbatim,
            user_dir: user_dir.map(Path::to_path_buf),
            replaced,
            digest: crate::digest::hex(&digest.finalize()),
        })
    }

    /// Whether `name` is nb2pipe's own template (no file of the user's replaces it).
    pub fn is_builtin(&self, name: &str) -> bool {
        !self.replaced.contains(&name)
    }

    /// What the templates are, as one hash (part of a bundle's input digest).
    pub fn digest(&self) -> &str {
        &self.digest
    }

    pub fn builtin() -> Templates {
        Templates::load(None).expect("built-in templates parse")
    }

    pub fn render<S: serde::Serialize>(&self, name: &str, ctx: S) -> Result<String> {
        let t = self.env.get_template(name)?;
        let out =
            t.render(minijinja::value::Serde(&ctx))
                .with_context(|| match &self.user_dir {
                    Some(d) => format!(
                        "rendering template {name} (user templates from {})",
                        d.display()
                    ),
                    None => format!("rendering built-in template {name} (an nb2pipe bug)"),
                })?;
        Ok(out)
    }

    /// A file copied as it is (the runtime), ending with a newline: one text that every
    /// copy in the bundle shares.
    pub fn file(&self, name: &str) -> Result<std::sync::Arc<String>> {
        match self.verbatim.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => Ok(std::sync::Arc::clone(text)),
            None => anyhow::bail!("{name} is not a file copied as it is"),
        }
    }

    /// Templates whose `name` is the user's `text` (for tests; the folder lives as long
    /// as the handle returned with them).
    #[cfg(test)]
    pub fn with_user_file(name: &str, text: &str) -> (tempfile::TempDir, Templates) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        (dir, t)
    }
}
