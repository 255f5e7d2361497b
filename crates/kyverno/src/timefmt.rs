//! Minimal RFC 3339 time handling for Kyverno's time functions (UTC offsets honoured).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (fractional), parsed from RFC 3339 (`2023-01-02T03:04:05Z`,
/// `2023-01-02T03:04:05.5+02:00`).
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        if n == 0 {
            return None;
        }
        frac = format!("0.{}", r.get(..n)?).parse().ok()?;
        rest = r.get(n..)?;
    }
    let offset = if rest == "Z" || rest == "z" {
        0
    } else {
        let sign = match rest.as_bytes().first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let oh: i64 = rest.get(1..3)?.parse().ok()?;
        if rest.get(3..4)? != ":" {
            return None;
        }
        let om: i64 = rest.get(4..6)?.parse().ok()?;
        if rest.len() != 6 {
            return None;
        }
        sign * (oh * 3600 + om * 60)
    };
    let days = civil::to_days(y, u32::try_from(mo).ok()?, u32::try_from(d).ok()?);
    Some((days * 86400 + h * 3600 + mi * 60 + sec - offset) as f64 + frac)
}

/// Formats epoch seconds as RFC 3339 in UTC (`2023-01-02T03:04:05Z`).
pub fn format_rfc3339(t: f64) -> String {
    let secs = t.floor() as i64;
    let frac = t - secs as f64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil::from_days(days);
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if frac > 1e-9 {
        let f = format!("{frac:.9}");
        let f = f.trim_start_matches('0').trim_end_matches('0');
        format!("{base}{f}Z")
    } else {
        format!("{base}Z")
    }
}

/// `(minute, hour, day of month, month, weekday)` of epoch seconds, UTC.
pub fn cron_fields(t: f64) -> (i64, i64, i64, i64, i64) {
    let secs = t.floor() as i64;
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (_, m, d) = civil::from_days(days);
    let weekday = (days + 4).rem_euclid(7); // 1970-01-01 was a Thursday
    (
        (rem % 3600) / 60,
        rem / 3600,
        i64::from(d),
        i64::from(m),
        weekday,
    )
}

/// Now, in epoch seconds.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = parse_rfc3339("2023-02-28T23:59:30Z").unwrap();
        assert_eq!(format_rfc3339(t), "2023-02-28T23:59:30Z");
        assert_eq!(format_rfc3339(t + 60.0), "2023-03-01T00:00:30Z");
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0.0));
        assert_eq!(parse_rfc3339("2023-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("nonsense"), None);
        assert_eq!(cron_fields(0.0), (0, 0, 1, 1, 4));
    }
}
