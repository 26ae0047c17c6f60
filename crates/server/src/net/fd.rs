//! The open-file limit. Each connection is a descriptor; the soft limit is often far below
//! the hard one (1024 vs 1M), so the node raises it at start and sizes its connection cap
//! from what it got. Through `rustix`'s safe wrappers: the product has no unsafe code.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raise the soft `RLIMIT_NOFILE` to the hard limit (or the kernel's `nr_open` when the hard
/// limit is unlimited) and return the soft limit now in force.
pub fn raise_nofile_limit() -> u64 {
    let lim = getrlimit(Resource::Nofile);
    let Some(current) = lim.current else {
        // Unlimited soft limit: nothing to raise; size from a generous figure.
        return nr_open().unwrap_or(1 << 20);
    };
    let target = match lim.maximum {
        Some(hard) => hard,
        None => nr_open().unwrap_or(current.max(1 << 20)),
    };
    if target <= current {
        return current;
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: lim.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => target,
        Err(e) => {
            tracing::warn!(soft = current, hard = target, error = %e, "cannot raise the open-file limit");
            current
        }
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
    use super::*;

    #[test]
    fn the_limit_is_raised_to_at_least_what_it_was() {
        let before = getrlimit(Resource::Nofile).current;
        let now = raise_nofile_limit();
        if let Some(before) = before {
            assert!(now >= before, "never lowered: {before} -> {now}");
        }
        assert_eq!(
            getrlimit(Resource::Nofile).current.unwrap_or(now),
            now,
            "what is reported is in force"
        );
    }
}
