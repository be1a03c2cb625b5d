//! TOTP (RFC 6238 over RFC 4226 HOTP): HMAC-SHA-1, 6 digits, 30-second steps, one step
//! of clock skew either way. Verification reports the matched time step so the caller
//! can refuse a step that was already used (a code is accepted once only), and compares
//! codes in constant time.

use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::crypto::constant_time_eq;

/// Seconds per time step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Steps of clock skew accepted either way.
pub const SKEW_STEPS: u64 = 1;
/// Secret length: 160 bits, as RFC 4226 recommends for HMAC-SHA-1.
pub const SECRET_LEN: usize = 20;

/// The HOTP value for `counter` (RFC 4226 section 5.3), truncated to `digits` digits.
fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC accepts keys of any length; this cannot fail.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return u32::MAX;
    };
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[19] & 0x0f);
    let binary = (u32::from(hash[offset]) & 0x7f) << 24
        | u32::from(hash[offset + 1]) << 16
        | u32::from(hash[offset + 2]) << 8
        | u32::from(hash[offset + 3]);
    binary % 10u32.pow(digits)
}

/// The time step containing `unix_secs`.
pub fn step_at(unix_secs: u64) -> u64 {
    unix_secs / STEP_SECS
}

/// The code for a time step, zero-padded.
pub fn code_for_step(secret: &[u8], step: u64) -> String {
    format!(
        "{:0width$}",
        hotp(secret, step, DIGITS),
        width = DIGITS as usize
    )
}

/// The code valid at `unix_secs`.
pub fn code_at(secret: &[u8], unix_secs: u64) -> String {
    code_for_step(secret, step_at(unix_secs))
}

/// Checks `code` at `unix_secs` within the skew window, skipping steps at or before
/// `last_used_step` (replay protection). Returns the matched step. Every candidate step
/// is computed and compared in constant time, so timing does not reveal which matched.
pub fn verify(
    secret: &[u8],
    code: &str,
    unix_secs: u64,
    last_used_step: Option<u64>,
) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_at(unix_secs);
    let mut matched = None;
    for step in now.saturating_sub(SKEW_STEPS)..=now + SKEW_STEPS {
        let fresh = last_used_step.is_none_or(|used| step > used);
        let equal = constant_time_eq(code_for_step(secret, step).as_bytes(), code.as_bytes());
        if equal && fresh && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

/// RFC 4648 base32 without padding, as authenticator apps expect in `otpauth://` URIs.
pub fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Percent-encodes a URI component (RFC 3986 unreserved characters pass).
fn uri_component(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `otpauth://totp/...` URI authenticator apps import (Key Uri Format).
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let issuer = uri_component(issuer);
    format!(
        "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        uri_component(account),
        base32(secret)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows: the secret is ASCII "12345678901234567890" and
    /// the published values have 8 digits; 6-digit codes are their last six digits.
    const RFC_SECRET: &[u8] = b"12345678901234567890";
    const RFC_VECTORS: &[(u64, &str)] = &[
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn rfc6238_sha1_vectors() {
        for (time, expected) in RFC_VECTORS {
            let eight = format!("{:08}", hotp(RFC_SECRET, step_at(*time), 8));
            assert_eq!(&eight, expected, "T = {time}");
            assert_eq!(code_at(RFC_SECRET, *time), expected[2..], "T = {time}");
        }
    }

    #[test]
    fn rfc4226_hotp_vectors() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, value) in expected.iter().enumerate() {
            assert_eq!(hotp(RFC_SECRET, counter as u64, 6), *value);
        }
    }

    #[test]
    fn skew_window_and_replay() {
        let t = 1_234_567_890;
        let now = step_at(t);
        let code_prev = code_for_step(RFC_SECRET, now - 1);
        let code_next = code_for_step(RFC_SECRET, now + 1);
        let code_far = code_for_step(RFC_SECRET, now + 2);
        assert_eq!(
            verify(RFC_SECRET, &code_at(RFC_SECRET, t), t, None),
            Some(now)
        );
        assert_eq!(verify(RFC_SECRET, &code_prev, t, None), Some(now - 1));
        assert_eq!(verify(RFC_SECRET, &code_next, t, None), Some(now + 1));
        assert_eq!(
            verify(RFC_SECRET, &code_far, t, None),
            None,
            "+2 steps refused"
        );
        let code_old = code_for_step(RFC_SECRET, now - 2);
        assert_eq!(
            verify(RFC_SECRET, &code_old, t, None),
            None,
            "-2 steps refused"
        );
        // Once a step is used, it and earlier steps are refused.
        assert_eq!(
            verify(RFC_SECRET, &code_at(RFC_SECRET, t), t, Some(now)),
            None
        );
        assert_eq!(verify(RFC_SECRET, &code_prev, t, Some(now - 1)), None);
        assert_eq!(verify(RFC_SECRET, &code_next, t, Some(now)), Some(now + 1));
        assert_eq!(verify(RFC_SECRET, "12345", t, None), None);
        assert_eq!(verify(RFC_SECRET, "abcdef", t, None), None);
    }

    #[test]
    fn base32_rfc4648_vectors() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fo"), "MZXQ");
        assert_eq!(base32(b"foo"), "MZXW6");
        assert_eq!(base32(b"foob"), "MZXW6YQ");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn otpauth_uri_is_well_formed() {
        let uri = otpauth_uri(b"12345678901234567890", "Aegis Demo", "ada@example.com");
        assert_eq!(
            uri,
            "otpauth://totp/Aegis%20Demo:ada%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Aegis%20Demo&algorithm=SHA1&digits=6&period=30"
        );
    }
}
