//! `deploy/policy-engine/alerts.yaml` (spec 9.4) against what the binaries export: the rules
//! parse, and every metric, label and `status` value their expressions use is one that the
//! running policy-kernel or policy-agent serves on `/metrics`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// A label matcher of a selector: `status=~"a|b"`.
#[derive(Debug)]
struct Matcher {
    label: String,
    op: String,
    value: String,
}

/// What an expression uses: selectors (metric name and matchers) and grouping labels.
#[derive(Debug, Default)]
struct Uses {
    selectors: Vec<(String, Vec<Matcher>)>,
    grouping: BTreeSet<String>,
}

const KEYWORDS: [&str; 5] = ["bool", "and", "or", "unless", "offset"];
/// Aggregations, which may be followed by `by (...)` before their parenthesis.
const AGGREGATIONS: [&str; 12] = [
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
];
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// A small PromQL scanner: enough for selectors, function calls, grouping clauses, ranges,
/// numbers and strings, which is all the rules use.
fn scan(expr: &str) -> Uses {
    let chars: Vec<char> = expr.chars().collect();
    let mut uses = Uses::default();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = skip_ws(i);
            if GROUPING.contains(&word.as_str()) {
                assert_eq!(chars.get(next), Some(&'('), "{word} without labels: {expr}");
                let close = next + chars[next..].iter().position(|c| *c == ')').unwrap();
                let list: String = chars[next + 1..close].iter().collect();
                uses.grouping.extend(
                    list.split(',')
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned),
                );
                i = close + 1;
            } else if KEYWORDS.contains(&word.as_str())
                || AGGREGATIONS.contains(&word.as_str())
                || chars.get(next) == Some(&'(')
            {
                // An operator keyword, or a function / aggregation name.
            } else if chars.get(next) == Some(&'{') {
                let close = next + chars[next..].iter().position(|c| *c == '}').unwrap();
                let body: String = chars[next + 1..close].iter().collect();
                uses.selectors.push((word, matchers(&body)));
                i = close + 1;
            } else {
                uses.selectors.push((word, Vec::new()));
            }
        } else {
            i += 1;
        }
    }
    uses
}

/// `a="x", b=~"y|z"` → matchers (the rules quote values with `"` and use no escapes).
fn matchers(body: &str) -> Vec<Matcher> {
    body.split("\",")
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| {
            let at = m.find(['=', '!']).unwrap_or_else(|| panic!("matcher {m}"));
            let (label, rest) = m.split_at(at);
            let op_len = rest.find('"').unwrap_or_else(|| panic!("matcher {m}"));
            Matcher {
                label: label.trim().to_owned(),
                op: rest[..op_len].to_owned(),
                value: rest[op_len + 1..].trim_end_matches('"').to_owned(),
            }
        })
        .collect()
}

/// Sample names a scrape can contain, from its `# TYPE` lines (a counter `x` is sampled as
/// `x_total`, a histogram as `x_bucket`, `x_sum`, `x_count`), and the label names each
/// sample name was seen with.
fn exported(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut names = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').unwrap();
            let samples: Vec<String> = match kind {
                "counter" => vec![format!("{family}_total")],
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|s| format!("{family}{s}"))
                    .collect(),
                _ => vec![family.to_owned()],
            };
            for sample in samples {
                names.entry(sample).or_insert_with(BTreeSet::new);
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let series = line.rsplit_once(' ').map_or(line, |(series, _)| series);
            if let Some((name, labels)) = series.split_once('{') {
                let set = names.entry(name.to_owned()).or_insert_with(BTreeSet::new);
                for pair in labels.trim_end_matches('}').split("\",") {
                    if let Some((label, _)) = pair.split_once('=') {
                        set.insert(label.to_owned());
                    }
                }
            }
        }
    }
    names
}

#[test]
fn scanner_finds_selectors_and_grouping() {
    let uses = scan(
        r#"histogram_quantile(0.99, sum by (route, le) (rate(a_bucket{x="1", y=~"p|q"}[5m]))) / b > 1e3 and on(z) c"#,
    );
    let names: Vec<&str> = uses.selectors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a_bucket", "b", "c"]);
    let m = &uses.selectors[0].1;
    assert_eq!(
        (m[0].label.as_str(), m[0].op.as_str(), m[0].value.as_str()),
        ("x", "=", "1")
    );
    assert_eq!(
        (m[1].label.as_str(), m[1].op.as_str(), m[1].value.as_str()),
        ("y", "=~", "p|q")
    );
    assert_eq!(
        uses.grouping,
        BTreeSet::from(["route".to_owned(), "le".to_owned(), "z".to_owned()])
    );
}

