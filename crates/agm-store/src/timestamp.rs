//! Timestamps are stored as unix milliseconds (UTC), so every time read back is
//! truncated to the millisecond.

use time::OffsetDateTime;

use crate::error::StoreError;

pub(crate) fn to_millis(t: OffsetDateTime) -> i64 {
    let millis = t.unix_timestamp_nanos().div_euclid(1_000_000);
    // Every OffsetDateTime (years ±9999) fits in i64 milliseconds.
    i64::try_from(millis).unwrap_or(if millis < 0 { i64::MIN } else { i64::MAX })
}

pub(crate) fn from_millis(millis: i64, column: &'static str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).map_err(|_| {
        StoreError::InvalidValue {
            column,
            value: millis.to_string(),
        }
    })
}

pub(crate) fn from_millis_opt(
    millis: Option<i64>,
    column: &'static str,
) -> Result<Option<OffsetDateTime>, StoreError> {
    millis.map(|m| from_millis(m, column)).transpose()
}

/// The current time, truncated to what the store keeps.
pub(crate) fn now_millis() -> i64 {
    to_millis(OffsetDateTime::now_utc())
}

/// A time as agm shows and stores it in JSON: RFC 3339 in UTC, e.g.
/// `2026-01-02T03:04:05.678Z` (the Unix seconds, should formatting ever fail).
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Now, as [`rfc3339`].
pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn millis_round_trip_truncates_below_a_millisecond() {
        let t = datetime!(2025-03-01 12:34:56.789_654 UTC);
        let millis = to_millis(t);
        assert_eq!(millis, 1_740_832_496_789);
        assert_eq!(
            from_millis(millis, "t").unwrap(),
            datetime!(2025-03-01 12:34:56.789 UTC)
        );
    }

    #[test]
    fn times_before_1970_floor() {
        let t = datetime!(1969-12-31 23:59:59.999_5 UTC);
        assert_eq!(to_millis(t), -1);
    }

    #[test]
    fn out_of_range_millis_are_an_error() {
        assert!(matches!(
            from_millis(i64::MAX, "accounts.created_at"),
            Err(StoreError::InvalidValue {
                column: "accounts.created_at",
                ..
            })
        ));
    }
}
