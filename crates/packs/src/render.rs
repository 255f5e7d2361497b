//! Rendering a pack: parameters → minijinja (strict undefined) → YAML documents, each
//! parsed by netpol (or Kyverno's loader) before it is returned.

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use netpol::policy::Policy;
use netpol::Bundle;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::manifest::{Control, ItemKind, Pack};
use crate::params::{self, Param};

/// A pack rendered with one set of parameters.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rendered {
    pub pack: String,
    pub version: String,
    /// The parameters used: defaults with overrides, schema-checked.
    pub parameters: Value,
    pub items: Vec<RenderedItem>,
    /// Every network policy of the pack, compiled by netpol.
    #[serde(skip)]
    pub policies: Vec<Policy>,
    /// Every Kyverno admission policy of the pack, loaded by the kyverno crate.
    #[serde(skip)]
    pub admission: Vec<kyverno::CompiledPolicy>,
}

/// One item's documents.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedItem {
    pub name: String,
    pub kind: ItemKind,
    pub order: u32,
    pub description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<Control>,
    /// `namespace/name` (or `name` when cluster-scoped) of each document.
    pub objects: Vec<String>,
    /// The documents, as rendered.
    pub yaml: String,
}

impl Rendered {
    /// Every document of every item as one multi-document YAML stream, each item introduced
    /// by a comment naming it.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for item in &self.items {
            out.push_str(&format!(
                "# pack {} {} — item {} ({})\n",
                self.pack,
                self.version,
                item.name,
                item.kind.as_str()
            ));
            for doc in split_documents(&item.yaml) {
                out.push_str("---\n");
                out.push_str(doc.trim_matches('\n'));
                out.push('\n');
            }
        }
        out
    }
}

/// Renders `pack` with its defaults and `overrides`.
pub fn render(pack: &Pack, overrides: &[Param]) -> Result<Rendered> {
    let parameters = params::resolve(pack, overrides)?;
    render_with(pack, parameters)
}

/// Renders `pack` with parameters already resolved (defaults merged, schema-checked).
pub(crate) fn render_with(pack: &Pack, parameters: Value) -> Result<Rendered> {
    let slug = pack.slug();
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    let mut rendered = Rendered {
        pack: slug.to_string(),
        version: pack.manifest.version.clone(),
        parameters,
        items: Vec::new(),
        policies: Vec::new(),
        admission: Vec::new(),
    };
    for item in &pack.manifest.items {
        let template_error = |e: minijinja::Error| Error::Template {
            pack: slug.to_string(),
            item: item.name.clone(),
            template: item.template.clone(),
            line: e.line(),
            message: template_message(&e),
        };
        let source = pack.file(&item.template, &item.template)?;
        let template = env
            .template_from_named_str(&item.template, source)
            .map_err(template_error)?;
        let yaml = template
            .render(minijinja::value::Serde(&rendered.parameters))
            .map_err(template_error)?;
        let objects = check_documents(pack, item, &yaml, &mut rendered)?;
        rendered.items.push(RenderedItem {
            name: item.name.clone(),
            kind: item.kind,
            order: item.order,
            description: item.description.clone(),
            controls: item.controls.clone(),
            objects,
            yaml,
        });
    }
    Ok(rendered)
}

/// The message of a template error with its cause chain, without minijinja's debug dump.
fn template_message(e: &minijinja::Error) -> String {
    let mut message = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    message
}

/// Parses each rendered document with netpol (or Kyverno's loader for Kyverno items),
/// checks it is the item's kind and a policy, and returns the objects' names (none when the
/// item's list parameter is empty).
fn check_documents(
    pack: &Pack,
    item: &crate::manifest::Item,
    yaml: &str,
    rendered: &mut Rendered,
) -> Result<Vec<String>> {
    let origin = format!("{}/{}", pack.slug(), item.template);
    let fail = |document: usize, message: String| Error::Rendered {
        pack: pack.slug().to_string(),
        item: item.name.clone(),
        document,
        message,
    };
    let docs = netpol::manifest::documents(yaml, &origin).map_err(|e| fail(0, e.to_string()))?;
    let mut objects = Vec::new();
    for (i, doc) in docs.iter().enumerate().filter(|(_, d)| !d.is_null()) {
        let n = i + 1;
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        if kind != item.kind.as_str() {
            return Err(fail(
                n,
                format!(
                    "kind {kind:?}, but the item declares {}",
                    item.kind.as_str()
                ),
            ));
        }
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        objects.push(
            match doc.pointer("/metadata/namespace").and_then(Value::as_str) {
                Some(ns) => format!("{ns}/{name}"),
                None => name.to_string(),
            },
        );
        if item.kind.is_kyverno() {
            rendered.admission.push(
                kyverno::runner::load_policy(doc, &origin).map_err(|e| fail(n, e.to_string()))?,
            );
            continue;
        }
        let mut bundle = Bundle::default();
        bundle
            .add_object(doc, &origin, n, "")
            .map_err(|e| fail(n, e.to_string()))?;
        if let Some(s) = bundle.skipped.first() {
            return Err(fail(n, s.reason.clone()));
        }
        if bundle.policies.is_empty() {
            return Err(fail(n, "the document holds no policy".into()));
        }
        rendered.policies.extend(bundle.policies);
    }
    Ok(objects)
}

/// The documents of a YAML stream, split on `---` lines (empty ones dropped).
fn split_documents(yaml: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in yaml.split_inclusive('\n') {
        if line.trim_end() == "---" {
            docs.push(&yaml[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push(&yaml[start..]);
    docs.into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}
