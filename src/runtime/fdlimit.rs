//! `maxclients` against the process's file-descriptor limit (`RLIMIT_NOFILE`), as Redis does at start.
//!
//! Every client takes a descriptor, and the node needs some of its own (listeners, gossip, peer links, log
//! files): `RESERVED_FDS` of them, Redis's `CONFIG_MIN_RESERVED_FDS`. When the soft limit is below
//! `maxclients + RESERVED_FDS` the limit is raised (the soft one up to the hard one is always allowed; beyond the
//! hard one only with privilege); if it still falls short, `maxclients` is lowered to fit and a warning says so.
//! The arithmetic is in `clients_for_limit` and `wanted_limit`, the system calls in `fit_maxclients`.

/// Descriptors kept for the node's own use beyond one per client.
pub const RESERVED_FDS: u64 = 32;

/// The descriptor limit `maxclients` clients need.
pub fn wanted_limit(maxclients: usize) -> u64 {
    (maxclients as u64).saturating_add(RESERVED_FDS)
}

/// The most clients a descriptor limit of `limit` leaves room for, at most `maxclients` and at least 1.
pub fn clients_for_limit(maxclients: usize, limit: u64) -> usize {
    let room = limit.saturating_sub(RESERVED_FDS).max(1);
    maxclients.min(usize::try_from(room).unwrap_or(usize::MAX)).max(1)
}

/// Raise `RLIMIT_NOFILE` for `maxclients` if needed and possible; returns the `maxclients` the limit allows.
pub fn fit_maxclients(maxclients: usize) -> usize {
    let wanted = wanted_limit(maxclients);
    let Some((soft, hard)) = get_limit() else {
        tracing::warn!(maxclients, "could not read the open-files limit; keeping maxclients as configured");
        return maxclients;
    };
    if soft >= wanted {
        return maxclients;
    }
    let granted = if set_limit(wanted, hard.max(wanted)) {
        wanted
    } else if set_limit(wanted.min(hard), hard) {
        wanted.min(hard)
    } else {
        soft
    };
    let fitted = clients_for_limit(maxclients, granted);
    if fitted < maxclients {
        tracing::warn!(
            maxclients,
            fitted,
            open_files_limit = granted,
            "the open-files limit (ulimit -n) is too low for maxclients plus {RESERVED_FDS} reserved descriptors \
             and could not be raised: maxclients lowered to {fitted}"
        );
    } else {
        tracing::info!(from = soft, to = granted, "raised the open-files limit for maxclients");
    }
    fitted
}

/// The soft and hard `RLIMIT_NOFILE`.
fn get_limit() -> Option<(u64, u64)> {
    rlimit::getrlimit(rlimit::Resource::NOFILE).ok()
}

/// Set the soft and hard `RLIMIT_NOFILE`; whether the OS allowed it.
fn set_limit(soft: u64, hard: u64) -> bool {
    rlimit::setrlimit(rlimit::Resource::NOFILE, soft, hard).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_descriptors_come_off_the_limit() {
        assert_eq!(wanted_limit(10_000), 10_032);
        assert_eq!(wanted_limit(usize::MAX), u64::MAX);
        assert_eq!(clients_for_limit(10_000, 1024), 992);
        assert_eq!(clients_for_limit(10_000, 10_032), 10_000);
        assert_eq!(clients_for_limit(10_000, u64::MAX), 10_000);
        assert_eq!(clients_for_limit(500, 1024), 500);
        assert_eq!(clients_for_limit(500, 16), 1, "always room for one client");
    }

    #[test]
    fn a_small_maxclients_is_kept_and_a_huge_one_fits_the_limit() {
        assert_eq!(fit_maxclients(8), 8);
        let (_, hard) = get_limit().expect("getrlimit works");
        let huge = fit_maxclients(usize::MAX / 2);
        let (soft_after, _) = get_limit().unwrap();
        assert!((1..usize::MAX / 2).contains(&huge), "{huge}");
        assert_eq!(huge, clients_for_limit(usize::MAX / 2, soft_after), "maxclients matches the limit in force");
        assert!(soft_after <= hard.max(soft_after));
    }
}
