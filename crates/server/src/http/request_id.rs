//! Request ids: the client's `X-Request-Id` when it is plain, else a fresh UUIDv7. The
//! frame puts the id on the answer, in error bodies and on every log line of the
//! request (`telemetry::in_request`).

use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue};

use aegis_core::clock::Millis;

/// The header carrying the request id, in requests and answers.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a client.
const MAX_CLIENT_REQUEST_ID: usize = 128;

/// Whether a client's `X-Request-Id` is kept: up to 128 letters, digits and `-_.:`.
/// Anything else is replaced by a fresh id, so what ends up in logs, audit entries and
/// error bodies is short and cannot pose as log syntax.
pub fn acceptable_request_id(id: &HeaderValue) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_CLIENT_REQUEST_ID
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':'))
}

/// A fresh request id for a request that arrived at `now_ms` (Unix milliseconds): a
/// UUIDv7, unique and sortable by time. Its text lives in one allocation that every
/// copy shares (task, answer, error body).
pub fn new_request_id(now_ms: Millis) -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    request_uuid(now_ms).hyphenated().encode_lower(&mut text);
    HeaderValue::from_maybe_shared(Bytes::from_owner(text))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// A UUIDv7 whose random bits come from a per-thread generator seeded once from the
/// OS, not from a system call per request. Request ids must be unique, not secret.
fn request_uuid(now_ms: Millis) -> uuid::Uuid {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut seed = [0u8; 8];
            // A failed read leaves a fixed seed: ids stay unique per thread through
            // the timestamp and counter, only less spread.
            let _ = getrandom::fill(&mut seed);
            u64::from_le_bytes(seed) | 1
        });
    }
    // splitmix64: a full-period sequence, so two calls on one thread never repeat.
    let next = |s: &Cell<u64>| {
        let x = s.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let (a, b) = STATE.with(|s| (next(s), next(s)));
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&a.to_le_bytes());
    random[8..].copy_from_slice(&b.to_le_bytes()[..2]);
    let millis = u64::try_from(now_ms).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_distinct_v7() {
        let now = aegis_core::clock::now_millis();
        let a = request_uuid(now);
        let b = request_uuid(now);
        assert_ne!(a, b);
        assert_eq!(a.get_version_num(), 7);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        let (secs, _) = a.get_timestamp().unwrap().to_unix();
        assert_eq!(secs as i64, now / 1000);
    }
    #[test]
    fn client_request_ids_are_kept_only_when_plain() {
        let ok = |s: &str| acceptable_request_id(&HeaderValue::from_str(s).unwrap());
        assert!(ok("fixed-id-for-comparison"));
        assert!(ok("0a1B.2c:3_d"));
        assert!(!ok(""));
        assert!(!ok("has space"));
        assert!(!ok("quote\"d"));
        assert!(!ok("a=b"));
        assert!(ok(&"x".repeat(128)));
        assert!(!ok(&"x".repeat(129)));
    }
}
