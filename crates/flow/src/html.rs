//! A self-contained HTML report of a validation payload: inline CSS and SVG, no scripts,
//! no network fetches. A verdict pie chart, an hourly timeline, and the coverage-gap,
//! blocked-flow, discrepancy and event tables.

use std::collections::BTreeMap;
use std::fmt::Write;

use flowtypes::{Discrepancy, ValidationPayload};

const COLORS: [(&str, &str); 3] = [
    ("ALLOWED", "#2e7d32"),
    ("BLOCKED", "#c62828"),
    ("NO_POLICY", "#f9a825"),
];

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn pie(values: [u64; 3]) -> String {
    let total: u64 = values.iter().sum();
    let mut svg = String::from(
        r#"<svg viewBox="-110 -110 220 220" width="220" height="220" role="img" aria-label="verdicts">"#,
    );
    if total == 0 {
        svg.push_str(r##"<circle r="100" fill="#ddd"/></svg>"##);
        return svg;
    }
    let mut angle = -std::f64::consts::FRAC_PI_2;
    for (i, v) in values.iter().enumerate() {
        if *v == 0 {
            continue;
        }
        let color = COLORS[i].1;
        if *v == total {
            let _ = write!(svg, r#"<circle r="100" fill="{color}"/>"#);
            break;
        }
        let sweep = *v as f64 / total as f64 * std::f64::consts::TAU;
        let (x0, y0) = (100.0 * angle.cos(), 100.0 * angle.sin());
        angle += sweep;
        let (x1, y1) = (100.0 * angle.cos(), 100.0 * angle.sin());
        let large = u8::from(sweep > std::f64::consts::PI);
        let _ = write!(
            svg,
            r#"<path d="M0,0 L{x0:.2},{y0:.2} A100,100 0 {large} 1 {x1:.2},{y1:.2} Z" fill="{color}"><title>{}: {v}</title></path>"#,
            COLORS[i].0
        );
    }
    svg.push_str("</svg>");
    svg
}

fn timeline(p: &ValidationPayload) -> String {
    let n = p.summaries.len().max(1);
    let (w, h) = (760.0, 200.0);
    let bar = w / n as f64;
    let max = p
        .summaries
        .iter()
        .map(|s| s.counts.judged())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut svg = format!(
        r#"<svg viewBox="0 0 {w} {}" width="100%" height="240" role="img" aria-label="hourly timeline">"#,
        h + 30.0
    );
    for (i, s) in p.summaries.iter().enumerate() {
        let x = i as f64 * bar;
        let mut y = h;
        let c = &s.counts;
        for (j, v) in [c.allowed_count, c.blocked_count, c.no_policy_count]
            .iter()
            .enumerate()
        {
            let bh = *v as f64 / max * h;
            y -= bh;
            let _ = write!(
                svg,
                r#"<rect x="{x:.2}" y="{y:.2}" width="{:.2}" height="{bh:.2}" fill="{}"><title>{} {}: {v}</title></rect>"#,
                (bar - 1.0).max(0.5),
                COLORS[j].1,
                escape(&s.hour),
                COLORS[j].0
            );
        }
    }
    if let (Some(first), Some(last)) = (p.summaries.first(), p.summaries.last()) {
        let _ = write!(
            svg,
            r#"<text x="0" y="{}" font-size="12">{}</text><text x="{w}" y="{}" font-size="12" text-anchor="end">{}</text>"#,
            h + 20.0,
            escape(&first.hour),
            h + 20.0,
            escape(&last.hour)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    out.push_str("<table><thead><tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        let _ = write!(out, r#"<tr><td colspan="{}">none</td></tr>"#, header.len());
    }
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

/// Coverage gaps summed over hours: (source, destination, protocol/port) → (count, error).
pub fn merged_gaps(p: &ValidationPayload) -> Vec<(String, String, String, u64, u64)> {
    let mut m: BTreeMap<(String, String, String), (u64, u64)> = BTreeMap::new();
    for s in &p.summaries {
        for g in &s.coverage_gaps {
            let e = m
                .entry((
                    g.source.clone(),
                    g.destination.clone(),
                    format!("{}/{}", g.protocol, g.port),
                ))
                .or_default();
            e.0 += g.count;
            e.1 += g.count_error;
        }
    }
    let mut v: Vec<_> = m
        .into_iter()
        .map(|((a, b, c), (n, e))| (a, b, c, n, e))
        .collect();
    v.sort_by(|x, y| y.3.cmp(&x.3).then_with(|| x.cmp(y)));
    v
}

/// Blocked flows summed over hours: (source, destination, policy) → (count, error).
pub fn merged_blocked(p: &ValidationPayload) -> Vec<(String, String, String, u64, u64)> {
    let mut m: BTreeMap<(String, String, String), (u64, u64)> = BTreeMap::new();
    for s in &p.summaries {
        for b in &s.top_blocked {
            let e = m
                .entry((b.source.clone(), b.destination.clone(), b.policy.clone()))
                .or_default();
            e.0 += b.count;
            e.1 += b.count_error;
        }
    }
    let mut v: Vec<_> = m
        .into_iter()
        .map(|((a, b, c), (n, e))| (a, b, c, n, e))
        .collect();
    v.sort_by(|x, y| y.3.cmp(&x.3).then_with(|| x.cmp(y)));
    v
}

fn count_cell(n: u64, err: u64) -> String {
    if err == 0 {
        n.to_string()
    } else {
        format!("{n} (±{err})")
    }
}

/// Renders the report.
pub fn render(p: &ValidationPayload) -> String {
    let t = p.totals();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Policy validation — {cluster}</title><style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:14px}}th{{background:#f3f3f3}}
.legend span{{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px}}.row{{display:flex;gap:3em;align-items:center}}
</style></head><body><h1>Policy validation — {cluster}</h1>"#,
        cluster = escape(&p.cluster)
    );
    let _ = write!(
        out,
        "<p>{} lines, {} flows, {} judged, {} replies, {} not L3/L4, {} unresolved, {} corrupt.</p>",
        p.input.lines, p.input.flows, p.input.judged, p.input.replies, p.input.not_l3l4, p.input.unresolved, p.input.corrupt
    );
    out.push_str(r#"<h2>Verdicts</h2><div class="row">"#);
    out.push_str(&pie([t.allowed_count, t.blocked_count, t.no_policy_count]));
    out.push_str(r#"<div class="legend">"#);
    for ((name, color), v) in
        COLORS
            .iter()
            .zip([t.allowed_count, t.blocked_count, t.no_policy_count])
    {
        let _ = write!(
            out,
            r#"<div><span style="background:{color}"></span>{name}: {v}</div>"#
        );
    }
    out.push_str("</div></div><h2>Hourly timeline</h2>");
    out.push_str(&timeline(p));

    out.push_str("<h2>Discrepancies</h2>");
    let d = &t.discrepancies;
    let mut rows: Vec<Vec<String>> = Discrepancy::ALL
        .iter()
        .map(|c| vec![c.as_str().to_string(), d.get(*c).to_string()])
        .collect();
    rows.push(vec![
        "POLICY_NAME_MISMATCH".into(),
        d.policy_name_mismatch.to_string(),
    ]);
    table(&mut out, &["class", "flows"], &rows);

    out.push_str("<h2>Top coverage gaps (NO_POLICY)</h2>");
    let rows: Vec<Vec<String>> = merged_gaps(p)
        .into_iter()
        .take(50)
        .map(|(s, d, port, n, e)| vec![s, d, port, count_cell(n, e)])
        .collect();
    table(&mut out, &["source", "destination", "port", "flows"], &rows);

    out.push_str("<h2>Top blocked flows</h2>");
    let rows: Vec<Vec<String>> = merged_blocked(p)
        .into_iter()
        .take(50)
        .map(|(s, d, pol, n, e)| vec![s, d, pol, count_cell(n, e)])
        .collect();
    table(
        &mut out,
        &["source", "destination", "policy", "flows"],
        &rows,
    );

    out.push_str("<h2>Per hour</h2>");
    let rows: Vec<Vec<String>> = p
        .summaries
        .iter()
        .map(|s| {
            let c = &s.counts;
            vec![
                s.hour.clone(),
                c.allowed_count.to_string(),
                c.blocked_count.to_string(),
                c.no_policy_count.to_string(),
                c.discrepancies.enforcement_gap.to_string(),
                c.discrepancies.unexpected_drop.to_string(),
                c.discrepancies.policy_name_mismatch.to_string(),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            "hour",
            "allowed",
            "blocked",
            "no policy",
            "enforcement gaps",
            "unexpected drops",
            "name mismatches",
        ],
        &rows,
    );

    out.push_str("<h2>Sampled events</h2>");
    let rows: Vec<Vec<String>> = p
        .events
        .iter()
        .filter(|e| e.discrepancy != Discrepancy::Match)
        .take(200)
        .map(|e| {
            vec![
                e.line.map(|l| l.to_string()).unwrap_or_default(),
                e.timestamp.clone(),
                e.discrepancy.as_str().into(),
                e.verdict.as_str().into(),
                format!(
                    "{}/{}",
                    e.src_namespace,
                    e.src_pod_name.as_deref().unwrap_or("-")
                ),
                format!(
                    "{}/{}",
                    e.dst_namespace,
                    e.dst_pod_name.as_deref().unwrap_or("-")
                ),
                format!("{}/{}", e.protocol, e.dst_port),
                e.observed.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &mut out,
        &[
            "line",
            "time",
            "class",
            "model",
            "source",
            "destination",
            "port",
            "dataplane",
            "reason",
        ],
        &rows,
    );
    if !p.input.corrupt_lines.is_empty() {
        out.push_str("<h2>Corrupt lines</h2>");
        let rows: Vec<Vec<String>> = p
            .input
            .corrupt_lines
            .iter()
            .map(|c| vec![c.line.to_string(), c.error.clone()])
            .collect();
        table(&mut out, &["line", "error"], &rows);
    }
    out.push_str("</body></html>\n");
    out
}
