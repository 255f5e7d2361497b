//! The offline analyzer: which statements of a pattern are enforceable deny rules, and which.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::Pattern;

/// A deny rule the generator knows how to enforce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Rule {
    /// Workloads carry the label `key`.
    RequireLabel { key: String },
    /// Workloads carry the annotation `key`.
    RequireAnnotation { key: String },
    /// Images name a tag, and not `latest`.
    DenyLatestTag,
    /// Images come from `prefix` (a registry, optionally with a path).
    RequireRegistry { prefix: String },
    /// Containers set a limit on `resource` (`cpu` or `memory`).
    RequireLimit { resource: String },
    /// Containers set a request for `resource`.
    RequireRequest { resource: String },
    /// No privileged container.
    DenyPrivileged,
    /// No host `namespace` (`Network`, `PID` or `IPC`).
    DenyHostNamespace { namespace: String },
    /// No hostPath volume.
    DenyHostPath,
    /// The Pod runs as a non-root user.
    RequireRunAsNonRoot,
    /// Containers define a `probe` (`readiness` or `liveness`) probe.
    RequireProbe { probe: String },
    /// Deployments and StatefulSets run at least `min` replicas.
    MinReplicas { min: u32 },
}

/// A statement that is not an enforceable deny rule here, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub statement: String,
    pub reason: String,
}

/// The analysis of a pattern: each enforceable rule with the statement it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Analysis {
    pub rules: Vec<(String, Rule)>,
    pub skipped: Vec<Skipped>,
}

/// "must not", "never" and their kin.
const NOT: &str = r"(?:must not|mustn't|shall not|should not|cannot|can't|may not|never|are not allowed to|is not allowed to)";
/// "must" and its kin.
const MUST: &str = r"(?:must|shall|should|need to|needs to|are required to|is required to)";
const HAVE: &str = r"(?:have|carry|set|define|declare|include|specify|use)";

fn re(pattern: String) -> Regex {
    Regex::new(&format!("(?i){pattern}")).expect("analyzer patterns are valid")
}

static LABEL: LazyLock<Regex> = LazyLock::new(|| {
    re(format!(
        r"{MUST} (?:be labell?ed (?:with )?(?:an? |the )?(?:label )?|{HAVE} (?:an? |the )?label )(\S+)"
    ))
});
static LABEL_REQUIRED: LazyLock<Regex> =
    LazyLock::new(|| re(r"\blabel (\S+) (?:is|must be) (?:required|mandatory|set)".into()));
static ANNOTATION: LazyLock<Regex> = LazyLock::new(|| {
    re(format!(
        r"{MUST} (?:be annotated (?:with )?(?:an? |the )?(?:annotation )?|{HAVE} (?:an? |the )?annotation )(\S+)"
    ))
});
static LATEST: LazyLock<Regex> = LazyLock::new(|| {
    re(format!(
        r"(?:{NOT} use (?:the |an? )?(?:image )?(?:tag )?latest|\blatest\b(?: image)?(?: tag)? (?:is|are) (?:not allowed|forbidden|prohibited)|{MUST} (?:pin|use) (?:an? )?(?:explicit |specific |fixed )?(?:image )?(?:tags?|versions?))"
    ))
});
static REGISTRY: LazyLock<Regex> = LazyLock::new(|| {
    re(format!(
        r"(?:images? {MUST} (?:come|be pulled|be) from (?:the )?(?:registry )?|only images from (?:the )?(?:registry )?)(\S+)"
    ))
});
static RESOURCES: LazyLock<Regex> = LazyLock::new(|| {
    re(format!(
        r"(?:{MUST} {HAVE} (?:(cpu|memory) )?(?:resource )?(limits|requests)|(?:(cpu|memory) )?(?:resource )?(limits|requests) (?:must|shall|are required to) be (?:set|defined|specified))"
    ))
});
static PRIVILEGED: LazyLock<Regex> = LazyLock::new(|| {
    re(format!(
        r"(?:{NOT} (?:run |be )?(?:as |in )?privileged|privileged (?:containers?|mode|pods?) (?:is|are) (?:not allowed|forbidden|prohibited))"
    ))
});
static HOST_NS: LazyLock<Regex> = LazyLock::new(|| {
    re(format!(
        r"{NOT} (?:use|share|join) (?:the )?host ?(network|pid|ipc)"
    ))
});
static HOST_PATH: LazyLock<Regex> = LazyLock::new(|| {
    re(format!(
        r"(?:{NOT} (?:use|mount) (?:a |any )?host ?path|host ?path volumes? (?:is|are) (?:not allowed|forbidden|prohibited))"
    ))
});
static ROOT: LazyLock<Regex> = LazyLock::new(|| {
    re(format!(
        r"(?:{NOT} run as root|{MUST} run as (?:a )?non-?root)"
    ))
});
static PROBE: LazyLock<Regex> = LazyLock::new(|| {
    re(format!(
        r"{MUST} {HAVE} (?:an? )?(readiness|liveness) probes?"
    ))
});
static REPLICAS: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:at least|a minimum of|no fewer than|minimum) (\d+) replicas".into()));

