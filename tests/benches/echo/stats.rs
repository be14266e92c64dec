//! Statistics: quantiles, the rows of per-round figures.
#![cfg(target_os = "linux")]

use std::process::Command;

use crate::load::{Load, Run};

pub(crate) fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let pos = q * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

pub(crate) fn median(v: &[f64]) -> f64 {
    quantile(v, 0.5)
}

pub(crate) fn pct(mut v: Vec<u32>, q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let k = ((v.len() - 1) as f64 * q).round() as usize;
    let (_, x, _) = v.select_nth_unstable(k);
    f64::from(*x)
}

/// One workload's runs: `runs[server][round]`.
pub(crate) struct Row {
    pub(crate) label: String,
    pub(crate) load: Load,
    pub(crate) runs: Vec<Vec<Run>>,
}

impl Row {
    /// Messages/s, or MB/s for a stream.
    pub(crate) fn rate(&self, s: usize) -> f64 {
        let scale = if matches!(self.load, Load::Stream(_)) {
            1e6
        } else {
            1.0
        };
        median(
            &self.runs[s]
                .iter()
                .map(|r| r.units as f64 / r.secs / scale)
                .collect::<Vec<_>>(),
        )
    }
    /// Server CPU ns per message, or ms per MB for a stream.
    pub(crate) fn cpu_per_unit(r: &Run, load: Load) -> f64 {
        let ns = r.server_cpu.as_nanos() as f64;
        match load {
            Load::PingPong(_) => ns / r.units.max(1) as f64,
            Load::Stream(_) => ns / 1e6 / (r.units.max(1) as f64 / 1e6),
        }
    }
    pub(crate) fn cpu(&self, s: usize) -> f64 {
        median(
            &self.runs[s]
                .iter()
                .map(|r| Self::cpu_per_unit(r, self.load))
                .collect::<Vec<_>>(),
        )
    }
    pub(crate) fn cpu_ratio(&self, s: usize, floor: usize) -> (f64, f64, f64) {
        let r: Vec<f64> = self.runs[s]
            .iter()
            .zip(&self.runs[floor])
            .map(|(a, b)| Self::cpu_per_unit(a, self.load) / Self::cpu_per_unit(b, self.load))
            .collect();
        (quantile(&r, 0.25), median(&r), quantile(&r, 0.75))
    }
    /// RTT percentile (µs), median over rounds.
    pub(crate) fn rtt(&self, s: usize, q: f64) -> f64 {
        median(
            &self.runs[s]
                .iter()
                .map(|r| pct(r.rtt_ns.clone(), q) / 1e3)
                .collect::<Vec<_>>(),
        )
    }
}

pub(crate) fn shell(cmd: &str) -> String {
    Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
