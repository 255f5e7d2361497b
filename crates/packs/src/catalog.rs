//! The catalog: every pack shipped in the binary (`packs/` at the workspace root, embedded
//! at build time), or the packs of a directory.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::manifest::Pack;

mod data {
    include!(concat!(env!("OUT_DIR"), "/packs_data.rs"));
}

/// Packs by slug.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub packs: BTreeMap<String, Pack>,
}

impl Catalog {
    /// The packs embedded in the binary. Each was validated by the crate's tests, so an
    /// error here means a broken build, reported rather than panicked on.
    pub fn builtin() -> Result<Catalog> {
        let mut dirs: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
        for (path, text) in data::FILES {
            if let Some((dir, rel)) = path.split_once('/') {
                dirs.entry(dir)
                    .or_default()
                    .insert(rel.to_string(), (*text).to_string());
            }
        }
        let mut catalog = Catalog::default();
        for (dir, files) in dirs {
            catalog.insert(Pack::from_files(dir, files)?);
        }
        Ok(catalog)
    }

    /// Every pack directory (one holding `pack.yaml`) directly under `root`.
    pub fn load_dir(root: &Path) -> Result<Catalog> {
        let io = |source| Error::Io {
            path: root.display().to_string(),
            source,
        };
        let mut dirs: Vec<_> = std::fs::read_dir(root)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("pack.yaml").is_file())
            .collect();
        dirs.sort();
        let mut catalog = Catalog::default();
        for dir in dirs {
            catalog.insert(Pack::load_dir(&dir)?);
        }
        Ok(catalog)
    }

    fn insert(&mut self, pack: Pack) {
        self.packs.insert(pack.slug().to_string(), pack);
    }

    /// The pack with this slug, or an error listing the known ones.
    pub fn get(&self, slug: &str) -> Result<&Pack> {
        self.packs.get(slug).ok_or_else(|| Error::UnknownPack {
            slug: slug.to_string(),
            known: self.packs.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }
}
