//! The JSON evaluation context and `{{ }}` variable substitution.

use std::cell::OnceCell;

use jmespath::Rcvar;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::jmes;

/// The document variables are resolved against: `request`, `images`, `element`, context
/// variables and values from a CLI values file.
///
/// The JMESPath form of the document is built once and reused until the next [`set`]
/// (`EvalContext::set`), so a rule's many queries do not each convert the whole resource.
#[derive(Debug, Clone)]
pub struct EvalContext {
    /// Always a JSON object.
    root: Value,
    compiled: OnceCell<Rcvar>,
}

impl Default for EvalContext {
    fn default() -> Self {
        EvalContext {
            root: Value::Object(Map::new()),
            compiled: OnceCell::new(),
        }
    }
}

/// How an unresolvable variable is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An error (patterns, context values): Kyverno reports the rule as `error`.
    Strict,
    /// Replaced by an empty string (preconditions and deny conditions, as Kyverno does).
    Lenient,
}

impl EvalContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// The whole context as a JSON object.
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// Sets `value` at a dotted path (`request.operation`, or with a quoted segment as the
    /// Kyverno CLI's values allow: `annotations."example.com/platform"`), creating objects on
    /// the way.
    pub fn set(&mut self, path: &str, value: Value) {
        self.compiled = OnceCell::new();
        let parts = path_segments(path);
        let Value::Object(root) = &mut self.root else {
            return;
        };
        let mut cur = root;
        for (i, part) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                cur.insert(part.to_string(), value);
                return;
            }
            let entry = cur
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(next) = entry else { return };
            cur = next;
        }
    }

    /// Whether a top-level or dotted path holds a value.
    pub fn has(&self, path: &str) -> bool {
        let mut cur = Some(&self.root);
        for part in path_segments(path) {
            cur = cur.and_then(|v| v.get(part));
        }
        cur.is_some()
    }

    /// Evaluates a JMESPath expression against the context.
    pub fn query(&self, expression: &str) -> Result<Value> {
        let expr = expression.trim();
        if expr.is_empty() {
            return Err(Error::Jmespath {
                expression: expression.to_string(),
                message: "empty expression".into(),
            });
        }
        if self.compiled.get().is_none() {
            let var = jmes::to_variable(&self.root)?;
            let _ = self.compiled.set(var);
        }
        match self.compiled.get() {
            Some(var) => jmes::search_variable(expr, var),
            None => jmes::search(expr, &self.root),
        }
    }

    /// Substitutes every `{{ }}` in a JSON document (string leaves only).
    pub fn substitute(&self, doc: &Value, mode: Mode) -> Result<Value> {
        Ok(match doc {
            Value::String(s) => self.substitute_str(s, mode)?,
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.substitute(v, mode))
                    .collect::<Result<_>>()?,
            ),
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, v) in m {
                    out.insert(k.clone(), self.substitute(v, mode)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    /// Substitutes variables in one string. A string that is exactly one variable becomes the
    /// variable's value with its JSON type; otherwise values are interpolated as text.
    pub fn substitute_str(&self, s: &str, mode: Mode) -> Result<Value> {
        let spans = find_variables(s);
        if spans.is_empty() {
            return Ok(Value::String(unescape(s)));
        }
        if spans.len() == 1 && spans[0].0 == 0 && spans[0].1 == s.len() {
            let inner = &s[2..s.len() - 2];
            return self.resolve(inner, mode);
        }
        let mut out = String::with_capacity(s.len());
        let mut last = 0;
        for (start, end) in spans {
            out.push_str(&unescape(&s[last..start]));
            let value = self.resolve(&s[start + 2..end - 2], mode)?;
            match value {
                Value::String(v) => out.push_str(&v),
                other => out.push_str(&other.to_string()),
            }
            last = end;
        }
        out.push_str(&unescape(&s[last..]));
        Ok(Value::String(out))
    }

    /// Substitutes a message; a variable that cannot be resolved is left as written.
    pub fn substitute_message(&self, s: &str) -> String {
        match self.substitute_str(s, Mode::Strict) {
            Ok(Value::String(v)) => v,
            Ok(other) => other.to_string(),
            Err(_) => s.to_string(),
        }
    }

    fn resolve(&self, variable: &str, mode: Mode) -> Result<Value> {
        // Nested variables (`{{ f('{{ inner }}') }}`) are substituted innermost first, as text.
        let nested;
        let expr = if has_variables(variable) {
            nested = match self.substitute_str(variable, mode)? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            nested.trim()
        } else {
            variable.trim()
        };
        let result = self.query(expr);
        match (result, mode) {
            (Ok(Value::Null), Mode::Strict) => Err(Error::Variable {
                variable: expr.to_string(),
                message: "the path was not found in the context".into(),
            }),
            (Ok(v), Mode::Strict) => Ok(v),
            (Ok(Value::Null) | Err(_), Mode::Lenient) => Ok(Value::String(String::new())),
            (Ok(v), Mode::Lenient) => Ok(v),
            (Err(e), Mode::Strict) => Err(Error::Variable {
                variable: expr.to_string(),
                message: e.to_string(),
            }),
        }
    }
}

/// The segments of a dotted path; a segment in double quotes keeps its dots
/// (`metadata.annotations."example.com/team"` has three).
fn path_segments(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = path;
    loop {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            out.push(&quoted[..end]);
            rest = quoted.get(end + 1..).unwrap_or("");
            match rest.strip_prefix('.') {
                Some(next) => rest = next,
                None => return out,
            }
        } else {
            match rest.split_once('.') {
                Some((seg, next)) => {
                    out.push(seg);
                    rest = next;
                }
                None => {
                    out.push(rest);
                    return out;
                }
            }
        }
    }
}

