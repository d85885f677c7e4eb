//! Versions from the project's files, found next to or above the notebook.
//!
//! Precedence, first match wins: requirements.txt (with its `-r`/`-c` includes), then
//! the lock files uv.lock, poetry.lock, Pipfile.lock (exact versions), then
//! pyproject.toml (PEP 621 and Poetry ranges), then environment.yml. Within one kind the
//! file nearest to the notebook wins.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::names::normalize;
use super::pip::{parse_conda, parse_requirement, read_requirements_file, Spec};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pin {
    /// `==2.2.3`, `>=2,<3`, ` @ url`.
    pub(super) version: String,
    /// `[email]` when the project file asks for extras.
    pub(super) extras: String,
    /// The file, relative to the notebook's folder (`requirements.txt`, `../uv.lock`).
    pub(super) source: String,
}

#[derive(Debug, Default)]
pub(super) struct Pins {
    by_name: HashMap<String, Pin>,
    /// Problems reading files: (file, message).
    pub(super) problems: Vec<(String, String)>,
}

const KINDS: &[&[&str]] = &[
    &["requirements.txt"],
    &["uv.lock", "poetry.lock", "Pipfile.lock"],
    &["pyproject.toml"],
    &["environment.yml", "environment.yaml"],
];

/// Folders from the notebook's up to the repository root (the first with `.git`), at
/// most 8 levels.
pub(super) fn ancestors(nb_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut cur = Some(nb_dir.to_path_buf());
    while let Some(d) = cur {
        out.push(d.clone());
        if d.join(".git").exists() || out.len() >= 8 {
            break;
        }
        cur = d
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf);
    }
    out
}

impl Pins {
    pub(super) fn discover(nb_dir: &Path) -> Pins {
        let mut pins = Pins::default();
        let dirs = ancestors(nb_dir);
        for kind in KINDS {
            for (depth, dir) in dirs.iter().enumerate() {
                for file in *kind {
                    let path = dir.join(file);
                    if !path.is_file() {
                        continue;
                    }
                    let shown = format!("{}{file}", "../".repeat(depth));
                    match read_pin_file(&path, file) {
                        Ok((specs, problems)) => {
                            for p in problems {
                                pins.problems.push((shown.clone(), p));
                            }
                            for s in specs {
                                let pin = Pin {
                                    version: s.version.clone(),
                                    extras: s.extras.clone(),
                                    source: shown.clone(),
                                };
                                // A bare name (`httpx` next to `-c constraints.txt`) is no pin.
                                let e = pins.by_name.entry(s.key()).or_insert_with(|| pin.clone());
                                if e.version.is_empty() && !pin.version.is_empty() {
                                    *e = pin;
                                }
                            }
                        }
                        Err(e) => pins.problems.push((shown.clone(), e)),
                    }
                }
            }
        }
        pins
    }

    pub(super) fn get(&self, dist: &str) -> Option<&Pin> {
        self.by_name
            .get(&normalize(dist))
            .filter(|p| !p.version.is_empty())
    }
}

fn read_pin_file(path: &Path, kind: &str) -> Result<(Vec<Spec>, Vec<String>), String> {
    if kind == "requirements.txt" {
        let mut specs = Vec::new();
        let mut errors = Vec::new();
        read_requirements_file(path, 0, &mut specs, &mut errors);
        return Ok((specs, errors));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let specs = match kind {
        "uv.lock" | "poetry.lock" => lock_packages(&text)?,
        "Pipfile.lock" => pipfile_lock(&text)?,
        "pyproject.toml" => pyproject(&text)?,
        _ => environment_yml(&text)?,
    };
    Ok((specs, Vec::new()))
}

/// `[[package]]` tables with `name` and `version` (uv.lock and poetry.lock).
fn lock_packages(text: &str) -> Result<Vec<Spec>, String> {
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("not valid TOML: {}", e.message()))?;
    let Some(pkgs) = doc.get("package").and_then(|p| p.as_array()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for p in pkgs {
        let (Some(name), Some(version)) = (
            p.get("name").and_then(|v| v.as_str()),
            p.get("version").and_then(|v| v.as_str()),
        ) else {
            continue;
        };
        // uv records the project itself as an editable or virtual source: not a pin.
        let local = p
            .get("source")
            .and_then(|s| s.as_table())
            .is_some_and(|s| s.contains_key("editable") || s.contains_key("virtual"));
        if !local {
            out.push(Spec {
                name: name.to_string(),
                extras: String::new(),
                version: format!("=={version}"),
                marker: String::new(),
            });
        }
    }
    Ok(out)
}

fn pipfile_lock(text: &str) -> Result<Vec<Spec>, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let mut out = Vec::new();
    for section in ["default", "develop"] {
        let Some(map) = doc.get(section).and_then(|s| s.as_object()) else {
            continue;
        };
        for (name, v) in map {
            if let Some(ver) = v.get("version").and_then(|v| v.as_str()) {
                out.push(Spec {
                    name: name.clone(),
                    extras: String::new(),
                    version: ver.to_string(),
                    marker: String::new(),
                });
            }
        }
    }
    Ok(out)
}

