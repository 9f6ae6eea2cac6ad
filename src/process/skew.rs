//! Clock-skew correction: put browser times on the bridge's clock.
//!
//! A beacon's event times are relative to the browser's `performance.timeOrigin`, an epoch time
//! read from the browser's wall clock, which can be minutes or years off. The beacon also
//! carries the browser's clock at send time (`sent_at_ms`); the bridge knows its own clock at
//! receipt (`received_at_ms`). When the two differ by more than a threshold, the whole beacon is
//! shifted by the difference — only `time_origin_ms` moves, since every event time is relative
//! to it — and the shift is kept in `clock_skew_ms`. The converter then stamps every span and
//! log record of the beacon with `rum.clock_skew_ms` so the correction is visible downstream.
//!
//! The difference also contains the network transit time (usually well under a second), which
//! is why small differences are left alone (`correlation.clock_skew_threshold_ms`, default
//! 1000 ms).

use crate::model::PageContext;

/// Shifts `ctx.time_origin_ms` by `received_at_ms − sent_at_ms` when its magnitude exceeds
/// `threshold_ms`, and records the shift in `ctx.clock_skew_ms`.
///
/// Does nothing when the send time is missing, not a positive finite number, or when the batch
/// was already corrected (so applying it twice is harmless). Returns the shift applied.
pub fn correct_clock_skew(ctx: &mut PageContext, threshold_ms: f64) -> Option<f64> {
    if ctx.clock_skew_ms.is_some() {
        return None;
    }
    let sent = ctx.sent_at_ms.filter(|t| t.is_finite() && *t > 0.0)?;
    let skew = ctx.received_at_ms - sent;
    if !skew.is_finite() || !ctx.time_origin_ms.is_finite() || skew.abs() <= threshold_ms {
        return None;
    }
    ctx.time_origin_ms += skew;
    ctx.clock_skew_ms = Some(skew);
    Some(skew)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_700_000_000_000.0;

    fn ctx(sent: Option<f64>) -> PageContext {
        PageContext {
            time_origin_ms: NOW - 60_000.0,
            sent_at_ms: sent,
            received_at_ms: NOW,
            ..Default::default()
        }
    }

    #[test]
    fn small_differences_are_left_alone() {
        for sent in [NOW - 1_000.0, NOW + 1_000.0, NOW - 250.0, NOW] {
            let mut c = ctx(Some(sent));
            assert_eq!(correct_clock_skew(&mut c, 1_000.0), None, "{sent}");
            assert_eq!(c.time_origin_ms, NOW - 60_000.0);
            assert_eq!(c.clock_skew_ms, None);
        }
    }

    #[test]
    fn browser_clock_behind_is_moved_forward() {
        let mut c = ctx(Some(NOW - 3_600_000.0));
        assert_eq!(correct_clock_skew(&mut c, 1_000.0), Some(3_600_000.0));
        assert_eq!(c.time_origin_ms, NOW + 3_540_000.0);
        assert_eq!(c.clock_skew_ms, Some(3_600_000.0));
        // Idempotent.
        assert_eq!(correct_clock_skew(&mut c, 1_000.0), None);
        assert_eq!(c.time_origin_ms, NOW + 3_540_000.0);
    }

    #[test]
    fn browser_clock_ahead_is_moved_back() {
        let mut c = ctx(Some(NOW + 1_000.5));
        assert_eq!(correct_clock_skew(&mut c, 1_000.0), Some(-1_000.5));
        assert_eq!(c.time_origin_ms, NOW - 61_000.5);
    }

    #[test]
    fn missing_or_garbage_send_time_is_ignored() {
        for sent in [
            None,
            Some(0.0),
            Some(-5.0),
            Some(f64::NAN),
            Some(f64::INFINITY),
        ] {
            let mut c = ctx(sent);
            assert_eq!(correct_clock_skew(&mut c, 1_000.0), None, "{sent:?}");
            assert_eq!(c.clock_skew_ms, None);
        }
    }

    #[test]
    fn threshold_zero_corrects_any_difference() {
        let mut c = ctx(Some(NOW - 1.0));
        assert_eq!(correct_clock_skew(&mut c, 0.0), Some(1.0));
    }
}
