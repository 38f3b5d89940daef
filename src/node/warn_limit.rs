//! Rate-limited warnings for records that anyone with write access to a topic chooses.
//!
//! A node warns about every transaction it skips (malformed, rejected, too large), with
//! the record's partition, offset and reason. One line per record lets a writer make
//! the node write a log as large as the flood (~150 MB per million 20-byte records),
//! so each kind of warning goes through a [`WarnLimit`]: in every interval the first
//! `verbatim` occurrences are logged as they come, the rest only counted, by reason
//! (the error's variant), and one summary line per interval reports those counts.
//!
//! Invariants: every occurrence is either logged verbatim or counted in exactly one
//! summary (nothing vanishes from the log's arithmetic); the counters are bounded by the
//! number of reasons (variants), not by the number of records; the node's own counters
//! and metrics are kept by the caller and never limited.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use tracing::warn;

/// Warnings logged verbatim per interval, per kind.
pub const VERBATIM_PER_INTERVAL: u32 = 100;
/// The interval of [`VERBATIM_PER_INTERVAL`] and of the summary lines.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// What went unlogged in one interval: the count per reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    pub total: u64,
    pub by_reason: BTreeMap<String, u64>,
}

impl Suppressed {
    /// `Json: 12, NotAnObject: 3`.
    pub fn reasons(&self) -> String {
        self.by_reason
            .iter()
            .map(|(reason, n)| format!("{reason}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One kind of warning, limited (see the module docs).
#[derive(Debug)]
pub struct WarnLimit {
    what: &'static str,
    verbatim: u32,
    interval: Duration,
    /// Start of the current interval; None before the first occurrence.
    since: Option<Instant>,
    shown: u32,
    suppressed: Suppressed,
}

impl WarnLimit {
    /// `what` is the warning's message, repeated in its summary lines.
    pub fn new(what: &'static str, verbatim: u32, interval: Duration) -> Self {
        WarnLimit {
            what,
            verbatim,
            interval,
            since: None,
            shown: 0,
            suppressed: Suppressed {
                total: 0,
                by_reason: BTreeMap::new(),
            },
        }
    }

    /// The node's default: [`VERBATIM_PER_INTERVAL`] per [`INTERVAL`].
    pub fn standard(what: &'static str) -> Self {
        Self::new(what, VERBATIM_PER_INTERVAL, INTERVAL)
    }

    /// One occurrence at `now`: true if the caller should log it verbatim; otherwise it
    /// is counted under `reason`'s variant name (the text of its `Debug` form up to the
    /// first `(`, `{` or space: `Json("…")` counts as `Json`).
    pub fn admit(&mut self, now: Instant, reason: &dyn Debug) -> bool {
        self.report_due(now);
        let since = *self.since.get_or_insert(now);
        debug_assert!(now >= since);
        if self.shown < self.verbatim {
            self.shown += 1;
            return true;
        }
        let class = variant_name(&format!("{reason:?}"));
        *self.suppressed.by_reason.entry(class).or_default() += 1;
        self.suppressed.total += 1;
        false
    }

    /// Ends the interval if it is over (or `force`): what it did not log, if anything.
    /// The next occurrence starts a new interval.
    pub fn end_interval(&mut self, now: Instant, force: bool) -> Option<Suppressed> {
        let since = self.since?;
        if !force && now.saturating_duration_since(since) < self.interval {
            return None;
        }
        self.since = None;
        self.shown = 0;
        if self.suppressed.total == 0 {
            return None;
        }
        Some(std::mem::replace(
            &mut self.suppressed,
            Suppressed {
                total: 0,
                by_reason: BTreeMap::new(),
            },
        ))
    }

    /// Logs the summary line of an interval that is over, if it suppressed anything.
    pub fn report_due(&mut self, now: Instant) {
        if let Some(s) = self.end_interval(now, false) {
            self.log(&s);
        }
    }

    /// Logs the summary of the current interval now, if it suppressed anything (on stop).
    pub fn report_now(&mut self) {
        if let Some(s) = self.end_interval(Instant::now(), true) {
            self.log(&s);
        }
    }

    fn log(&self, s: &Suppressed) {
        warn!(
            not_logged = s.total,
            by_reason = %s.reasons(),
            "{}: {} more in the last {:?} not logged one by one (at most {} per interval are)",
            self.what,
            s.total,
            self.interval,
            self.verbatim
        );
    }
}

/// The node's limited warnings about skipped transaction records, one limit each.
#[derive(Debug)]
pub struct SkipWarnings {
    pub malformed: WarnLimit,
    pub rejected: WarnLimit,
    pub oversized: WarnLimit,
}

impl SkipWarnings {
    pub fn new() -> Self {
        SkipWarnings {
            malformed: WarnLimit::standard("skipping malformed transaction"),
            rejected: WarnLimit::standard("rejected transfer"),
            oversized: WarnLimit::standard("skipping transaction: too large for any block"),
        }
    }

    /// Summary lines of the intervals that are over.
    pub fn report_due(&mut self, now: Instant) {
        self.malformed.report_due(now);
        self.rejected.report_due(now);
        self.oversized.report_due(now);
    }

    /// Summary lines of everything not logged yet (on stop).
    pub fn report_now(&mut self) {
        self.malformed.report_now();
        self.rejected.report_now();
        self.oversized.report_now();
    }
}

impl Default for SkipWarnings {
    fn default() -> Self {
        Self::new()
    }
}

/// The variant name at the start of a `Debug` rendering.
fn variant_name(debug: &str) -> String {
    let end = debug.find(['(', '{', ' ']).unwrap_or(debug.len());
    let name = debug[..end].trim_matches('"');
    if name.is_empty() {
        "other".into()
    } else {
        name.chars().take(64).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    #[allow(dead_code)]
    enum Reason {
        Json(String),
        NotAnObject,
        WrongType { field: &'static str },
    }

    #[test]
    fn the_first_per_interval_are_verbatim_and_the_rest_counted_by_variant() {
        let t0 = Instant::now();
        let mut limit = WarnLimit::new("skipping", 3, Duration::from_secs(10));
        let reasons = [
            Reason::Json("a".into()),
            Reason::NotAnObject,
            Reason::Json("b".into()),
            Reason::Json("c".into()),
            Reason::WrongType { field: "to" },
            Reason::NotAnObject,
            Reason::Json("d".into()),
        ];
        let shown: Vec<bool> = reasons.iter().map(|r| limit.admit(t0, r)).collect();
        assert_eq!(shown, [true, true, true, false, false, false, false]);
        assert_eq!(limit.end_interval(t0 + Duration::from_secs(9), false), None);
        let s = limit
            .end_interval(t0 + Duration::from_secs(10), false)
            .expect("a summary once the interval is over");
        assert_eq!(s.total, 4);
        assert_eq!(s.reasons(), "Json: 2, NotAnObject: 1, WrongType: 1");
        // A new interval: verbatim again.
        assert!(limit.admit(t0 + Duration::from_secs(11), &Reason::NotAnObject));
        assert_eq!(
            limit.end_interval(t0 + Duration::from_secs(30), false),
            None,
            "nothing suppressed, no summary"
        );
    }

    #[test]
    fn every_occurrence_is_either_shown_or_counted_once() {
        let t0 = Instant::now();
        let mut limit = WarnLimit::new("skipping", 5, Duration::from_millis(100));
        let (mut shown, mut counted) = (0u64, 0u64);
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_millis(i / 7);
            // Summaries of intervals that ended, as the node's loop takes them.
            if let Some(s) = limit.end_interval(now, false) {
                counted += s.total;
            }
            if limit.admit(now, &Reason::Json(i.to_string())) {
                shown += 1;
            }
        }
        if let Some(s) = limit.end_interval(t0, true) {
            counted += s.total;
        }
        assert_eq!(shown + counted, 10_000);
        // 10,000 occurrences over ~1.43 s in 100 ms intervals: 15 intervals of 5 shown.
        assert_eq!(shown, 15 * 5);
    }

    #[test]
    fn variant_names() {
        assert_eq!(variant_name(r#"Json("x (y)")"#), "Json");
        assert_eq!(variant_name("WrongType { field: \"to\" }"), "WrongType");
        assert_eq!(variant_name("NotAnObject"), "NotAnObject");
        assert_eq!(variant_name(""), "other");
        assert_eq!(variant_name(&format!("{:?}", "TooLarge")), "TooLarge");
    }
}
