//! JMESPath with Kyverno's custom functions, over `serde_json::Value`.

use std::sync::LazyLock;

use jmespath::ast::Ast;
use jmespath::functions::{ArgumentType as A, CustomFunction, Signature};
use jmespath::{
    Context, ErrorReason, JmespathError, Rcvar, Runtime, RuntimeError, SearchResult, Variable,
};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::timefmt::{cron_fields, format_rfc3339, now, parse_rfc3339};
use crate::value::{
    format_duration, parse_duration, parse_quantity, semver_matches, sprint, wildcard_match, SemVer,
};

static RUNTIME: LazyLock<Runtime> = LazyLock::new(build_runtime);

/// Evaluates a JMESPath expression against `data`.
pub fn search(expression: &str, data: &Value) -> Result<Value> {
    search_variable(expression, &to_variable(data)?)
}

/// Converts a document to the interpreter's form (done once per context, see
/// [`crate::vars::EvalContext`]).
pub fn to_variable(data: &Value) -> Result<Rcvar> {
    Variable::try_from(data)
        .map(Rcvar::new)
        .map_err(|e| Error::Jmespath {
            expression: String::new(),
            message: e.to_string(),
        })
}

/// Evaluates a JMESPath expression against an already converted document.
pub fn search_variable(expression: &str, data: &Rcvar) -> Result<Value> {
    let err = |message: String| Error::Jmespath {
        expression: expression.to_string(),
        message,
    };
    if nesting_depth(expression) > MAX_NESTING {
        return Err(err(format!(
            "expression nests deeper than {MAX_NESTING} levels"
        )));
    }
    let ast = jmespath::parse(expression).map_err(|e| err(e.to_string()))?;
    let mut ctx = Context::new(expression, &RUNTIME);
    let out = interpret(data, &ast, &mut ctx).map_err(|e| err(e.to_string()))?;
    serde_json::to_value(&*out).map_err(|e| err(e.to_string()))
}

/// Bound on bracket nesting, so that hostile expressions cannot exhaust the parser's stack.
const MAX_NESTING: usize = 64;

fn nesting_depth(expr: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for c in expr.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                max = max.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max.max(expr.matches('.').count() / 8)
        .max(expr.matches('|').count() / 4)
}

fn null() -> Rcvar {
    Rcvar::new(Variable::Null)
}

