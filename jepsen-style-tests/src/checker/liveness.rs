//! Liveness, reported (not a pass/fail condition): how available the cluster was.

use serde::Serialize;

use crate::history::{Analysis, OpType};

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Liveness {
    pub ops: usize,
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
    /// Fraction of ops that succeeded while no fault was active.
    pub ok_ratio_without_faults: Option<f64>,
    /// Seconds from the end of the last fault to the first successful send after it.
    pub recovery_after_last_heal_s: Option<f64>,
    pub sends_ok: usize,
}

pub fn liveness(a: &Analysis) -> Liveness {
    let mut l = Liveness::default();
    let in_fault = |t: u64| a.windows.iter().any(|w| t >= w.start && t <= w.end);
    let (mut calm, mut calm_ok) = (0usize, 0usize);
    for (t, _, f, kind) in &a.completions {
        if f == "assign" {
            continue;
        }
        l.ops += 1;
        match kind {
            OpType::Ok => l.ok += 1,
            OpType::Fail => l.fail += 1,
            _ => l.info += 1,
        }
        if !in_fault(*t) {
            calm += 1;
            if *kind == OpType::Ok {
                calm_ok += 1;
            }
        }
        if f == "send" && *kind == OpType::Ok {
            l.sends_ok += 1;
        }
    }
    l.ok_ratio_without_faults = (calm > 0).then(|| calm_ok as f64 / calm as f64);
    if let Some(heal) = a.windows.iter().map(|w| w.end).max() {
        l.recovery_after_last_heal_s = a
            .completions
            .iter()
            .filter(|(t, _, f, k)| *t >= heal && f == "send" && *k == OpType::Ok)
            .map(|(t, _, _, _)| (*t - heal) as f64 / 1e9)
            .reduce(f64::min);
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::build::H;

    #[test]
    fn counts_ops_and_the_calm_ok_ratio() {
        let mut h = H::default();
        h.send_ok(1, 0, 1, 0).send_fail(1, 0, 2).send_info(1, 0, 3).send_ok(1, 0, 4, 1);
        let l = liveness(&h.analysis());
        assert_eq!((l.ops, l.ok, l.fail, l.info, l.sends_ok), (4, 2, 1, 1, 2));
        assert_eq!(l.ok_ratio_without_faults, Some(0.5));
    }
}
