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
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| IntakeError::Json(e.to_string()))?;
    let Value::Object(mut map) = value else {
        return Err(IntakeError::NotAnObject);
    };
    let mut string = |field: &'static str| match map.remove(field) {
        None => Err(IntakeError::MissingField(field)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(IntakeError::WrongType {
            field,
            expected: "a string",
        }),
    };
    let from = string("from")?;
    let to = string("to")?;
    let amount = match map.remove("amount") {
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
}
