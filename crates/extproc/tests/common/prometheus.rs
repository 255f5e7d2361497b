//! Reading samples from Prometheus / OpenMetrics text, for tests that check metrics by value
//! instead of by substring.

/// The value of the sample `name{labels}` (exactly those labels, in any order) in Prometheus /
/// OpenMetrics text; None when there is no such sample.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    want.sort();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            let mut found = parse_labels(label_text)?;
            found.sort();
            (metric == name && found == want)
                .then(|| value.parse().ok())
                .flatten()
        })
}

/// `a="x",b="y\"z"` → pairs, unescaping values.
fn parse_labels(mut text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    while !text.is_empty() {
        let (key, after) = text.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => value.push(chars.next()?.1),
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_owned(), value));
        text = after[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

#[test]
fn samples_are_found_by_name_and_exact_labels() {
    let text = "# TYPE m counter\nm_total{a=\"x\",b=\"q\\\"r\"} 3\nm_total{a=\"x\"} 2\nn 1.5\n";
    assert_eq!(sample(text, "m_total", &[("a", "x")]), Some(2.0));
    assert_eq!(
        sample(text, "m_total", &[("b", "q\"r"), ("a", "x")]),
        Some(3.0)
    );
    assert_eq!(sample(text, "n", &[]), Some(1.5));
    assert_eq!(sample(text, "m_total", &[("a", "y")]), None);
    assert_eq!(sample(text, "m", &[("a", "x")]), None);
}
