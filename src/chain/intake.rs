//! Parsing transactions submitted on the `transactions` topic. This is the trust
//! boundary: anything that gets past here ends up, canonically encoded, in a block.

use serde_json::{Number, Value};

/// Largest transaction record we accept; the tutorial's messages are ~50 bytes.
pub const MAX_TX_BYTES: usize = 4096;

/// A transaction as submitted: `{"from": "alice", "to": "bob", "amount": 3}`.
#[derive(Clone, Debug, PartialEq)]
pub struct SubmittedTx {
    pub from: String,
    pub to: String,
    /// Kept as written (arbitrary precision): it is copied into the block, canonicalised.
    pub amount: Number,
}

/// Why a submitted transaction was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    #[error("record is {len} bytes, over the {MAX_TX_BYTES}-byte limit")]
    TooLarge { len: usize },
    #[error("unparsable JSON: {0}")]
    Json(String),
    #[error("not a transaction: expected a JSON object")]
    NotAnObject,
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` is not {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("amount {0} is negative")]
    NegativeAmount(String),
    #[error("amount {0} is not finite")]
    NonFiniteAmount(String),
}

/// Parses and checks one record from the transactions topic.
pub fn parse_submitted(bytes: &[u8]) -> Result<SubmittedTx, IntakeError> {
    if bytes.len() > MAX_TX_BYTES {
        return Err(IntakeError::TooLarge { len: bytes.len() });
    }
    // The fast path reads the three fields without building a map of the whole object;
    // anything it does not take (an error, a missing field, a key serde_json treats
    // specially) goes the slow way, which decides and words the error.
    let fields = match serde_json::from_slice::<Fields>(bytes) {
        Ok(Fields(Some(fields))) => fields,
        _ => slow_fields(bytes)?,
    };
    check(fields)
}

/// `from`, `to` and `amount` as found (the last of duplicate keys, like a JSON map).
type Found = (Option<Value>, Option<Value>, Option<Value>);

/// The reference reading: the whole record as a `serde_json::Value`.
fn slow_fields(bytes: &[u8]) -> Result<Found, IntakeError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| IntakeError::Json(e.to_string()))?;
    let Value::Object(mut map) = value else {
        return Err(IntakeError::NotAnObject);
    };
    Ok((map.remove("from"), map.remove("to"), map.remove("amount")))
}

fn check((from, to, amount): Found) -> Result<SubmittedTx, IntakeError> {
    let string = |field: &'static str, value: Option<Value>| match value {
        None => Err(IntakeError::MissingField(field)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(IntakeError::WrongType {
            field,
            expected: "a string",
        }),
    };
    let from = string("from", from)?;
    let to = string("to", to)?;
    let amount = match amount {
        None => return Err(IntakeError::MissingField("amount")),
        Some(Value::Number(n)) => n,
        Some(_) => {
            return Err(IntakeError::WrongType {
                field: "amount",
                expected: "a number",
            })
        }
    };
    let literal = amount.to_string();
    let value: f64 = literal.parse().unwrap_or(f64::NAN);
    if !value.is_finite() {
        return Err(IntakeError::NonFiniteAmount(literal));
    }
    if value < 0.0 || (literal.starts_with('-') && value != 0.0) {
        return Err(IntakeError::NegativeAmount(literal));
    }
    Ok(SubmittedTx { from, to, amount })
}

/// The fast reading: an object's `from`, `to` and `amount` as values, every other
/// member skipped unbuilt; None for anything else (then [`slow_fields`] decides).
struct Fields(Option<Found>);

/// A member name, compared without allocating.
enum Key {
    From,
    To,
    Amount,
    Other,
    /// serde_json's private marker keys (arbitrary-precision numbers, raw values):
    /// left to the slow path, which gives them their special meaning.
    Private,
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: serde::de::Error>(self, k: &str) -> Result<Key, E> {
                Ok(match k {
                    "from" => Key::From,
                    "to" => Key::To,
                    "amount" => Key::Amount,
                    k if k.starts_with("$serde_json::private::") => Key::Private,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a transaction object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Fields, A::Error> {
                let mut found: Found = (None, None, None);
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::From => found.0 = Some(map.next_value()?),
                        Key::To => found.1 = Some(map.next_value()?),
                        Key::Amount => found.2 = Some(map.next_value()?),
                        // Read whole, not skipped: serde_json skips a value without
                        // checking its strings' UTF-8 or surrogate escapes, which the
                        // reference reading refuses.
                        Key::Other => {
                            map.next_value::<Value>()?;
                        }
                        Key::Private => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            while map
                                .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                                .is_some()
                            {}
                            return Ok(Fields(None));
                        }
                    }
                }
                Ok(Fields(Some(found)))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_tutorials_message() {
        let tx = parse_submitted(br#"{"from": "alice", "to": "bob", "amount": 3}"#).unwrap();
        assert_eq!(
            (
                tx.from.as_str(),
                tx.to.as_str(),
                tx.amount.to_string().as_str()
            ),
            ("alice", "bob", "3")
        );
        let tx = parse_submitted(
            "{\"from\":\"J\u{f6}rg\",\"to\":\"\u{1f600}\",\"amount\":1.50}".as_bytes(),
        )
        .unwrap();
        assert_eq!(tx.amount.to_string(), "1.50");
    }

    type Case = (&'static [u8], fn(&IntakeError) -> bool);

    #[test]
    fn rejects_bad_records() {
        let cases: &[Case] = &[
            (b"{", |e| matches!(e, IntakeError::Json(_))),
            (b"[1]", |e| matches!(e, IntakeError::NotAnObject)),
            (br#"{"to":"b","amount":1}"#, |e| {
                matches!(e, IntakeError::MissingField("from"))
            }),
            (br#"{"from":1,"to":"b","amount":1}"#, |e| {
                matches!(e, IntakeError::WrongType { field: "from", .. })
            }),
            (br#"{"from":"a","to":"b","amount":"1"}"#, |e| {
                matches!(
                    e,
                    IntakeError::WrongType {
                        field: "amount",
                        ..
                    }
                )
            }),
            (br#"{"from":"a","to":"b","amount":-1}"#, |e| {
                matches!(e, IntakeError::NegativeAmount(_))
            }),
            (br#"{"from":"a","to":"b","amount":1e400}"#, |e| {
                matches!(e, IntakeError::NonFiniteAmount(_) | IntakeError::Json(_))
            }),
            (br#"{"from":"a","to":"b","amount":NaN}"#, |e| {
                matches!(e, IntakeError::Json(_))
            }),
        ];
        for (input, ok) in cases {
            let err = parse_submitted(input).unwrap_err();
            assert!(ok(&err), "{}: {err}", String::from_utf8_lossy(input));
        }
        assert!(parse_submitted(br#"{"from":"a","to":"b","amount":-0}"#).is_ok());
        let big = format!(
            r#"{{"from":"{}","to":"b","amount":1}}"#,
            "a".repeat(MAX_TX_BYTES)
        );
        assert!(matches!(
            parse_submitted(big.as_bytes()),
            Err(IntakeError::TooLarge { .. })
        ));
    }

    /// Members other than the three are checked as the reference reading checks them
    /// (found by `fuzz/fuzz_targets/tx_intake.rs` in the CI smoke run: the fast reading
    /// skipped them unchecked and took invalid UTF-8 that serde_json refuses).
    #[test]
    fn other_members_are_checked_like_the_reference() {
        let cases: &[&[u8]] = &[
            b"{\"memo\": \"\xe2\xcd\xa8\", \"from\": \"a\", \"to\": \"b\", \"amount\": 1}",
            br#"{"memo": "\ud800", "from": "a", "to": "b", "amount": 1}"#,
            br#"{"memo": ["\udc00"], "from": "a", "to": "b", "amount": 1}"#,
        ];
        for case in cases {
            let reference = slow_fields(case).and_then(check);
            assert!(reference.is_err(), "{}", String::from_utf8_lossy(case));
            assert_eq!(
                parse_submitted(case),
                reference,
                "{}",
                String::from_utf8_lossy(case)
            );
        }
    }

    /// The fast reading takes exactly what the reference reading (the whole record as
    /// a `serde_json::Value`) takes, with the same fields, and leaves the rest to it.
    #[test]
    fn fast_reading_agrees_with_the_reference() {
        let cases: &[&str] = &[
            r#"{"from":"a","to":"b","amount":1}"#,
            r#"{"amount":1.50,"to":"b","from":"a","memo":{"x":[1,2,{"y":null}]}}"#,
            r#"{"from":"a","from":"z","to":"b","amount":1,"amount":2}"#,
            r#"{"fr\u006fm":"a","to":"b\u00e9","amount":-0}"#,
            r#"{"from":"a","to":"b","amount":1e2}"#,
            r#"{"from":"a","to":"b","amount":1,"x":[1,}"#,
            r#"{"$serde_json::private::Number":"5","from":"a","to":"b","amount":1}"#,
            r#"{"from":"a","to":"b","amount":1,"$serde_json::private::RawValue":"5"}"#,
            r#"{"from":"a","to":"b","amount":1} x"#,
            r#"{"from":"a","to":"b"}"#,
            r#"{"from":["a"],"to":"b","amount":1}"#,
            r#"[{"from":"a","to":"b","amount":1}]"#,
            r#""from""#,
        ];
        for case in cases {
            let fast = match serde_json::from_slice::<Fields>(case.as_bytes()) {
                Ok(Fields(Some(found))) => Some(found),
                _ => None,
            };
            let reference = slow_fields(case.as_bytes());
            if let Some(found) = fast {
                assert_eq!(Ok(found), reference, "{case}");
            }
            let parsed = parse_submitted(case.as_bytes());
            assert_eq!(parsed, reference.and_then(check), "{case}");
        }
        let dup = parse_submitted(cases[2].as_bytes()).unwrap();
        assert_eq!(
            (dup.from.as_str(), dup.amount.to_string()),
            ("z", "2".into())
        );
    }
}
