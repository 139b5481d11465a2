//! Byte-rate quotas per principal, per node (as Kafka's client quotas): how many record bytes a
//! principal may produce to and fetch from this node per second.
//!
//! Each principal and direction has a virtual clock, `paid_until`: the time its bytes so far
//! would take at its rate. A request waits until the clock is no more than one second (the
//! burst) ahead of now, then its bytes move the clock on. Waiting happens *before* the work, so
//! concurrency does not help a principal past its rate; the wait is reported to the client
//! (`throttle_time_ms`), as Kafka's throttle time is. A wait longer than [`WAIT_MAX`] is not
//! served at all: the request gets THROTTLED (retriable, nothing done).
//!
//! ```text
//!  produce: wait(principal, bytes) ─ sleep ─► append ─► answer{throttle_time_ms}
//!  fetch:   wait(principal, 0)     ─ sleep ─► read ─► charge(principal, bytes read) ─► answer
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::QuotasSection;

/// The longest a request is held back; beyond it, THROTTLED.
pub const WAIT_MAX: Duration = Duration::from_secs(5);
/// How far ahead of now a principal's clock may run before its requests wait.
const BURST: Duration = Duration::from_secs(1);
/// Clocks kept before the idle ones are dropped.
const CLOCKS_MAX: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Produce,
    Fetch,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Produce => "produce",
            Direction::Fetch => "fetch",
        }
    }
}

/// Why a request is not served now.
#[derive(Debug, PartialEq, Eq)]
pub struct OverQuota {
    pub direction: Direction,
    pub wait: Duration,
    pub rate: u64,
}

impl std::fmt::Display for OverQuota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "over the {} quota of {} bytes/s on this node: retry in {} ms",
            self.direction.as_str(),
            self.rate,
            self.wait.as_millis()
        )
    }
}

/// The quotas of one node.
#[derive(Clone)]
pub struct Quotas {
    config: Arc<QuotasSection>,
    clocks: Arc<Mutex<HashMap<(String, Direction), Instant>>>,
}

impl Quotas {
    pub fn new(config: &QuotasSection) -> Quotas {
        Quotas { config: Arc::new(config.clone()), clocks: Arc::default() }
    }

    /// `principal`'s rate in `direction` (0: unlimited).
    fn rate(&self, principal: &str, direction: Direction) -> u64 {
        let own = self.config.principals.iter().find(|p| p.principal == principal);
        match direction {
            Direction::Produce => own.map_or(self.config.produce_bytes_per_second, |p| p.produce_bytes_per_second),
            Direction::Fetch => own.map_or(self.config.fetch_bytes_per_second, |p| p.fetch_bytes_per_second),
        }
    }

    /// How long a request of `principal` must wait before it is served, `bytes` (known up
    /// front, 0 for a fetch) charged to it.
    ///
    /// # Errors
    /// The wait would be longer than [`WAIT_MAX`]: nothing is charged.
    pub fn wait(&self, principal: &str, direction: Direction, bytes: u64) -> Result<Duration, OverQuota> {
        self.wait_at(principal, direction, bytes, Instant::now())
    }

    fn wait_at(&self, principal: &str, direction: Direction, bytes: u64, now: Instant) -> Result<Duration, OverQuota> {
        let rate = self.rate(principal, direction);
        if rate == 0 {
            return Ok(Duration::ZERO);
        }
        let mut clocks = self.clocks.lock().unwrap_or_else(|p| p.into_inner());
        if clocks.len() >= CLOCKS_MAX {
            clocks.retain(|_, paid| *paid > now);
        }
        let paid = clocks.entry((principal.to_string(), direction)).or_insert(now);
        let start = (*paid).max(now);
        let wait = start.saturating_duration_since(now + BURST);
        if wait > WAIT_MAX {
            return Err(OverQuota { direction, wait, rate });
        }
        *paid = start + cost(bytes, rate);
        Ok(wait)
    }

    /// Charges `bytes` served (a fetch's answer) to `principal`.
    pub fn charge(&self, principal: &str, direction: Direction, bytes: u64) {
        let rate = self.rate(principal, direction);
        if rate == 0 || bytes == 0 {
            return;
        }
        let now = Instant::now();
        let mut clocks = self.clocks.lock().unwrap_or_else(|p| p.into_inner());
        let paid = clocks.entry((principal.to_string(), direction)).or_insert(now);
        *paid = (*paid).max(now) + cost(bytes, rate);
    }
}

fn cost(bytes: u64, rate: u64) -> Duration {
    Duration::from_secs_f64(bytes as f64 / rate as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PrincipalQuota;

    fn quotas(produce: u64, fetch: u64) -> Quotas {
        Quotas::new(&QuotasSection {
            produce_bytes_per_second: produce,
            fetch_bytes_per_second: fetch,
            principals: vec![PrincipalQuota {
                principal: "bulk".into(),
                produce_bytes_per_second: 0,
                fetch_bytes_per_second: 10,
            }],
        })
    }

    #[test]
    fn a_principal_past_its_burst_waits_in_proportion_and_others_do_not() {
        let q = quotas(1_000, 0);
        let t = Instant::now();
        // 1 s of burst is free: 1000 bytes now, then 1000 more.
        assert_eq!(q.wait_at("a", Direction::Produce, 1_000, t), Ok(Duration::ZERO));
        assert_eq!(q.wait_at("a", Direction::Produce, 1_000, t), Ok(Duration::ZERO));
        // The clock is now 2 s ahead: the next request waits 1 s.
        assert_eq!(q.wait_at("a", Direction::Produce, 500, t), Ok(Duration::from_secs(1)));
        // Another principal, another clock; fetch is unlimited; "bulk" has its own produce rate.
        assert_eq!(q.wait_at("b", Direction::Produce, 1_000, t), Ok(Duration::ZERO));
        assert_eq!(q.wait_at("a", Direction::Fetch, 1 << 30, t), Ok(Duration::ZERO));
        assert_eq!(q.wait_at("bulk", Direction::Produce, 1 << 30, t), Ok(Duration::ZERO));
        // Time passing pays the clock off.
        let later = t + Duration::from_secs(10);
        assert_eq!(q.wait_at("a", Direction::Produce, 1, later), Ok(Duration::ZERO));
    }

    #[test]
    fn a_wait_past_the_maximum_is_refused_and_charges_nothing() {
        let q = quotas(100, 0);
        let t = Instant::now();
        assert_eq!(q.wait_at("a", Direction::Produce, 1_000, t), Ok(Duration::ZERO)); // 10 s of bytes
        let e = q.wait_at("a", Direction::Produce, 1, t).expect_err("9 s > WAIT_MAX");
        assert_eq!(e.wait, Duration::from_secs(9));
        assert!(e.to_string().contains("produce quota of 100 bytes/s"), "{e}");
        // Refused requests add nothing: the wait stays 9 s.
        assert_eq!(q.wait_at("a", Direction::Produce, 1, t).expect_err("still").wait, Duration::from_secs(9));
    }

    #[test]
    fn fetched_bytes_charged_after_the_read_slow_the_next_fetch() {
        let q = quotas(0, 0);
        let t = Instant::now();
        assert_eq!(q.wait_at("bulk", Direction::Fetch, 0, t), Ok(Duration::ZERO));
        q.charge("bulk", Direction::Fetch, 30); // 3 s at 10 bytes/s
        let wait = q.wait("bulk", Direction::Fetch, 0).expect("under the maximum");
        assert!(wait > Duration::from_millis(1_900) && wait <= Duration::from_secs(2), "{wait:?}");
    }
}
