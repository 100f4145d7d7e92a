//! Wall-clock timestamps in the RFC 3339 form Google uses (`2025-10-20T19:14:08Z`).

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now plus `after`, formatted as RFC 3339 in UTC with whole seconds.
pub(crate) fn rfc3339_after(after: Duration) -> String {
    let at = OffsetDateTime::now_utc() + after;
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_default()
}
