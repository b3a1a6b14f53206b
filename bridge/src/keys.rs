//! Names to keys: a shmstore name (UTF-8, `/` between its parts) is a
//! JetStream key-value key made of the characters a key may hold,
//! `[A-Za-z0-9_/-]` kept as they are and every other byte of the name's
//! UTF-8 written `=XX` (two upper-case hex digits). `=` itself and `.`
//! are escaped, so a key is one subject token and never starts or ends
//! with a dot. The escaping round-trips: [`name_of`] undoes [`key_of`] and
//! refuses any key [`key_of`] does not make (lower-case hex, a bare `=`,
//! bytes that are not UTF-8) and the keys of names no shmstore object can
//! have (empty, or with a control character), so that one name has
//! exactly one key.

/// Whether `b` stands for itself in a key.
fn kept(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'/' || b == b'-'
}

/// The key of the name `name`.
pub fn key_of(name: &str) -> String {
    let mut key = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if kept(b) {
            key.push(b as char);
        } else {
            key.push_str(&format!("={b:02X}"));
        }
    }
    key
}

/// The name whose key is `key`, or why `key` is not one [`key_of`] makes.
pub fn name_of(key: &str) -> Result<String, String> {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if kept(b) {
            out.push(b);
            i += 1;
        } else if b == b'=' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(|| {
                format!("`=` at byte {i} of key {key:?} is not followed by two hex digits")
            })?;
            let digit = |c: u8| match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            };
            let (Some(hi), Some(lo)) = (digit(hex[0]), digit(hex[1])) else {
                return Err(format!(
                    "`=` at byte {i} of key {key:?} is not followed by two upper-case hex digits"
                ));
            };
            let v = hi << 4 | lo;
            if kept(v) {
                return Err(format!(
                    "key {key:?} escapes {:?}, which a key holds as itself",
                    v as char
                ));
            }
            out.push(v);
            i += 3;
        } else {
            return Err(format!(
                "key {key:?} holds {:?}, which no name's key holds",
                b as char
            ));
        }
    }
    let name = String::from_utf8(out)
        .map_err(|_| format!("key {key:?} is not the key of a UTF-8 name"))?;
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(format!(
            "key {key:?} is the key of no shmstore name (empty, or with a control character)"
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_keys_hold_only_key_characters() {
        for name in [
            "acme/config",
            "acme/config@2",
            "a.b",
            "=",
            "x=41",
            "héllo wörld/✓",
            "-_/",
            ".leading",
            "trailing.",
            "\u{10ffff}",
        ] {
            let key = key_of(name);
            assert!(
                key.bytes()
                    .all(|b| kept(b) || b == b'=' || b.is_ascii_hexdigit()),
                "{key}"
            );
            assert!(!key.starts_with('.') && !key.ends_with('.'), "{key}");
            assert_eq!(name_of(&key).unwrap(), name, "{key}");
        }
        assert_eq!(key_of("acme/config@2"), "acme/config=402");
        assert_eq!(key_of("a.b"), "a=2Eb");
    }

    #[test]
    fn keys_no_name_makes_are_refused() {
        for key in [
            "a=4", "a=", "a=zz", "a=2e", "a=41", "a.b", "a b", "=FF", "=C3=28", "a*", "", "a=09b",
            "=1B]0",
        ] {
            assert!(name_of(key).is_err(), "{key}");
        }
    }

    #[test]
    fn every_byte_round_trips() {
        for b in 1u8..128 {
            let name = (b as char).to_string();
            if (b as char).is_control() {
                assert!(name_of(&key_of(&name)).is_err(), "{b}");
            } else {
                assert_eq!(name_of(&key_of(&name)).unwrap(), name);
            }
        }
    }
}