/// A label or annotation key as written: quotes, backticks and trailing punctuation gone.
fn key(raw: &str) -> String {
    raw.trim_matches(|c: char| matches!(c, '`' | '"' | '\'' | '.' | ',' | ';' | ':' | ')' | '('))
        .to_string()
}

/// The enforceable deny rules of each statement; a statement can yield several (both cpu
/// and memory limits), or none (then it is listed as skipped, with the reason).
pub fn analyze(pattern: &Pattern) -> Analysis {
    let mut out = Analysis::default();
    for statement in &pattern.rules {
        let found = rules_of(statement);
        if found.is_empty() {
            out.skipped.push(Skipped {
                statement: statement.clone(),
                reason: "no enforceable deny rule recognised: the offline analyzer knows \
                         required labels and annotations, image tags and registries, resource \
                         limits and requests, privilege, host namespaces and paths, running as \
                         root, probes and replica minimums"
                    .into(),
            });
        }
        for rule in found {
            if !out.rules.iter().any(|(_, r)| *r == rule) {
                out.rules.push((statement.clone(), rule));
            }
        }
    }
    out
}

fn rules_of(s: &str) -> Vec<Rule> {
    let mut out = Vec::new();
    if let Some(c) = LABEL.captures(s).or_else(|| LABEL_REQUIRED.captures(s)) {
        out.push(Rule::RequireLabel { key: key(&c[1]) });
    }
    if let Some(c) = ANNOTATION.captures(s) {
        out.push(Rule::RequireAnnotation { key: key(&c[1]) });
    }
    if LATEST.is_match(s) {
        out.push(Rule::DenyLatestTag);
    }
    if let Some(c) = REGISTRY.captures(s) {
        out.push(Rule::RequireRegistry {
            prefix: key(&c[1]).trim_end_matches('/').to_string(),
        });
    }
    if let Some(c) = RESOURCES.captures(s) {
        let which = c.get(1).or(c.get(3)).map(|m| m.as_str().to_lowercase());
        let kind = c
            .get(2)
            .or(c.get(4))
            .map_or("limits", |m| m.as_str())
            .to_lowercase();
        let resources = match which {
            Some(r) => vec![r],
            None => vec!["cpu".to_string(), "memory".to_string()],
        };
        for resource in resources {
            out.push(if kind == "requests" {
                Rule::RequireRequest { resource }
            } else {
                Rule::RequireLimit { resource }
            });
        }
    }
    if PRIVILEGED.is_match(s) {
        out.push(Rule::DenyPrivileged);
    }
    for c in HOST_NS.captures_iter(s) {
        let namespace = match c[1].to_lowercase().as_str() {
            "network" => "Network",
            "pid" => "PID",
            _ => "IPC",
        };
        out.push(Rule::DenyHostNamespace {
            namespace: namespace.into(),
        });
    }
    if HOST_PATH.is_match(s) {
        out.push(Rule::DenyHostPath);
    }
    if ROOT.is_match(s) {
        out.push(Rule::RequireRunAsNonRoot);
    }
    if let Some(c) = PROBE.captures(s) {
        out.push(Rule::RequireProbe {
            probe: c[1].to_lowercase(),
        });
    }
    if let Some(min) = REPLICAS.captures(s).and_then(|c| c[1].parse().ok()) {
        out.push(Rule::MinReplicas { min });
    }
    out
}