/// Byte spans `(start, end)` of unescaped `{{ ... }}` variables. Single braces may nest inside
/// (JMESPath multi-select hashes).
fn find_variables(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'{' && b[i + 1] == b'{' && (i == 0 || b[i - 1] != b'\\') {
            let mut j = i + 2;
            let mut depth = 0usize;
            let mut end = None;
            let mut quote: Option<u8> = None;
            while j < b.len() {
                let c = b[j];
                if let Some(q) = quote {
                    if c == q {
                        quote = None;
                    }
                } else if c == b'\'' || c == b'`' || c == b'"' {
                    quote = Some(c);
                } else if c == b'{' {
                    depth += 1;
                } else if c == b'}' {
                    if depth == 0 {
                        if j + 1 < b.len() && b[j + 1] == b'}' {
                            end = Some(j + 2);
                        }
                        break;
                    }
                    depth -= 1;
                }
                j += 1;
            }
            match end {
                Some(e) => {
                    out.push((i, e));
                    i = e;
                }
                None => i += 2,
            }
        } else {
            i += 1;
        }
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("\\{{", "{{")
}

/// Whether a string holds a `{{ }}` variable.
pub fn has_variables(s: &str) -> bool {
    !find_variables(s).is_empty()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx() -> EvalContext {
        let mut c = EvalContext::new();
        c.set(
            "request.object",
            json!({"metadata": {"name": "web", "labels": {"a": "1"}}, "spec": {"replicas": 3}}),
        );
        c.set("request.operation", json!("CREATE"));
        c
    }

    #[test]
    fn typed_and_interpolated() {
        let c = ctx();
        assert_eq!(
            c.substitute_str("{{ request.object.spec.replicas }}", Mode::Strict)
                .unwrap(),
            json!(3)
        );
        assert_eq!(
            c.substitute_str(
                "name={{request.object.metadata.name}}/{{ request.object.spec.replicas }}",
                Mode::Strict
            )
            .unwrap(),
            json!("name=web/3")
        );
        assert_eq!(
            c.substitute_str(
                "{{ request.object.metadata.labels | {x: a} }}",
                Mode::Strict
            )
            .unwrap(),
            json!({"x": "1"})
        );
        assert_eq!(
            c.substitute_str("\\{{ literal }}", Mode::Strict).unwrap(),
            json!("{{ literal }}")
        );
        assert_eq!(
            c.substitute_str(
                "{{ to_upper('{{ request.object.metadata.name }}') }}",
                Mode::Strict
            )
            .unwrap(),
            json!("WEB")
        );
    }

    #[test]
    fn missing_paths_by_mode() {
        let c = ctx();
        assert!(c
            .substitute_str("{{ request.object.nope }}", Mode::Strict)
            .is_err());
        assert_eq!(
            c.substitute_str("{{ request.object.nope }}", Mode::Lenient)
                .unwrap(),
            json!("")
        );
        assert_eq!(c.substitute_message("x {{ nope }} y"), "x {{ nope }} y");
    }

    #[test]
    fn dotted_set() {
        let mut c = ctx();
        c.set("request.operation", json!("UPDATE"));
        assert_eq!(c.query("request.operation").unwrap(), json!("UPDATE"));
        assert_eq!(
            c.query("request.object.metadata.name").unwrap(),
            json!("web")
        );
        assert!(c.has("request.object.spec"));
        assert!(!c.has("request.oldObject"));
    }
}
