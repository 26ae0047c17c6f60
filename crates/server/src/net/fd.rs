//! The open-file limit. Each connection is a descriptor; the soft limit is often far below
//! the hard one (1024 vs 1M), so the node raises it at start and sizes its connection cap
//! from what it got.

/// Raise the soft `RLIMIT_NOFILE` to the hard limit (or the kernel's `nr_open` when the hard
/// limit is unlimited) and return the soft limit now in force.
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!("cannot read the open-file limit; assuming 1024");
        return 1024;
    }
    let current = lim.rlim_cur as u64;
    let mut target = lim.rlim_max;
    if target == libc::RLIM_INFINITY {
        target = nr_open().unwrap_or(current.max(1 << 20)) as libc::rlim_t;
    }
    if target as u64 <= current {
        return current;
    }
    let raised = libc::rlimit {
        rlim_cur: target,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit only reads the struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        target as u64
    } else {
        tracing::warn!(soft = current, hard = target as u64, "cannot raise the open-file limit");
        current
    }
}

fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    #[allow(clippy::unnecessary_cast)]
    fn the_limit_is_raised_to_at_least_what_it_was() {
        let mut before = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut before) };
        let now = super::raise_nofile_limit();
        assert!(now >= before.rlim_cur as u64);
        let mut after = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut after) };
        assert_eq!(after.rlim_cur as u64, now);
    }
}
