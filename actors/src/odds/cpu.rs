//! CPU spent per pipeline stage, measured with the calling thread's CPU
//! clock around each stage's synchronous work, for the scale benchmark and
//! the `tasklet_odds_cpu_nanoseconds_total{stage}` metric.

use std::sync::atomic::{AtomicU64, Ordering};

/// A stage of a poll whose CPU time is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Parse = 0,
    Diff = 1,
    Persist = 2,
}

impl Stage {
    fn label(self) -> &'static str {
        match self {
            Stage::Parse => "parse",
            Stage::Diff => "diff",
            Stage::Persist => "persist",
        }
    }
}

static CPU_NS: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
static POLLS: AtomicU64 = AtomicU64::new(0);

/// CPU nanoseconds the calling thread has used so far.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU nanoseconds the whole process has used so far.
pub fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: as above.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Counts the thread CPU between its creation and its drop to `stage`.
pub struct StageClock {
    stage: Stage,
    started: u64,
}

impl StageClock {
    pub fn start(stage: Stage) -> StageClock {
        StageClock {
            stage,
            started: thread_cpu_ns(),
        }
    }
}

impl Drop for StageClock {
    fn drop(&mut self) {
        let spent = thread_cpu_ns().saturating_sub(self.started);
        CPU_NS[self.stage as usize].fetch_add(spent, Ordering::Relaxed);
        metrics::counter!("tasklet_odds_cpu_nanoseconds_total", "stage" => self.stage.label())
            .increment(spent);
        metrics::histogram!("tasklet_odds_stage_cpu_seconds", "stage" => self.stage.label())
            .record(spent as f64 / 1e9);
    }
}

/// Counts one poll that brought a readable page.
pub fn count_poll() {
    POLLS.fetch_add(1, Ordering::Relaxed);
}

/// Totals since the process started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTotals {
    pub polls: u64,
    pub parse_ns: u64,
    pub diff_ns: u64,
    pub persist_ns: u64,
}

pub fn totals() -> CpuTotals {
    CpuTotals {
        polls: POLLS.load(Ordering::Relaxed),
        parse_ns: CPU_NS[0].load(Ordering::Relaxed),
        diff_ns: CPU_NS[1].load(Ordering::Relaxed),
        persist_ns: CPU_NS[2].load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_clock_counts_cpu_spent() {
        let before = totals().diff_ns;
        {
            let _clock = StageClock::start(Stage::Diff);
            let mut x = 0u64;
            for i in 0..2_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            std::hint::black_box(x);
        }
        assert!(totals().diff_ns > before);
    }
}
