//! Canonical JSON: our reader/writer against an encoder written independently
//! (`kafkachain_fuzz::py`, over serde_json's parse), and its own round trips.
//!
//! - Both accept: the same bytes.
//! - We accept what serde_json refuses only for Python-only input (`NaN`,
//!   `Infinity`, lone surrogates, nesting past serde_json's 128 levels, UTF-8-encoded
//!   surrogates that Python's `surrogatepass` decodes); we refuse what serde_json
//!   accepts only for Python-refused input (integers over 4300 digits).
//! - Whatever we accept: the output is a fixed point, `is_canonical` says so, and
//!   the input is canonical exactly when it equals its canonical form.
#![no_main]

use kafkachain::chain::canonical::{is_canonical, to_canonical, MAX_DEPTH, MAX_INT_DIGITS};
use kafkachain_fuzz::py;
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        let mut seeds = kafkachain_fuzz::canonical_vector_inputs();
        for (_, text) in kafkachain_fuzz::CHAIN_FIXTURES {
            seeds.extend(kafkachain_fuzz::fixture_lines(text));
        }
        seeds.extend(kafkachain_fuzz::submitted_vectors());
        seeds.extend(kafkachain_fuzz::python_v2_chain());
        kafkachain_fuzz::write_seeds(seeds);
    },
    |data: &[u8]| {
        let ours = to_canonical(data);
        let theirs = serde_json::from_slice::<serde_json::Value>(data);
        match (&ours, &theirs) {
            (Ok(ours), Ok(value)) => {
                let mut want = String::new();
                py::dumps(value, &mut want);
                assert!(
                    ours.as_slice() == want.as_bytes(),
                    "canonical form differs from the independent encoder\n input {:?}\n ours  {:?}\n want  {:?}",
                    String::from_utf8_lossy(data),
                    String::from_utf8_lossy(ours),
                    want
                );
            }
            (Ok(_), Err(e)) => {
                let python_only = data.windows(3).any(|w| w == b"NaN")
                    || data.windows(8).any(|w| w == b"Infinity")
                    || data.windows(3).any(|w| w.eq_ignore_ascii_case(b"\\ud"))
                    || py::depth(data) >= 128
                    || (std::str::from_utf8(data).is_err() && py::is_utf8_surrogatepass(data));
                assert!(
                    python_only,
                    "we accept what serde_json refuses ({e}) for no Python reason: {:?}",
                    String::from_utf8_lossy(data)
                );
                if std::str::from_utf8(data).is_err() {
                    assert!(py::is_utf8_surrogatepass(data), "accepted invalid UTF-8: {data:?}");
                }
            }
            (Err(e), Ok(_)) => {
                assert!(
                    py::longest_digit_run(data) > MAX_INT_DIGITS || py::depth(data) > MAX_DEPTH,
                    "we refuse ({e}) what serde_json and Python accept: {:?}",
                    String::from_utf8_lossy(data)
                );
            }
            (Err(_), Err(_)) => {}
        }
        if let Ok(canon) = &ours {
            assert_eq!(is_canonical(canon), Ok(true), "output not recognised as canonical");
            assert_eq!(
                to_canonical(canon).as_deref(),
                Ok(canon.as_slice()),
                "canonical form is not a fixed point"
            );
            assert_eq!(
                is_canonical(data),
                Ok(canon.as_slice() == data),
                "is_canonical disagrees with to_canonical on {:?}",
                String::from_utf8_lossy(data)
            );
        } else {
            assert!(is_canonical(data).is_err(), "is_canonical accepts what to_canonical refuses");
        }
    }
);
