//! `pack.yaml`: the pack manifest, read strictly and then validated into a [`Pack`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// Free for everyone, or sold with an auditor's certification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Community,
    Enterprise,
}

/// What a pack is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Compliance,
    Workload,
    Security,
}

/// The compliance framework an enterprise pack maps its controls to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Framework {
    #[serde(rename = "SOC2")]
    Soc2,
    #[serde(rename = "DORA")]
    Dora,
    #[serde(rename = "PCI-DSS")]
    PciDss,
    #[serde(rename = "CIS")]
    Cis,
}

impl Framework {
    pub fn as_str(self) -> &'static str {
        match self {
            Framework::Soc2 => "SOC2",
            Framework::Dora => "DORA",
            Framework::PciDss => "PCI-DSS",
            Framework::Cis => "CIS",
        }
    }

    /// How the framework numbers its controls, for error messages.
    pub fn id_form(self) -> &'static str {
        match self {
            Framework::Soc2 => "CC<n>.<n>, e.g. CC6.1",
            Framework::Dora => "Art. <n> (the regulation) or RTS Art. <n> (RTS (EU) 2024/1774)",
            Framework::PciDss => "<n>.<n>[.<n>], e.g. 1.3.1",
            Framework::Cis => "<n>.<n>.<n>, e.g. 5.3.2",
        }
    }

    /// Whether `id` has the form of one of the framework's control identifiers.
    pub fn cites(self, id: &str) -> bool {
        let dotted = |s: &str, min: usize, max: usize| {
            let parts: Vec<&str> = s.split('.').collect();
            (min..=max).contains(&parts.len())
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        match self {
            Framework::Soc2 => id.strip_prefix("CC").is_some_and(|r| dotted(r, 2, 2)),
            Framework::Dora => id
                .strip_prefix("RTS Art. ")
                .or_else(|| id.strip_prefix("Art. "))
                .is_some_and(|r| dotted(r, 1, 1)),
            Framework::PciDss => dotted(id, 2, 3),
            Framework::Cis => dotted(id, 3, 3),
        }
    }
}

/// The kind of document an item's template renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum ItemKind {
    NetworkPolicy,
    CiliumNetworkPolicy,
    CiliumClusterwideNetworkPolicy,
    AdminNetworkPolicy,
    BaselineAdminNetworkPolicy,
    /// Kyverno `ClusterPolicy`: a control about admission.
    ClusterPolicy,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::NetworkPolicy => "NetworkPolicy",
            ItemKind::CiliumNetworkPolicy => "CiliumNetworkPolicy",
            ItemKind::CiliumClusterwideNetworkPolicy => "CiliumClusterwideNetworkPolicy",
            ItemKind::AdminNetworkPolicy => "AdminNetworkPolicy",
            ItemKind::BaselineAdminNetworkPolicy => "BaselineAdminNetworkPolicy",
            ItemKind::ClusterPolicy => "ClusterPolicy",
        }
    }

    /// Kyverno admission policies are loaded by the kyverno crate, not netpol.
    pub fn is_kyverno(self) -> bool {
        matches!(self, ItemKind::ClusterPolicy)
    }
}

/// Who certified an enterprise pack, and when.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Auditor {
    pub name: String,
    /// `YYYY-MM-DD`.
    pub certification_date: String,
}

/// How one item serves one control of the framework (written in our own words; the
/// framework's text is cited by id only).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Control {
    /// The framework's identifier, e.g. `CC6.6` or `1.3.1`.
    pub id: String,
    /// What the control asks for, summarised.
    pub requirement: String,
    /// How the item implements it.
    pub implementation: String,
    /// What proves it to an auditor.
    pub evidence: String,
}

/// One policy template of a pack.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Item {
    pub name: String,
    pub description: String,
    pub kind: ItemKind,
    /// Path of the minijinja template inside the pack directory.
    pub template: String,
    /// Items render in ascending order (then by name).
    #[serde(default)]
    pub order: u32,
    #[serde(default)]
    pub controls: Vec<Control>,
}

/// The pack's parameters: a JSON Schema and the defaults (which must satisfy it).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Parameters {
    pub schema: Value,
    #[serde(default = "empty_object")]
    pub defaults: Value,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// `pack.yaml`, as written.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub slug: String,
    pub name: String,
    pub description: String,
    /// Semantic version of the pack content.
    pub version: String,
    pub tier: Tier,
    pub category: Category,
    /// Enterprise packs only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<Framework>,
    /// The edition of the framework the controls cite, e.g. `v4.0.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auditor: Option<Auditor>,
    pub parameters: Parameters,
    pub items: Vec<Item>,
    /// Test files inside the pack directory.
    #[serde(default)]
    pub tests: Vec<String>,
}

/// A validated pack: its manifest and the text of its files.
#[derive(Debug, Clone)]
pub struct Pack {
    pub manifest: Manifest,
    /// Path inside the pack directory → text.
    pub files: BTreeMap<String, String>,
}