/// The JMESPath interpreter with Kyverno's (go-jmespath's) behaviour: a sub-expression whose
/// left side is null is null, without evaluating the right side (so `a[].b.keys(@)` skips
/// elements without `b` instead of failing on `keys(null)`).
fn interpret(data: &Rcvar, node: &Ast, ctx: &mut Context<'_>) -> SearchResult {
    Ok(match node {
        Ast::Field { name, .. } => data.get_field(name),
        Ast::Subexpr { lhs, rhs, .. } => {
            let left = interpret(data, lhs, ctx)?;
            if left.is_null() {
                return Ok(left);
            }
            interpret(&left, rhs, ctx)?
        }
        Ast::Identity { .. } => data.clone(),
        Ast::Literal { value, .. } => value.clone(),
        Ast::Index { idx, .. } => {
            if *idx >= 0 {
                data.get_index(*idx as usize)
            } else {
                data.get_negative_index(idx.unsigned_abs() as usize)
            }
        }
        Ast::Or { lhs, rhs, .. } => {
            let left = interpret(data, lhs, ctx)?;
            if left.is_truthy() {
                left
            } else {
                interpret(data, rhs, ctx)?
            }
        }
        Ast::And { lhs, rhs, .. } => {
            let left = interpret(data, lhs, ctx)?;
            if left.is_truthy() {
                interpret(data, rhs, ctx)?
            } else {
                left
            }
        }
        Ast::Not { node, .. } => {
            Rcvar::new(Variable::Bool(!interpret(data, node, ctx)?.is_truthy()))
        }
        Ast::Condition {
            predicate, then, ..
        } => {
            if interpret(data, predicate, ctx)?.is_truthy() {
                interpret(data, then, ctx)?
            } else {
                null()
            }
        }
        Ast::Comparison {
            comparator,
            lhs,
            rhs,
            ..
        } => {
            let left = interpret(data, lhs, ctx)?;
            let right = interpret(data, rhs, ctx)?;
            left.compare(comparator, &right)
                .map_or_else(null, |b| Rcvar::new(Variable::Bool(b)))
        }
        Ast::ObjectValues { node, .. } => match interpret(data, node, ctx)?.as_object() {
            Some(m) => Rcvar::new(Variable::Array(m.values().cloned().collect())),
            None => null(),
        },
        Ast::Projection { lhs, rhs, .. } => match interpret(data, lhs, ctx)?.as_array() {
            None => null(),
            Some(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let v = interpret(item, rhs, ctx)?;
                    if !v.is_null() {
                        out.push(v);
                    }
                }
                Rcvar::new(Variable::Array(out))
            }
        },
        Ast::Flatten { node, .. } => match interpret(data, node, ctx)?.as_array() {
            None => null(),
            Some(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item.as_array() {
                        Some(inner) => out.extend(inner.iter().cloned()),
                        None => out.push(item.clone()),
                    }
                }
                Rcvar::new(Variable::Array(out))
            }
        },
        Ast::MultiList { elements, .. } => {
            if data.is_null() {
                return Ok(null());
            }
            let mut out = Vec::with_capacity(elements.len());
            for e in elements {
                out.push(interpret(data, e, ctx)?);
            }
            Rcvar::new(Variable::Array(out))
        }
        Ast::MultiHash { elements, .. } => {
            if data.is_null() {
                return Ok(null());
            }
            let mut out = std::collections::BTreeMap::new();
            for kv in elements {
                out.insert(kv.key.clone(), interpret(data, &kv.value, ctx)?);
            }
            Rcvar::new(Variable::Object(out))
        }
        Ast::Function { name, args, offset } => {
            let mut values = Vec::with_capacity(args.len());
            for a in args {
                values.push(interpret(data, a, ctx)?);
            }
            ctx.offset = *offset;
            match ctx.runtime.get_function(name) {
                Some(f) => f.evaluate(&values, ctx)?,
                None => {
                    let reason = ErrorReason::Runtime(RuntimeError::UnknownFunction(name.clone()));
                    return Err(JmespathError::from_ctx(ctx, reason));
                }
            }
        }
        Ast::Expref { ast, .. } => Rcvar::new(Variable::Expref((**ast).clone())),
        Ast::Slice {
            start,
            stop,
            step,
            offset,
        } => {
            if *step == 0 {
                ctx.offset = *offset;
                return Err(JmespathError::from_ctx(
                    ctx,
                    ErrorReason::Runtime(RuntimeError::InvalidSlice),
                ));
            }
            match data.slice(*start, *stop, *step) {
                Some(items) => Rcvar::new(Variable::Array(items)),
                None => null(),
            }
        }
    })
}

type Native = fn(&[Value]) -> std::result::Result<Value, String>;

fn register(rt: &mut Runtime, name: &str, inputs: Vec<A>, variadic: Option<A>, f: Native) {
    let func = move |args: &[Rcvar], ctx: &mut Context<'_>| {
        let values: Vec<Value> = args
            .iter()
            .map(|a| serde_json::to_value(&**a).unwrap_or(Value::Null))
            .collect();
        let fail =
            |m: String| JmespathError::new(ctx.expression, ctx.offset, ErrorReason::Parse(m));
        let out = f(&values).map_err(fail)?;
        let var = Variable::try_from(out).map_err(|e| fail(e.to_string()))?;
        Ok(Rcvar::new(var))
    };
    rt.register_function(
        name,
        Box::new(CustomFunction::new(
            Signature::new(inputs, variadic),
            Box::new(func),
        )),
    );
}

fn s(v: &Value) -> std::result::Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(_) | Value::Bool(_) => Ok(sprint(v)),
        other => Err(format!("expected a string, got {other}")),
    }
}

fn num(v: &Value) -> std::result::Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| "bad number".to_string()),
        other => Err(format!("expected a number, got {other}")),
    }
}

fn number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9e15 {
        json!(f as i64)
    } else {
        json!(f)
    }
}

fn format_quantity(f: f64) -> String {
    if f.fract() == 0.0 {
        format!("{}", f as i64)
    } else if (f * 1000.0).fract().abs() < 1e-9 {
        format!("{}m", (f * 1000.0).round() as i64)
    } else {
        format!("{f}")
    }
}

