//! Timing: options, rows of per-round figures, interleaved measurement in
//! thread CPU time.
#![cfg(target_os = "linux")]

use std::path::PathBuf;
use std::time::Duration;

use crate::subject::Subject;

pub(crate) struct Opts {
    pub(crate) quick: bool,
    pub(crate) rounds: usize,
    pub(crate) batch: Duration,
    pub(crate) out: Option<PathBuf>,
}

/// One measured row: per implementation, ns/op of each round.
pub(crate) struct Row {
    pub(crate) label: String,
    pub(crate) names: Vec<&'static str>,
    /// `ns[impl][round]`.
    ns: Vec<Vec<f64>>,
}

pub(crate) fn median(v: &[f64]) -> f64 {
    quantile(v, 0.5)
}

pub(crate) fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = q * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

impl Row {
    pub(crate) fn median_ns(&self, i: usize) -> f64 {
        median(&self.ns[i])
    }
    /// Per-round ratios of implementation `i` to `floor`: (p25, median, p75).
    pub(crate) fn ratio(&self, i: usize, floor: usize) -> (f64, f64, f64) {
        let r: Vec<f64> = self.ns[i]
            .iter()
            .zip(&self.ns[floor])
            .map(|(a, b)| a / b)
            .collect();
        (quantile(&r, 0.25), median(&r), quantile(&r, 0.75))
    }
}

/// The fewest operations in a batch, so that no round's figure is that of a
/// single operation: the largest rows take ~15 ms an operation, longer than
/// a batch. Those rows stay the noisiest all the same (their kernel work
/// dominates; see their A/A control column): B at N = K = 8192 against
/// polling gave 0.991, 1.030 and 1.000 with one operation a round, 1.002
/// with five.
pub(crate) const MIN_OPS: u64 = 5;

/// Interleaved rounds of `op(subject, iters)` over all subjects; `iters` is
/// calibrated on the first subject so that its batch takes `opts.batch`, and
/// is at least [`MIN_OPS`].
pub(crate) fn measure(
    label: String,
    subjects: &mut [&mut dyn Subject],
    opts: &Opts,
    op: &dyn Fn(&mut dyn Subject, u64),
) -> Row {
    // Warm up every subject, then calibrate on the first.
    for s in subjects.iter_mut() {
        op(&mut **s, 3);
    }
    let mut iters = 1u64;
    loop {
        let t = cpu_now();
        op(&mut *subjects[0], iters);
        let dt = cpu_now() - t;
        if dt >= opts.batch / 4 || iters >= 1 << 30 {
            let per = dt.as_secs_f64() / iters as f64;
            iters = ((opts.batch.as_secs_f64() / per) as u64).max(MIN_OPS);
            break;
        }
        iters *= 2;
    }
    let m = subjects.len();
    let mut ns = vec![Vec::with_capacity(opts.rounds); m];
    // A fresh random order every round (xorshift, fixed seed): no subject
    // always follows the same one, so after-effects of one subject's batch on
    // the next (caches, the kernel's state) fall on all of them alike.
    let mut order: Vec<usize> = (0..m).collect();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..opts.rounds {
        for j in (1..m).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(j, (seed % (j as u64 + 1)) as usize);
        }
        for &i in &order {
            let t = cpu_now();
            op(&mut *subjects[i], iters);
            let dt = cpu_now() - t;
            ns[i].push(dt.as_secs_f64() * 1e9 / iters as f64);
        }
    }
    let row = Row {
        label,
        names: subjects.iter().map(|s| s.name()).collect(),
        ns,
    };
    eprint!("  {:<28}", row.label);
    for (i, name) in row.names.iter().enumerate() {
        eprint!(" {name} {:.0} ns", row.median_ns(i));
    }
    eprintln!("  ({iters} ops/batch)");
    if std::env::var_os("BENCH_DUMP").is_some() {
        for (i, name) in row.names.iter().enumerate() {
            let v: Vec<String> = row.ns[i].iter().map(|x| format!("{x:.0}")).collect();
            eprintln!("    {name:>14}: {}", v.join(" "));
        }
    }
    row
}

/// This thread's CPU time (user + system): a batch that is preempted by
/// another process on this shared machine does not count the time it waited.
/// Everything timed here is on-CPU work (a select with K >= 1 ready fds does
/// not block).
pub(crate) fn cpu_now() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}