impl Manifest {
    /// Parses `pack.yaml` text strictly (unknown fields are errors). `pack` names the pack
    /// (its directory) in errors.
    pub fn parse(text: &str, pack: &str) -> Result<Manifest> {
        yaml_serde::from_str(text).map_err(|e| manifest_error(pack, "pack.yaml", e.to_string()))
    }
}

impl Pack {
    /// Validates a pack from its files (paths relative to the pack directory; `pack.yaml`
    /// among them). `dir` is the directory's name, which must be the slug.
    pub fn from_files(dir: &str, files: BTreeMap<String, String>) -> Result<Pack> {
        let text = files
            .get("pack.yaml")
            .ok_or_else(|| manifest_error(dir, "pack.yaml", "missing".into()))?;
        let mut manifest = Manifest::parse(text, dir)?;
        manifest
            .items
            .sort_by(|a, b| (a.order, &a.name).cmp(&(b.order, &b.name)));
        let pack = Pack { manifest, files };
        pack.validate(dir)?;
        Ok(pack)
    }

    /// Reads a pack directory from disk.
    pub fn load_dir(path: &std::path::Path) -> Result<Pack> {
        let mut files = BTreeMap::new();
        read_tree(path, path, &mut files)?;
        let dir = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Pack::from_files(&dir, files)
    }

    pub fn slug(&self) -> &str {
        &self.manifest.slug
    }

    /// A file of the pack, or an error naming it.
    pub(crate) fn file(&self, path: &str, from: &str) -> Result<&str> {
        self.files.get(path).map(String::as_str).ok_or_else(|| {
            manifest_error(
                self.slug(),
                from,
                format!("names {path:?}, which the pack lacks"),
            )
        })
    }

    fn validate(&self, dir: &str) -> Result<()> {
        let m = &self.manifest;
        let err = |message: String| Err(manifest_error(dir, "pack.yaml", message));
        if m.slug != dir {
            return err(format!("slug {:?} differs from the directory name", m.slug));
        }
        if m.slug.is_empty()
            || !m
                .slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return err(format!(
                "slug {:?}: lowercase letters, digits and '-' only",
                m.slug
            ));
        }
        if let Err(e) = semver::Version::parse(&m.version) {
            return err(format!("version {:?} is not semantic: {e}", m.version));
        }
        match (m.tier, &m.framework, &m.auditor) {
            (Tier::Enterprise, None, _) => {
                return err("an enterprise pack names its framework".into())
            }
            (Tier::Enterprise, _, None) => {
                return err("an enterprise pack names its auditor and certification date".into())
            }
            (Tier::Community, Some(_), _) | (Tier::Community, _, Some(_)) => {
                return err("a community pack has no framework or auditor".into())
            }
            _ => {}
        }
        if let Some(a) = &m.auditor {
            if !is_date(&a.certification_date) {
                return err(format!(
                    "auditor.certificationDate {:?} is not YYYY-MM-DD",
                    a.certification_date
                ));
            }
        }
        if m.items.is_empty() {
            return err("a pack has at least one item".into());
        }
        let mut names = BTreeSet::new();
        for item in &m.items {
            if !names.insert(&item.name) {
                return err(format!("item {:?} appears twice", item.name));
            }
            self.file(&item.template, "pack.yaml")?;
            if m.tier == Tier::Enterprise && item.controls.is_empty() {
                return err(format!(
                    "item {:?}: an enterprise item maps at least one control",
                    item.name
                ));
            }
            for c in &item.controls {
                if let Some(f) = m.framework.filter(|f| !f.cites(&c.id)) {
                    return err(format!(
                        "item {:?}: control {:?} is not a {} control id ({})",
                        item.name,
                        c.id,
                        f.as_str(),
                        f.id_form()
                    ));
                }
                if [&c.id, &c.requirement, &c.implementation, &c.evidence]
                    .iter()
                    .any(|f| f.trim().is_empty())
                {
                    return err(format!(
                        "item {:?}: control {:?}: id, requirement, implementation and evidence are all required",
                        item.name, c.id
                    ));
                }
            }
        }
        for t in &m.tests {
            self.file(t, "pack.yaml")?;
        }
        crate::params::check(self, &m.parameters.defaults).map_err(|v| {
            manifest_error(
                dir,
                "pack.yaml",
                format!("parameters.defaults: {}", v.join("; ")),
            )
        })
    }
}

pub(crate) fn manifest_error(pack: &str, file: &str, message: String) -> Error {
    Error::Manifest {
        pack: pack.to_string(),
        file: file.to_string(),
        message,
    }
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && matches!(s[5..7].parse::<u8>(), Ok(1..=12))
        && matches!(s[8..10].parse::<u8>(), Ok(1..=31))
}

fn read_tree(
    root: &std::path::Path,
    dir: &std::path::Path,
    files: &mut BTreeMap<String, String>,
) -> Result<()> {
    let io = |source| Error::Io {
        path: dir.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            read_tree(root, &path, files)?;
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        files.insert(rel, text);
    }
    Ok(())
}