fn pyproject(text: &str) -> Result<Vec<Spec>, String> {
    let doc: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("not valid TOML: {}", e.message()))?;
    let mut out = Vec::new();
    let strings = |v: Option<&toml::Value>| -> Vec<String> {
        v.and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    if let Some(project) = doc.get("project") {
        out.extend(
            strings(project.get("dependencies"))
                .iter()
                .filter_map(|s| parse_requirement(s)),
        );
        if let Some(opt) = project
            .get("optional-dependencies")
            .and_then(|o| o.as_table())
        {
            for v in opt.values() {
                out.extend(strings(Some(v)).iter().filter_map(|s| parse_requirement(s)));
            }
        }
    }
    if let Some(groups) = doc.get("dependency-groups").and_then(|g| g.as_table()) {
        for v in groups.values() {
            out.extend(strings(Some(v)).iter().filter_map(|s| parse_requirement(s)));
        }
    }
    if let Some(poetry) = doc.get("tool").and_then(|t| t.get("poetry")) {
        let mut tables = vec![poetry.get("dependencies"), poetry.get("dev-dependencies")];
        if let Some(groups) = poetry.get("group").and_then(|g| g.as_table()) {
            tables.extend(groups.values().map(|g| g.get("dependencies")));
        }
        for t in tables.into_iter().flatten().filter_map(|t| t.as_table()) {
            for (name, v) in t {
                if name == "python" {
                    continue;
                }
                let constraint = match v {
                    toml::Value::String(s) => Some(s.as_str()),
                    toml::Value::Table(t) => t.get("version").and_then(|v| v.as_str()),
                    _ => None,
                };
                let version = constraint.map(poetry_constraint).unwrap_or_default();
                out.push(Spec {
                    name: name.clone(),
                    extras: String::new(),
                    version,
                    marker: String::new(),
                });
            }
        }
    }
    Ok(out)
}

/// Poetry's `^1.2.3`, `~1.2`, `1.2.3`, `*`, `>=1,<2` as a PEP 440 specifier.
pub(super) fn poetry_constraint(c: &str) -> String {
    let c = c.trim();
    let nums = |v: &str| -> Vec<u64> {
        v.split('.')
            .map(|p| p.trim().parse().unwrap_or(0))
            .collect()
    };
    let join = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(".");
    if c.is_empty() || c == "*" {
        return String::new();
    }
    if let Some(v) = c.strip_prefix('^') {
        let n = nums(v);
        let bump = n
            .iter()
            .position(|&x| x != 0)
            .unwrap_or(n.len().saturating_sub(1))
            .min(n.len().saturating_sub(1));
        let mut upper: Vec<u64> = n[..=bump].to_vec();
        upper[bump] += 1;
        return format!(">={v},<{}", join(&upper));
    }
    if let Some(v) = c.strip_prefix('~').filter(|v| !v.starts_with('=')) {
        let n = nums(v);
        let upper = if n.len() >= 2 {
            vec![n[0], n[1] + 1]
        } else {
            vec![n[0] + 1]
        };
        return format!(">={v},<{}", join(&upper));
    }
    if c.starts_with(|ch: char| ch.is_ascii_digit()) {
        return format!("=={c}");
    }
    c.replace(' ', "")
}

fn environment_yml(text: &str) -> Result<Vec<Spec>, String> {
    let doc: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let mut out = Vec::new();
    let mut pip_specs = Vec::new();
    let Some(deps) = doc.get("dependencies").and_then(|d| d.as_sequence()) else {
        return Ok(out);
    };
    for d in deps {
        match d {
            serde_norway::Value::String(s) => out.extend(parse_conda(s)),
            serde_norway::Value::Mapping(m) => {
                if let Some(pips) = m.get("pip").and_then(|p| p.as_sequence()) {
                    pip_specs.extend(
                        pips.iter()
                            .filter_map(|p| p.as_str())
                            .filter_map(parse_requirement),
                    );
                }
            }
            _ => {}
        }
    }
    // The pip section names PyPI distributions exactly: it wins over mapped conda names.
    pip_specs.extend(out);
    Ok(pip_specs)
}
