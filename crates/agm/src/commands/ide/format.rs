//! The Antigravity IDE's sign-in values, as it keeps them in `ItemTable` of its
//! `state.vscdb` (docs/PROTOCOL.md, Part C): protobuf messages, base64-encoded, inside
//! "unified state" topics. Only what `agm ide` needs is read or written; every other
//! byte of a value is kept as it was.
//!
//! A topic (the value of `antigravityUnifiedStateSync.<name>`, base64) is a list of
//! entries (field 1), each `{1: sentinel key, 2: row}`; a row is `{1: base64 of the
//! payload}`. The sign-in is the payload under `oauthTokenInfoSentinelKey` of the
//! `oauthToken` topic; the e-mail the IDE shows is in the `userStatusSentinelKey`
//! payload of the `userStatus` topic.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The `ItemTable` key of the topic holding the OAuth token (IDE 1.16.5 and later).
pub const OAUTH_TOKEN_KEY: &str = "antigravityUnifiedStateSync.oauthToken";
/// The `ItemTable` key of the topic holding the signed-in user's status.
pub const USER_STATUS_KEY: &str = "antigravityUnifiedStateSync.userStatus";
/// The sentinel key of the OAuth token's entry in [`OAUTH_TOKEN_KEY`].
pub const OAUTH_SENTINEL: &str = "oauthTokenInfoSentinelKey";
/// The sentinel key of the user status entry in [`USER_STATUS_KEY`].
pub const USER_STATUS_SENTINEL: &str = "userStatusSentinelKey";
/// The sign-in of IDEs before 1.16.5: one protobuf, base64 (2: e-mail, 6: token).
pub const LEGACY_STATE_KEY: &str = "jetskiStateSync.agentManagerInitState";
/// JSON the IDE caches after a sign-in: `email`, `name`, `apiKey` (an access token).
pub const AUTH_STATUS_KEY: &str = "antigravityAuthStatus";
/// The previous account's Google Cloud project preference (a topic).
pub const ENTERPRISE_PREFERENCES_KEY: &str = "antigravityUnifiedStateSync.enterprisePreferences";
/// `"true"` once the IDE's first-run onboarding is done.
pub const ONBOARDING_KEY: &str = "antigravityOnboarding";

/// A value that is not the protobuf or base64 it should be.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(&'static str);

/// One field of a protobuf message: its number, its value, and its bytes as they
/// appeared (tag included), so that a message can be rewritten keeping the rest.
struct Field<'a> {
    number: u64,
    value: Value<'a>,
    raw: &'a [u8],
}

enum Value<'a> {
    Varint,
    Bytes(&'a [u8]),
    Fixed,
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Result<u64, Malformed> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf
            .get(*pos)
            .ok_or(Malformed("a protobuf varint is cut short"))?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Malformed("a protobuf varint is too long"))
}

fn fields(buf: &[u8]) -> Result<Vec<Field<'_>>, Malformed> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let start = pos;
        let tag = read_varint(buf, &mut pos)?;
        let value = match tag & 7 {
            0 => {
                read_varint(buf, &mut pos)?;
                Value::Varint
            }
            1 | 5 => {
                pos += if tag & 7 == 1 { 8 } else { 4 };
                Value::Fixed
            }
            2 => {
                let len = usize::try_from(read_varint(buf, &mut pos)?)
                    .map_err(|_| Malformed("a protobuf length is too large"))?;
                let end = pos
                    .checked_add(len)
                    .filter(|end| *end <= buf.len())
                    .ok_or(Malformed("a protobuf field is cut short"))?;
                let bytes = &buf[pos..end];
                pos = end;
                Value::Bytes(bytes)
            }
            _ => return Err(Malformed("a protobuf field has an unknown wire type")),
        };
        let raw = buf
            .get(start..pos)
            .ok_or(Malformed("a protobuf field is cut short"))?;
        out.push(Field {
            number: tag >> 3,
            value,
            raw,
        });
    }
    Ok(out)
}

/// The first length-delimited field `number` of `message`.
fn bytes_field(message: &[u8], number: u64) -> Result<Option<&[u8]>, Malformed> {
    Ok(fields(message)?.into_iter().find_map(|f| match f.value {
        Value::Bytes(b) if f.number == number => Some(b),
        _ => None,
    }))
}

