//! UTC days, the unit of usage and of daily limits, written `YYYY-MM-DD` (which sorts by
//! date, so they can be compared and used in key ranges as strings).

use serde::{Deserialize, Serialize};
use std::fmt;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Day(String);

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a date of the form YYYY-MM-DD")]
pub struct DayError(String);

impl Day {
    pub fn parse(s: &str) -> Result<Day, DayError> {
        let format = format_description!("[year]-[month]-[day]");
        Date::parse(s, format)
            .map(Day::from_date)
            .map_err(|_| DayError(s.chars().take(40).collect()))
    }

    fn from_date(date: Date) -> Day {
        let format = format_description!("[year]-[month]-[day]");
        Day(date.format(format).unwrap_or_default())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Day {
    type Error = DayError;
    fn try_from(s: String) -> Result<Day, DayError> {
        Day::parse(&s)
    }
}

impl From<Day> for String {
    fn from(d: Day) -> String {
        d.0
    }
}

/// Today, in UTC.
pub fn today() -> Day {
    Day::from_date(OffsetDateTime::now_utc().date())
}

/// Seconds until the next UTC day begins (when daily limits reset), at least 1.
pub fn seconds_until_midnight() -> u64 {
    let now = OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
    86_400 - now % 86_400
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_print_and_sort() {
        let d = Day::parse("2026-11-28").expect("valid");
        assert_eq!(d.to_string(), "2026-11-28");
        assert!(Day::parse("2026-02-30").is_err());
        assert!(Day::parse("26-11-28").is_err());
        assert!(Day::parse("2026-11-28x").is_err());
        assert!(Day::parse("2026-11-09").expect("valid") < d);
        assert_eq!(today().as_str().len(), 10);
        let left = seconds_until_midnight();
        assert!((1..=86_400).contains(&left));
    }
}