#[derive(Clone, Copy)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

fn arith(args: &[Value], op: Arith) -> std::result::Result<Value, String> {
    let (a, b) = (&args[0], &args[1]);
    let apply = |x: f64, y: f64| -> std::result::Result<f64, String> {
        Ok(match op {
            Arith::Add => x + y,
            Arith::Sub => x - y,
            Arith::Mul => x * y,
            Arith::Div => {
                if y == 0.0 {
                    return Err("division by zero".into());
                }
                x / y
            }
            Arith::Mod => {
                if y == 0.0 {
                    return Err("modulo by zero".into());
                }
                x % y
            }
        })
    };
    if let (Value::Number(_), Value::Number(_)) = (a, b) {
        return apply(num(a)?, num(b)?).map(number);
    }
    let q = |v: &Value| match v {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    if let (Some(x), Some(y)) = (q(a), q(b)) {
        let r = apply(x, y)?;
        return if matches!(op, Arith::Div) && a.is_string() && b.is_string() {
            Ok(number(r))
        } else {
            Ok(json!(format_quantity(r)))
        };
    }
    let durations = (
        a.as_str().and_then(parse_duration),
        b.as_str().and_then(parse_duration),
    );
    match durations {
        (Some(x), Some(y)) => {
            let r = apply(x, y)?;
            return Ok(match op {
                Arith::Div => number(r),
                _ => json!(format_duration(r)),
            });
        }
        (Some(x), None) if b.is_number() => return Ok(json!(format_duration(apply(x, num(b)?)?))),
        _ => {}
    }
    Err(format!("unsupported operands {a} and {b}"))
}

fn time_arg(v: &Value) -> std::result::Result<f64, String> {
    let t = s(v)?;
    parse_rfc3339(&t).ok_or_else(|| format!("not an RFC 3339 time: {t}"))
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= n {
                out.push(char::from(T[((v >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> std::result::Result<Vec<u8>, String> {
    let clean: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0;
    for (i, &c) in clean.iter().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => {
                if clean[i..].iter().all(|&x| x == b'=') {
                    break;
                }
                return Err("invalid base64 padding".into());
            }
            _ => return Err("invalid base64 character".into()),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
        }
    }
    Ok(out)
}

fn build_runtime() -> Runtime {
    let mut rt = Runtime::new();
    rt.register_builtin_functions();
    let r = &mut rt;
    register(r, "compare", vec![A::String, A::String], None, |a| {
        Ok(json!(s(&a[0])?.cmp(&s(&a[1])?) as i8))
    });
    register(r, "equal_fold", vec![A::String, A::String], None, |a| {
        Ok(json!(s(&a[0])?.to_lowercase() == s(&a[1])?.to_lowercase()))
    });
    register(
        r,
        "replace",
        vec![A::String, A::String, A::String, A::Number],
        None,
        |a| {
            let n = num(&a[3])?;
            let (src, old, new) = (s(&a[0])?, s(&a[1])?, s(&a[2])?);
            Ok(json!(if n < 0.0 {
                src.replace(&old, &new)
            } else {
                src.replacen(&old, &new, n as usize)
            }))
        },
    );
    register(
        r,
        "replace_all",
        vec![A::String, A::String, A::String],
        None,
        |a| Ok(json!(s(&a[0])?.replace(&s(&a[1])?, &s(&a[2])?))),
    );
    register(r, "to_upper", vec![A::String], None, |a| {
        Ok(json!(s(&a[0])?.to_uppercase()))
    });
    register(r, "to_lower", vec![A::String], None, |a| {
        Ok(json!(s(&a[0])?.to_lowercase()))
    });
    register(r, "trim", vec![A::String, A::String], None, |a| {
        let cut: Vec<char> = s(&a[1])?.chars().collect();
        Ok(json!(s(&a[0])?.trim_matches(|c| cut.contains(&c))))
    });
    register(r, "trim_prefix", vec![A::String, A::String], None, |a| {
        let (x, p) = (s(&a[0])?, s(&a[1])?);
        Ok(json!(x.strip_prefix(p.as_str()).unwrap_or(&x)))
    });
    register(r, "split", vec![A::String, A::String], None, |a| {
        let (x, sep) = (s(&a[0])?, s(&a[1])?);
        let parts: Vec<String> = if sep.is_empty() {
            x.chars().map(String::from).collect()
        } else {
            x.split(sep.as_str()).map(String::from).collect()
        };
        Ok(json!(parts))
    });
    register(
        r,
        "regex_replace_all",
        vec![A::String, A::Any, A::Any],
        None,
        |a| {
            let re = regex::Regex::new(&s(&a[0])?).map_err(|e| e.to_string())?;
            let repl = go_replacement(&s(&a[2])?);
            Ok(json!(re
                .replace_all(&s(&a[1])?, repl.as_str())
                .into_owned()))
        },
    );
    register(
        r,
        "regex_replace_all_literal",
        vec![A::String, A::Any, A::Any],
        None,
        |a| {
            let re = regex::Regex::new(&s(&a[0])?).map_err(|e| e.to_string())?;
            Ok(json!(re
                .replace_all(&s(&a[1])?, regex::NoExpand(&s(&a[2])?))
                .into_owned()))
        },
    );
    register(r, "regex_match", vec![A::String, A::Any], None, |a| {
        let re = regex::Regex::new(&s(&a[0])?).map_err(|e| e.to_string())?;
        Ok(json!(re.is_match(&s(&a[1])?)))
    });
    register(r, "pattern_match", vec![A::String, A::Any], None, |a| {
        Ok(json!(wildcard_match(&s(&a[0])?, &s(&a[1])?)))
    });
    register(r, "label_match", vec![A::Object, A::Object], None, |a| {
        let (Some(sel), Some(labels)) = (a[0].as_object(), a[1].as_object()) else {
            return Err("label_match expects two objects".into());
        };
        Ok(json!(sel.iter().all(|(k, v)| labels.get(k) == Some(v))))
    });
    register(r, "add", vec![A::Any, A::Any], None, |a| {
        arith(a, Arith::Add)
    });
    register(r, "subtract", vec![A::Any, A::Any], None, |a| {
        arith(a, Arith::Sub)
    });
    register(r, "multiply", vec![A::Any, A::Any], None, |a| {
        arith(a, Arith::Mul)
    });
    register(r, "divide", vec![A::Any, A::Any], None, |a| {
        arith(a, Arith::Div)
    });
    register(r, "modulo", vec![A::Any, A::Any], None, |a| {
        arith(a, Arith::Mod)
    });
    register(r, "round", vec![A::Number, A::Number], None, |a| {
        let p = 10f64.powi(num(&a[1])? as i32);
        Ok(number((num(&a[0])? * p).round() / p))
    });
    register(r, "base64_encode", vec![A::String], None, |a| {
        Ok(json!(base64_encode(s(&a[0])?.as_bytes())))
    });
    register(r, "base64_decode", vec![A::String], None, |a| {
        let bytes = base64_decode(&s(&a[0])?)?;
        Ok(json!(String::from_utf8_lossy(&bytes)))
    });
    register(r, "truncate", vec![A::String, A::Number], None, |a| {
        let n = num(&a[1])?.max(0.0) as usize;
        Ok(json!(s(&a[0])?.chars().take(n).collect::<String>()))
    });
    register(r, "semver_compare", vec![A::String, A::String], None, |a| {
        let v = SemVer::parse(&s(&a[0])?).ok_or("invalid version")?;
        semver_matches(&v, &s(&a[1])?)
            .map(|b| json!(b))
            .ok_or_else(|| "invalid version range".to_string())
    });
    register(r, "parse_json", vec![A::String], None, |a| {
        serde_json::from_str(&s(&a[0])?).map_err(|e| e.to_string())
    });
    register(r, "parse_yaml", vec![A::String], None, |a| {
        yaml_serde::from_str::<Value>(&s(&a[0])?).map_err(|e| e.to_string())
    });
    register(r, "lookup", vec![A::Any, A::Any], None, |a| {
        match (&a[0], &a[1]) {
            (Value::Object(m), Value::String(k)) => Ok(m.get(k).cloned().unwrap_or(Value::Null)),
            (Value::Array(l), Value::Number(n)) => {
                let i = n.as_f64().unwrap_or(-1.0);
                if i.fract() != 0.0 || i < 0.0 {
                    return Err("lookup index must be a non-negative integer".into());
                }
                Ok(l.get(i as usize).cloned().unwrap_or(Value::Null))
            }
            _ => Err("lookup expects (object, string) or (array, number)".into()),
        }
    });
    register(r, "items", vec![A::Any, A::String, A::String], None, |a| {
        let (k, v) = (s(&a[1])?, s(&a[2])?);
        match &a[0] {
            Value::Object(m) => Ok(Value::Array(
                m.iter()
                    .map(|(key, val)| json!({ k.clone(): key, v.clone(): val }))
                    .collect(),
            )),
            Value::Array(l) => Ok(Value::Array(
                l.iter()
                    .enumerate()
                    .map(|(i, val)| json!({ k.clone(): i, v.clone(): val }))
                    .collect(),
            )),
            _ => Err("items expects an object or array".into()),
        }
    });
    register(
        r,
        "object_from_lists",
        vec![A::Array, A::Array],
        None,
        |a| {
            let (Some(keys), Some(vals)) = (a[0].as_array(), a[1].as_array()) else {
                return Err("object_from_lists expects two arrays".into());
            };
            let mut m = serde_json::Map::new();
            for (i, k) in keys.iter().enumerate() {
                m.insert(s(k)?, vals.get(i).cloned().unwrap_or(Value::Null));
            }
            Ok(Value::Object(m))
        },
    );
    register(r, "sum", vec![A::Array], None, |a| {
        let items = a[0].as_array().ok_or("sum expects an array")?;
        let mut acc: Option<Value> = None;
        for item in items {
            acc = Some(match acc {
                None => item.clone(),
                Some(prev) => arith(&[prev, item.clone()], Arith::Add)?,
            });
        }
        acc.ok_or_else(|| "sum of an empty array".to_string())
    });
    register(r, "path_canonicalize", vec![A::String], None, |a| {
        Ok(json!(canonical_path(&s(&a[0])?)))
    });
    register(r, "time_now", vec![], None, |_| {
        Ok(json!(format_rfc3339(now().floor())))
    });
    register(r, "time_now_utc", vec![], None, |_| {
        Ok(json!(format_rfc3339(now().floor())))
    });
    register(r, "time_utc", vec![A::String], None, |a| {
        Ok(json!(format_rfc3339(time_arg(&a[0])?)))
    });
    register(r, "time_parse", vec![A::String, A::String], None, |a| {
        let text = s(&a[1])?;
        if let Ok(epoch) = text.parse::<f64>() {
            return Ok(json!(format_rfc3339(epoch)));
        }
        Ok(json!(format_rfc3339(time_arg(&a[1])?)))
    });
    register(
        r,
        "time_since",
        vec![A::String, A::String, A::String],
        None,
        |a| {
            let start = time_arg(&a[1])?;
            let end = if s(&a[2])?.is_empty() {
                now()
            } else {
                time_arg(&a[2])?
            };
            Ok(json!(format_duration(end - start)))
        },
    );
    register(r, "time_diff", vec![A::String, A::String], None, |a| {
        Ok(json!(format_duration(time_arg(&a[1])? - time_arg(&a[0])?)))
    });
    register(r, "time_add", vec![A::String, A::String], None, |a| {
        let d = parse_duration(&s(&a[1])?).ok_or("invalid duration")?;
        Ok(json!(format_rfc3339(time_arg(&a[0])? + d)))
    });
    register(r, "time_before", vec![A::String, A::String], None, |a| {
        Ok(json!(time_arg(&a[0])? < time_arg(&a[1])?))
    });
    register(r, "time_after", vec![A::String, A::String], None, |a| {
        Ok(json!(time_arg(&a[0])? > time_arg(&a[1])?))
    });
    register(
        r,
        "time_between",
        vec![A::String, A::String, A::String],
        None,
        |a| {
            let t = time_arg(&a[0])?;
            Ok(json!(t > time_arg(&a[1])? && t < time_arg(&a[2])?))
        },
    );
    register(r, "time_truncate", vec![A::String, A::String], None, |a| {
        let d = parse_duration(&s(&a[1])?).ok_or("invalid duration")?;
        let t = time_arg(&a[0])?;
        Ok(json!(format_rfc3339(if d > 0.0 {
            (t / d).floor() * d
        } else {
            t
        })))
    });
    register(
        r,
        "to_boolean",
        vec![A::String],
        None,
        |a| match s(&a[0])?.to_lowercase().as_str() {
            "true" => Ok(json!(true)),
            "false" => Ok(json!(false)),
            other => Err(format!(
                "to_boolean: lowercase argument must be 'true' or 'false' (provided: '{other}')"
            )),
        },
    );
    register(r, "sha256", vec![A::String], None, |a| {
        Ok(json!(hex_digest::<sha2::Sha256>(&s(&a[0])?)))
    });
    register(r, "sha1", vec![A::String], None, |a| {
        Ok(json!(hex_digest::<sha1::Sha1>(&s(&a[0])?)))
    });
    register(r, "md5", vec![A::String], None, |a| {
        Ok(json!(hex_digest::<md5::Md5>(&s(&a[0])?)))
    });
    register(r, "image_normalize", vec![A::String], None, |a| {
        let info = crate::engine::image_info(&s(&a[0])?);
        let text = |k: &str| info[k].as_str().unwrap_or("").to_string();
        let name = format!("{}/{}", text("registry"), text("path"));
        Ok(json!(match text("digest").as_str() {
            "" => format!("{name}:{}", text("tag")),
            digest => format!("{name}@{digest}"),
        }))
    });
    register(r, "is_external_url", vec![A::String], None, |a| {
        is_external_url(&s(&a[0])?).map(|b| json!(b))
    });
    register(r, "random", vec![A::String], None, |a| {
        random_matching(&s(&a[0])?).map(|t| json!(t))
    });
    register(r, "x509_decode", vec![A::String], None, |_| {
        Err("x509_decode is not supported by this evaluator".into())
    });
    register(r, "time_to_cron", vec![A::String], None, |a| {
        let (mi, h, d, mo, wd) = cron_fields(time_arg(&a[0])?);
        Ok(json!(format!("{mi} {h} {d} {mo} {wd}")))
    });
    rt
}

/// Lower-case hex of a digest of `text`.
fn hex_digest<D: sha2::Digest>(text: &str) -> String {
    D::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Kyverno's `is_external_url`: false for a loopback or private address. A host name needs
/// DNS, which an offline evaluator does not do: that is an error (the rule reports `error`),
/// except `localhost`.
fn is_external_url(text: &str) -> std::result::Result<bool, String> {
    let authority = text
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
        .ok_or_else(|| format!("is_external_url: {text:?} has no host"))?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    };
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(false);
    }
    let ip: std::net::IpAddr = host.parse().map_err(|_| {
        format!("is_external_url: resolving {host:?} needs DNS, which is not done offline")
    })?;
    let internal = match ip {
        std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        std::net::IpAddr::V6(v6) => v6.is_loopback() || (v6.octets()[0] & 0xfe) == 0xfc,
    };
    Ok(!internal)
}

/// Kyverno's `random`: a random string matching a regular expression. Unbounded repetitions
/// stop at 10 more than their minimum, as goregen does; patterns that would produce more than
/// [`RANDOM_MAX_LEN`] characters (or repeat more than [`RANDOM_MAX_REPEAT`] times) are errors.
fn random_matching(pattern: &str) -> std::result::Result<String, String> {
    use regex_syntax::hir::{Class, Hir, HirKind};
    fn pick(total: u32, rng: &mut fastrand::Rng) -> u32 {
        rng.u32(0..total.max(1))
    }
    fn gen(
        hir: &Hir,
        rng: &mut fastrand::Rng,
        out: &mut String,
    ) -> std::result::Result<(), String> {
        if out.len() > RANDOM_MAX_LEN {
            return Err(format!(
                "random: the pattern makes strings longer than {RANDOM_MAX_LEN} characters"
            ));
        }
        match hir.kind() {
            HirKind::Empty | HirKind::Look(_) => {}
            HirKind::Literal(lit) => out.push_str(&String::from_utf8_lossy(&lit.0)),
            HirKind::Class(Class::Unicode(c)) => {
                let mut n = pick(c.ranges().iter().map(|r| r.len() as u32).sum(), rng);
                for r in c.ranges() {
                    if n < r.len() as u32 {
                        out.extend(char::from_u32(r.start() as u32 + n));
                        break;
                    }
                    n -= r.len() as u32;
                }
            }
            HirKind::Class(Class::Bytes(c)) => {
                let mut n = pick(c.ranges().iter().map(|r| r.len() as u32).sum(), rng);
                for r in c.ranges() {
                    if n < r.len() as u32 {
                        out.push(char::from(r.start().wrapping_add(n as u8)));
                        break;
                    }
                    n -= r.len() as u32;
                }
            }
            HirKind::Repetition(rep) => {
                let max = rep.max.unwrap_or(rep.min.saturating_add(10));
                if max.max(rep.min) > RANDOM_MAX_REPEAT {
                    return Err(format!(
                        "random: repetitions above {RANDOM_MAX_REPEAT} are not generated"
                    ));
                }
                for _ in 0..rng.u32(rep.min..=max.max(rep.min)) {
                    gen(&rep.sub, rng, out)?;
                }
            }
            HirKind::Capture(cap) => gen(&cap.sub, rng, out)?,
            HirKind::Concat(items) => {
                for h in items {
                    gen(h, rng, out)?;
                }
            }
            HirKind::Alternation(items) => gen(&items[rng.usize(0..items.len())], rng, out)?,
        }
        Ok(())
    }
    if pattern.is_empty() {
        return Err("random: no pattern provided".into());
    }
    let hir = regex_syntax::Parser::new()
        .parse(pattern)
        .map_err(|e| format!("random: {e}"))?;
    let mut out = String::new();
    gen(&hir, &mut fastrand::Rng::new(), &mut out)?;
    Ok(out)
}

/// Longest string `random` generates.
const RANDOM_MAX_LEN: usize = 4096;
/// Most repetitions of one part of a `random` pattern.
const RANDOM_MAX_REPEAT: u32 = 1024;

/// Go's `${1}`/`$1` replacement syntax is the regex crate's too, except that Go treats `$1x` as
/// group `1x`; both crates agree for the forms policies use.
fn go_replacement(r: &str) -> String {
    r.to_string()
}

fn canonical_path(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !abs {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(expr: &str, data: Value) -> Value {
        search(expr, &data).unwrap()
    }

    #[test]
    fn standard_and_quoted_fields() {
        let data = json!({"metadata": {"labels": {"app.kubernetes.io/name": "x"}}, "a": [1, 2, 3]});
        assert_eq!(
            q("metadata.labels.\"app.kubernetes.io/name\"", data.clone()),
            json!("x")
        );
        assert_eq!(q("length(a)", data.clone()), json!(3));
        assert_eq!(q("a[?@ > `1`]", data.clone()), json!([2, 3]));
        assert_eq!(q("missing.field", data.clone()), Value::Null);
        // null short-circuits a sub-expression instead of failing in keys(null)
        let pods = json!({"c": [{"r": {"requests": {}}}, {"name": "x"}]});
        assert_eq!(q("c[].r.keys(@)[]", pods), json!(["requests"]));
    }

    #[test]
    fn kyverno_string_functions() {
        let d = json!({"s": "Hello-World"});
        assert_eq!(q("to_upper(s)", d.clone()), json!("HELLO-WORLD"));
        assert_eq!(q("split(s, '-')", d.clone()), json!(["Hello", "World"]));
        assert_eq!(q("regex_match('^H.*d$', s)", d.clone()), json!(true));
        assert_eq!(
            q("regex_replace_all('o', s, '0')", d.clone()),
            json!("Hell0-W0rld")
        );
        assert_eq!(q("truncate(s, `5`)", d.clone()), json!("Hello"));
        assert_eq!(q("pattern_match('Hello*', s)", d.clone()), json!(true));
        assert_eq!(
            q("base64_decode(base64_encode(s))", d.clone()),
            json!("Hello-World")
        );
        assert_eq!(q("base64_encode('ab')", d), json!("YWI="));
    }

    #[test]
    fn arithmetic_and_quantities() {
        let d = json!({});
        assert_eq!(q("add(`1`, `2`)", d.clone()), json!(3));
        assert_eq!(q("divide('1Gi', '512Mi')", d.clone()), json!(2));
        assert_eq!(q("add('1h', '30m')", d.clone()), json!("1h30m0s"));
        assert_eq!(q("multiply('250m', `2`)", d.clone()), json!("500m"));
        assert_eq!(q("round(`1.23456`, `2`)", d.clone()), json!(1.23));
        assert!(search("divide(`1`, `0`)", &d).is_err());
    }

    #[test]
    fn hashes_conversions_and_images() {
        assert_eq!(
            q("sha256('abc')", json!({})),
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            q("sha1('abc')", json!({})),
            json!("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(
            q("md5('abc')", json!({})),
            json!("900150983cd24fb0d6963f7d28e17f72")
        );
        assert_eq!(q("to_boolean('TruE')", json!({})), json!(true));
        assert_eq!(q("to_boolean('false')", json!({})), json!(false));
        assert!(search("to_boolean('yes')", &json!({})).is_err());
        assert_eq!(
            q("image_normalize('nginx')", json!({})),
            json!("docker.io/nginx:latest")
        );
        assert_eq!(
            q(
                "image_normalize('ghcr.io/kyverno/kyverno:v1.12')",
                json!({})
            ),
            json!("ghcr.io/kyverno/kyverno:v1.12")
        );
        assert_eq!(
            q("image_normalize('busybox@sha256:abcd')", json!({})),
            json!("docker.io/busybox@sha256:abcd")
        );
    }

    #[test]
    fn external_urls_are_judged_by_address() {
        for (url, external) in [
            ("https://8.8.8.8/x", true),
            ("http://10.1.2.3:8080/", false),
            ("http://user@192.168.0.1", false),
            ("http://[::1]:80/", false),
            ("http://[fd00::1]/", false),
            ("http://localhost:3000", false),
        ] {
            assert_eq!(
                q(&format!("is_external_url('{url}')"), json!({})),
                json!(external),
                "{url}"
            );
        }
        let err = search("is_external_url('https://example.com')", &json!({})).unwrap_err();
        assert!(err.to_string().contains("needs DNS"), "{err}");
    }

    #[test]
    fn random_strings_match_their_pattern() {
        for pattern in ["[a-z0-9]{8}", "(ab|cd)+x?", "[A-F]{2}-\\d{3}"] {
            let got = q(&format!("random('{pattern}')"), json!({}));
            let re = regex::Regex::new(&format!("^(?:{pattern})$")).unwrap();
            assert!(re.is_match(got.as_str().unwrap()), "{pattern}: {got}");
        }
        assert!(search("random('')", &json!({})).is_err());
        assert!(search("random('(a{1000}){1000}')", &json!({})).is_err());
        assert!(search("random('(a|b){100000}')", &json!({})).is_err());
    }

    #[test]
    fn unknown_and_unsupported_functions_are_errors() {
        assert!(search("no_such_function('a')", &json!({})).is_err());
        let err = search("x509_decode('x')", &json!({})).unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
    }

    #[test]
    fn misc_functions() {
        let d = json!({"o": {"a": 1}, "y": "a: [1, 2]"});
        assert_eq!(q("lookup(o, 'a')", d.clone()), json!(1));
        assert_eq!(q("parse_yaml(y).a[1]", d.clone()), json!(2));
        assert_eq!(q("parse_json('{\"k\": true}').k", d.clone()), json!(true));
        assert_eq!(q("label_match(`{\"a\":1}`, o)", d.clone()), json!(true));
        assert_eq!(
            q("semver_compare('1.2.3', '>1.0.0')", d.clone()),
            json!(true)
        );
        assert_eq!(
            q("time_add('2023-01-01T00:00:00Z', '36h')", d.clone()),
            json!("2023-01-02T12:00:00Z")
        );
        assert_eq!(
            q(
                "time_diff('2023-01-01T00:00:00Z', '2023-01-01T01:00:00Z')",
                d.clone()
            ),
            json!("1h0m0s")
        );
        assert_eq!(
            q("time_to_cron('2023-01-02T03:04:05Z')", d.clone()),
            json!("4 3 2 1 1")
        );
        assert_eq!(q("path_canonicalize('/a/../b//c')", d), json!("/b/c"));
    }
}