#[test]
fn alert_rules_use_only_exported_metrics() {
    let Some(envoy) = envoy_or_skip("alert_rules_use_only_exported_metrics") else {
        return;
    };
    let rules: RuleFile =
        yaml_serde::from_str(include_str!("../../../../deploy/policy-engine/alerts.yaml")).unwrap();
    let rule_list: Vec<&Rule> = rules.groups.iter().flat_map(|g| &g.rules).collect();
    assert!(rules.groups.iter().all(|g| !g.name.is_empty()));
    for rule in &rule_list {
        assert!(!rule.alert.is_empty() && rule.annotations.contains_key("summary"));
        assert!(rule.labels.contains_key("severity"), "{}", rule.alert);
        if let Some(duration) = &rule.for_ {
            assert!(
                duration.ends_with('s') || duration.ends_with('m'),
                "{}: for {duration}",
                rule.alert
            );
        }
    }
    // Spec 9.4's five conditions each have a rule.
    let alerts: BTreeSet<&str> = rule_list.iter().map(|r| r.alert.as_str()).collect();
    for wanted in [
        "PolicyAgentUnavailable",
        "PolicyKernelHighLatency",
        "PolicyKernelHighErrorRate",
        "PolicyEngineMemoryHigh",
        "PolicyKernelConfigReloadFailed",
        "PolicyAgentConfigReloadFailed",
    ] {
        assert!(alerts.contains(wanted), "no rule {wanted}");
    }

    // The binaries, with traffic (allowed, denied, and a policy failure: `limited` keeps its
    // buckets in a Redis that is not there) and a refused reload in each process, so that every series the
    // rules select exists (prometheus-client leaves out a family that has none).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sock = dir.join("agents/default.sock");
    let agent_metrics = free_port();
    write_agent_files(
        dir,
        &serde_json::json!({"keys": []}),
        agent_metrics,
        "    rateLimit: {redis_url: \"redis://127.0.0.1:1\", redis_timeout_ms: 50}\n",
    );
    let ports = Ports::free();
    std::fs::write(
        dir.join("kernel.yaml"),
        substitute(
            &kernel_config(&sock, ports.kernel, ports.metrics, true),
            &[("burst: 2}", "burst: 2, store: redis}")],
        ),
    )
    .unwrap();
    let stack = Stack::start(&envoy, dir, ports, start_upstream(&runtime));
    assert_eq!(
        stack
            .get("/api/v1/users/1", &[("x-api-key", "alice-key")])
            .status,
        200
    );
    assert_eq!(stack.get("/api/v1/users/1", &[]).status, 401);
    assert_eq!(stack.get("/limited", &[]).status, 500);
    let scrape = |port: u16| {
        http(
            SocketAddr::from(([127, 0, 0, 1], port)),
            "GET",
            "/metrics",
            &[],
        )
        .body
    };
    let hup = |process: &Proc| {
        let sent = Command::new("kill")
            .args(["-HUP", &process.0.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    // A reload of the unchanged agent file succeeds and is counted as such.
    hup(&stack.agent);
    stack.wait("the agent's reload counted", || {
        prometheus::sample(
            &scrape(agent_metrics),
            "policy_agent_config_reload_total",
            &[("status", "success")],
        ) == Some(1.0)
    });
    for (file, process) in [("kernel.yaml", &stack.kernel), ("agent.yaml", &stack.agent)] {
        std::fs::write(dir.join(file), "nonsense: 1\n").unwrap();
        hup(process);
    }
    stack.wait("the refused reloads counted", || {
        let refused = |port, name| {
            prometheus::sample(&scrape(port), name, &[("status", "failure")]) == Some(1.0)
        };
        refused(ports.metrics, "policy_kernel_config_reload_total")
            && refused(agent_metrics, "policy_agent_config_reload_total")
    });
    let kernel_text = scrape(ports.metrics);
    let agent_text = scrape(agent_metrics);
    let mut available = exported(&kernel_text);
    for (name, labels) in exported(&agent_text) {
        available.entry(name).or_default().extend(labels);
    }
    // Both processes report their memory and its limit, a limit that is a real number.
    for text in [&kernel_text, &agent_text] {
        let rss = prometheus::sample(text, "process_resident_memory_bytes", &[]).unwrap();
        let limit = prometheus::sample(text, "process_memory_limit_bytes", &[]).unwrap();
        assert!(rss > 1e6 && limit > rss, "rss {rss}, limit {limit}");
    }

    for rule in &rule_list {
        let uses = scan(&rule.expr);
        assert!(!uses.selectors.is_empty(), "{}: no metric", rule.alert);
        let mut labels_in_rule = BTreeSet::from(["le".to_owned()]);
        for (name, matchers) in &uses.selectors {
            let labels = available.get(name).unwrap_or_else(|| {
                panic!(
                    "{}: `{name}` is not exported by the kernel or the agent\n{kernel_text}\n{agent_text}",
                    rule.alert
                )
            });
            labels_in_rule.extend(labels.iter().cloned());
            for matcher in matchers {
                assert!(
                    labels.contains(&matcher.label),
                    "{}: {name} has no label {} (it has {labels:?})",
                    rule.alert,
                    matcher.label
                );
                if name == "policy_kernel_requests_total" && matcher.label == "status" {
                    for value in matcher.value.split('|') {
                        assert!(
                            extproc::kernel::metrics::STATUSES.contains(&value),
                            "{}: the kernel never counts status {value}",
                            rule.alert
                        );
                    }
                }
                if name.ends_with("_config_reload_total") {
                    let found = [&kernel_text, &agent_text].iter().any(|text| {
                        prometheus::sample(text, name, &[(&matcher.label, &matcher.value)])
                            .is_some()
                    });
                    assert!(
                        found,
                        "{}: no {name} series with {}={}",
                        rule.alert, matcher.label, matcher.value
                    );
                }
            }
        }
        for label in &uses.grouping {
            assert!(
                labels_in_rule.contains(label),
                "{}: groups by {label}, which none of its metrics has",
                rule.alert
            );
        }
    }
}
