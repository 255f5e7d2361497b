//! Scalar helpers shared by patterns and conditions: wildcards, Kubernetes quantities, Go
//! durations, semantic versions and Go-style formatting of JSON values.

use std::cmp::Ordering;

use serde_json::Value;

/// Kyverno wildcard match: `*` matches any run of characters, `?` exactly one.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Whether a string contains wildcard characters.
pub fn has_wildcard(s: &str) -> bool {
    s.contains('*') || s.contains('?')
}

/// Parses a Kubernetes resource quantity (`500m`, `1Gi`, `2e3`, `1.5`) into a number.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let split = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || ((*c == '+' || *c == '-') && *i == 0)))
        .map_or(s.len(), |(i, _)| i);
    let (num, suffix) = s.split_at(split);
    if num.is_empty() || num == "+" || num == "-" || num.matches('.').count() > 1 {
        return None;
    }
    let base: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        other => {
            let exp = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))?;
            let e: i32 = exp.parse().ok()?;
            10f64.powi(e)
        }
    };
    Some(base * mult)
}

/// Parses a Go duration (`1h30m`, `300ms`, `-2s`, `0`) into seconds.
pub fn parse_duration(s: &str) -> Option<f64> {
    let mut s = s.trim();
    let mut sign = 1.0;
    if let Some(rest) = s.strip_prefix('-') {
        sign = -1.0;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Some(0.0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n == 0 {
            return None;
        }
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * unit;
        rest = &rest[u..];
    }
    Some(sign * total)
}

/// Formats a duration in seconds the way Go's `time.Duration.String` does (`1h0m0s`, `1.5s`).
pub fn format_duration(secs: f64) -> String {
    if secs == 0.0 {
        return "0s".to_string();
    }
    let neg = secs < 0.0;
    let mut s = secs.abs();
    let mut out = String::new();
    if s < 1.0 {
        let (v, unit) = if s < 1e-6 {
            (s * 1e9, "ns")
        } else if s < 1e-3 {
            (s * 1e6, "µs")
        } else {
            (s * 1e3, "ms")
        };
        out.push_str(&format!("{}{unit}", trim_float(v)));
    } else {
        let h = (s / 3600.0).floor();
        s -= h * 3600.0;
        let m = (s / 60.0).floor();
        s -= m * 60.0;
        if h > 0.0 {
            out.push_str(&format!("{h}h{m}m"));
        } else if m > 0.0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&format!("{}s", trim_float(s)));
    }
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

fn trim_float(v: f64) -> String {
    let r = (v * 1e9).round() / 1e9;
    format!("{r}")
}

/// A parsed semantic version (`1.2.3`, `v1.2`, with optional pre-release).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemVer {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<String>,
}

impl SemVer {
    /// Parses `MAJOR.MINOR.PATCH[-PRE][+BUILD]`, with a tolerated leading `v`.
    pub fn parse(s: &str) -> Option<SemVer> {
        let s = s.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let s = s.split('+').next()?;
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, p.split('.').map(str::to_string).collect()),
            None => (s, Vec::new()),
        };
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(SemVer {
            major,
            minor,
            patch,
            pre,
        })
    }
}

impl PartialOrd for SemVer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SemVer {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => {
                    for (a, b) in self.pre.iter().zip(other.pre.iter()) {
                        let o = match (a.parse::<u64>(), b.parse::<u64>()) {
                            (Ok(x), Ok(y)) => x.cmp(&y),
                            (Ok(_), Err(_)) => Ordering::Less,
                            (Err(_), Ok(_)) => Ordering::Greater,
                            _ => a.cmp(b),
                        };
                        if o != Ordering::Equal {
                            return o;
                        }
                    }
                    self.pre.len().cmp(&other.pre.len())
                }
            })
    }
}

/// Checks a version against a range such as `>=1.2.0 <2.0.0 || 3.x`-free blang-style ranges:
/// space-separated comparisons are ANDed, `||` ORs groups. Returns `None` on a malformed range.
pub fn semver_matches(version: &SemVer, range: &str) -> Option<bool> {
    let mut any = false;
    for group in range.split("||") {
        let mut all = true;
        let mut saw = false;
        for term in group.split_whitespace() {
            saw = true;
            let (op, v) = ["<=", ">=", "!=", "==", "<", ">", "="]
                .iter()
                .find_map(|op| term.strip_prefix(op).map(|rest| (*op, rest)))
                .unwrap_or(("=", term));
            let other = SemVer::parse(v)?;
            let ord = version.cmp(&other);
            let ok = match op {
                "<=" => ord != Ordering::Greater,
                ">=" => ord != Ordering::Less,
                "<" => ord == Ordering::Less,
                ">" => ord == Ordering::Greater,
                "!=" => ord != Ordering::Equal,
                _ => ord == Ordering::Equal,
            };
            all &= ok;
        }
        if !saw {
            return None;
        }
        any |= all;
    }
    Some(any)
}

/// Formats a JSON value like Go's `fmt.Sprint` on the decoded value (strings bare, numbers
/// without exponent where integral, objects and arrays as JSON).
pub fn sprint(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => format_number(n),
        other => other.to_string(),
    }
}

/// Formats a number without a trailing `.0` when it is integral.
pub fn format_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// The value as a number, when it is one or is a string holding one.
pub fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
pub fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*:*", "nginx:1.2"));
        assert!(!wildcard_match("*:*", "nginx"));
        assert!(wildcard_match("?*", "a"));
        assert!(!wildcard_match("?*", ""));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
        assert!(wildcard_match("ghcr.io/?ser/*", "ghcr.io/user/app"));
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("1Gi"), Some(1073741824.0));
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("abc"), None);
        assert_eq!(parse_quantity("1.2.3"), None);
        assert_eq!(parse_quantity("10Xi"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m"), Some(5400.0));
        assert_eq!(parse_duration("300ms"), Some(0.3));
        assert_eq!(parse_duration("0"), Some(0.0));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("-2s"), Some(-2.0));
        assert_eq!(format_duration(3600.0), "1h0m0s");
        assert_eq!(format_duration(90.0), "1m30s");
    }

    #[test]
    fn semver() {
        let v = SemVer::parse("1.2.3").unwrap();
        assert!(v < SemVer::parse("1.10.0").unwrap());
        assert!(SemVer::parse("1.0.0-alpha").unwrap() < SemVer::parse("1.0.0").unwrap());
        assert_eq!(semver_matches(&v, ">=1.0.0 <2.0.0"), Some(true));
        assert_eq!(semver_matches(&v, ">1.2.3"), Some(false));
        assert_eq!(semver_matches(&v, "<1.0.0 || 1.2.3"), Some(true));
        assert_eq!(semver_matches(&v, ">=x"), None);
    }

    #[test]
    fn sprint_like_go() {
        assert_eq!(sprint(&serde_json::json!(80)), "80");
        assert_eq!(sprint(&serde_json::json!(80.0)), "80");
        assert_eq!(sprint(&serde_json::json!(0.5)), "0.5");
        assert_eq!(sprint(&serde_json::json!("x")), "x");
        assert!(json_equal(
            &serde_json::json!([1]),
            &serde_json::json!([1.0])
        ));
    }
}