fn string_field(message: &[u8], number: u64) -> Result<Option<String>, Malformed> {
    Ok(bytes_field(message, number)?
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(str::to_owned))
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    put_varint(out, number << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint_field(out: &mut Vec<u8>, number: u64, value: u64) {
    put_varint(out, number << 3);
    put_varint(out, value);
}

fn decode_base64(text: &str) -> Result<Vec<u8>, Malformed> {
    BASE64
        .decode(text.trim())
        .map_err(|_| Malformed("a value is not base64"))
}

/// The sentinel key of a topic entry, if it has one.
fn entry_key(entry: &[u8]) -> Option<String> {
    string_field(entry, 1).ok().flatten()
}

/// The payload stored under `sentinel` in the topic `value` (base64), if any.
pub fn topic_payload(value: &str, sentinel: &str) -> Result<Option<Vec<u8>>, Malformed> {
    let topic = decode_base64(value)?;
    for field in fields(&topic)? {
        let Value::Bytes(entry) = field.value else {
            continue;
        };
        if field.number != 1 || entry_key(entry).as_deref() != Some(sentinel) {
            continue;
        }
        let Some(row) = bytes_field(entry, 2)? else {
            return Ok(None);
        };
        let Some(encoded) = string_field(row, 1)? else {
            return Ok(None);
        };
        return decode_base64(&encoded).map(Some);
    }
    Ok(None)
}

/// The topic `value` (base64; `None` for none yet) with the entry under `sentinel`
/// replaced by `payload`: the other entries are kept byte for byte, in their order, and
/// the new entry comes last.
pub fn topic_with(
    value: Option<&str>,
    sentinel: &str,
    payload: &[u8],
) -> Result<String, Malformed> {
    let topic = value.map(decode_base64).transpose()?.unwrap_or_default();
    let mut out = Vec::with_capacity(topic.len() + payload.len() * 2);
    for field in fields(&topic)? {
        let replaced = matches!(field.value, Value::Bytes(entry)
            if field.number == 1 && entry_key(entry).as_deref() == Some(sentinel));
        if !replaced {
            out.extend_from_slice(field.raw);
        }
    }
    let mut row = Vec::new();
    put_bytes(&mut row, 1, BASE64.encode(payload).as_bytes());
    let mut entry = Vec::new();
    put_bytes(&mut entry, 1, sentinel.as_bytes());
    put_bytes(&mut entry, 2, &row);
    put_bytes(&mut out, 1, &entry);
    Ok(BASE64.encode(out))
}

/// The IDE's OAuth token message: 1 access token, 2 token type, 3 refresh token,
/// 4 expiry (a `google.protobuf.Timestamp`: 1 seconds, 2 nanos). Fields 5 (an ID
/// token) and 6 (whether the Google Cloud terms apply) are left out: agm has no ID
/// token, and its accounts are consumer sign-ins.
pub fn oauth_token_info(access_token: &str, refresh_token: &str, expiry_unix: i64) -> Vec<u8> {
    let mut timestamp = Vec::new();
    put_varint_field(&mut timestamp, 1, u64::try_from(expiry_unix).unwrap_or(0));
    put_varint_field(&mut timestamp, 2, 0);
    let mut out = Vec::new();
    put_bytes(&mut out, 1, access_token.as_bytes());
    put_bytes(&mut out, 2, b"Bearer");
    put_bytes(&mut out, 3, refresh_token.as_bytes());
    put_bytes(&mut out, 4, &timestamp);
    out
}

/// The refresh token (field 3) of an OAuth token message, if it has a non-empty one.
pub fn refresh_token_of(oauth_token_info: &[u8]) -> Result<Option<String>, Malformed> {
    Ok(string_field(oauth_token_info, 3)?.filter(|t| !t.is_empty()))
}

/// The smallest user status the IDE accepts until it fetches the real one: the
/// e-mail as the name (field 3) and as the e-mail (field 7).
pub fn minimal_user_status(email: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_bytes(&mut out, 3, email.as_bytes());
    put_bytes(&mut out, 7, email.as_bytes());
    out
}

/// The e-mail in a user status payload: field 7, else field 3 if it looks like one.
pub fn email_of_user_status(payload: &[u8]) -> Option<String> {
    [7, 3]
        .into_iter()
        .filter_map(|n| string_field(payload, n).ok().flatten())
        .find(|s| looks_like_email(s))
}

/// The e-mail (field 2) of the pre-1.16.5 state, and whether it holds a refresh token
/// (field 6, then its field 3).
pub fn legacy_sign_in(value: &str) -> Result<(Option<String>, bool), Malformed> {
    let state = decode_base64(value)?;
    let email = string_field(&state, 2)?.filter(|s| looks_like_email(s));
    let signed_in = match bytes_field(&state, 6)? {
        Some(token) => refresh_token_of(token)?.is_some(),
        None => false,
    };
    Ok((email, signed_in))
}

/// The `email` of the JSON under [`AUTH_STATUS_KEY`].
pub fn email_of_auth_status(value: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(value).ok()?;
    json.get("email")
        .and_then(serde_json::Value::as_str)
        .filter(|s| looks_like_email(s))
        .map(str::to_owned)
}

fn looks_like_email(s: &str) -> bool {
    s.contains('@') && !s.contains(char::is_whitespace) && s.len() < 320
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_topic_entry_is_replaced_and_the_others_kept() {
        let first = topic_with(None, "otherSentinelKey", b"other").unwrap();
        let both = topic_with(Some(&first), OAUTH_SENTINEL, b"one").unwrap();
        let replaced = topic_with(Some(&both), OAUTH_SENTINEL, b"two").unwrap();
        assert_eq!(
            topic_payload(&replaced, OAUTH_SENTINEL).unwrap().unwrap(),
            b"two"
        );
        assert_eq!(
            topic_payload(&replaced, "otherSentinelKey")
                .unwrap()
                .unwrap(),
            b"other"
        );
        // The kept entry's bytes come first, unchanged.
        let kept = BASE64.decode(&first).unwrap();
        assert!(BASE64.decode(&replaced).unwrap().starts_with(&kept));
        assert_eq!(topic_payload(&first, OAUTH_SENTINEL).unwrap(), None);
    }

    #[test]
    fn the_token_message_round_trips() {
        let info = oauth_token_info("ya29.a", "1//r", 1_900_000_000);
        assert_eq!(refresh_token_of(&info).unwrap().as_deref(), Some("1//r"));
        assert_eq!(string_field(&info, 1).unwrap().as_deref(), Some("ya29.a"));
        assert_eq!(string_field(&info, 2).unwrap().as_deref(), Some("Bearer"));
        let expiry = bytes_field(&info, 4).unwrap().unwrap();
        let mut pos = 1;
        assert_eq!(read_varint(expiry, &mut pos).unwrap(), 1_900_000_000);
    }

    #[test]
    fn e_mails_are_found_where_the_ide_keeps_them() {
        let status = minimal_user_status("a@b.c");
        assert_eq!(email_of_user_status(&status).as_deref(), Some("a@b.c"));
        let mut legacy = Vec::new();
        put_bytes(&mut legacy, 2, b"old@b.c");
        let mut token = Vec::new();
        put_bytes(&mut token, 6, &oauth_token_info("a", "r", 1));
        legacy.extend(token);
        let (email, signed_in) = legacy_sign_in(&BASE64.encode(&legacy)).unwrap();
        assert_eq!(email.as_deref(), Some("old@b.c"));
        assert!(signed_in);
        assert_eq!(
            email_of_auth_status(r#"{"email":"x@y.z","apiKey":"k"}"#).as_deref(),
            Some("x@y.z")
        );
    }

    #[test]
    fn damaged_values_are_errors_not_panics() {
        assert!(topic_payload("not base64!", OAUTH_SENTINEL).is_err());
        // A length running past the end.
        let cut = BASE64.encode([0x0a, 0x05, 0x01]);
        assert!(topic_payload(&cut, OAUTH_SENTINEL).is_err());
        assert!(topic_with(Some(&cut), OAUTH_SENTINEL, b"x").is_err());
        // A varint that never ends.
        let varint = BASE64.encode([0xff; 20]);
        assert!(legacy_sign_in(&varint).is_err());
    }
}
