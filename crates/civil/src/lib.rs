//! Days since 1970-01-01 ↔ proleptic Gregorian dates (Howard Hinnant's algorithms), for the
//! crates that read and write RFC 3339 times without a date library.

/// `(year, month 1–12, day 1–31)` of a day count since 1970-01-01 (negative before it).
pub fn from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Days since 1970-01-01 of a civil date. Days past the month's end run into the next month
/// (February 30 is March 1 or 2), as in the algorithm; callers check ranges first.
pub fn to_days(year: i64, month: u32, day: u32) -> i64 {
    let (month, day) = (i64::from(month), i64::from(day));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(from_days(0), (1970, 1, 1));
        assert_eq!(from_days(-1), (1969, 12, 31));
        assert_eq!(from_days(11_016), (2000, 2, 29));
        assert_eq!(from_days(11_017), (2000, 3, 1));
        assert_eq!(to_days(2026, 11, 23), 20_780);
        assert_eq!(to_days(1, 1, 1), -719_162);
        assert_eq!(to_days(9999, 12, 31), 2_932_896);
        // 1900 is not a leap year, 2000 and 2024 are.
        assert_eq!(from_days(to_days(1900, 2, 28) + 1), (1900, 3, 1));
        assert_eq!(from_days(to_days(2024, 2, 28) + 1), (2024, 2, 29));
    }

    #[test]
    fn days_round_trip_over_years_1_to_9999() {
        let mut expected = (1, 1, 1);
        for days in to_days(1, 1, 1)..=to_days(9999, 12, 31) {
            let date = from_days(days);
            assert_eq!(date, expected, "day {days}");
            assert_eq!(to_days(date.0, date.1, date.2), days);
            let (y, m, d) = expected;
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let length = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            expected = match (d < length, m < 12) {
                (true, _) => (y, m, d + 1),
                (false, true) => (y, m + 1, 1),
                (false, false) => (y + 1, 1, 1),
            };
        }
    }
}
