//! The open-file limit, and the ingest connection cap that stays below it.
//!
//! Every connection is a file descriptor. With the common soft limit of 1024, a client holding
//! a thousand half-open connections used to exhaust them, and then nothing could be accepted:
//! not a beacon, not a `/healthz` probe. So at start-up the soft `RLIMIT_NOFILE` is raised to
//! the hard limit, and the ingest listener's cap is kept [`RESERVE`] descriptors below it, for
//! the admin listener, the exporters' connections, disk buffer files and the runtime.

/// Descriptors kept out of the ingest cap: the admin listener's connections
/// ([`super::serve::ADMIN_MAX_CONNECTIONS`]), exporter connections, disk buffer segments, the
/// GeoIP database, standard streams and the runtime's own.
pub(super) const RESERVE: u64 = 256;

/// Raises the soft open-file limit as far as allowed and returns the ingest connection cap:
/// `configured`, lowered when needed to stay [`RESERVE`] below the limit. Logs the result.
pub(super) fn ingest_cap(configured: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(error) => {
            let current = rlimit::Resource::NOFILE.get().ok().map(|(soft, _)| soft);
            tracing::warn!(%error, ?current, "cannot raise the open-file limit");
            current
        }
    };
    let cap = cap_below(configured, limit);
    if cap < configured {
        tracing::warn!(
            max_connections = cap,
            configured,
            open_file_limit = limit,
            reserve = RESERVE,
            "server.max_connections lowered to stay below the open-file limit; raise the hard \
             limit (ulimit -Hn, LimitNOFILE=) to allow more"
        );
    } else {
        tracing::info!(
            max_connections = cap,
            open_file_limit = limit,
            "ingest connections capped"
        );
    }
    cap
}

/// `configured`, at most `limit - RESERVE` (and at least 1). `None`: the limit is unknown.
fn cap_below(configured: usize, limit: Option<u64>) -> usize {
    let Some(limit) = limit else {
        return configured;
    };
    let room = usize::try_from(limit.saturating_sub(RESERVE)).unwrap_or(usize::MAX);
    configured.min(room).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_keeps_the_reserve_below_the_limit() {
        assert_eq!(cap_below(10_000, Some(1024)), 768);
        assert_eq!(cap_below(500, Some(1024)), 500);
        assert_eq!(cap_below(10_000, Some(1_048_576)), 10_000);
        assert_eq!(cap_below(10_000, None), 10_000);
        assert_eq!(cap_below(10_000, Some(100)), 1, "never zero");
    }

    #[test]
    fn start_up_raises_the_soft_limit_to_the_hard_limit() {
        let cap = ingest_cap(usize::MAX);
        let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap();
        assert_eq!(soft, hard, "soft limit raised to the hard limit");
        assert_eq!(cap as u64, soft.saturating_sub(RESERVE).max(1));
    }
}
