//! The loop around a worker's `run_once`: reviews back-to-back while rows are due, then
//! sleeps `interval`, doubling the sleep (up to `max_backoff`) while it finds nothing and
//! resetting it when it finds work. It stops between reviews, never in the middle of one.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use super::Outcome;

/// What a `run_once` reports to its loop: whether it found work (then the loop runs it
/// again at once) or found nothing (then the loop sleeps).
pub trait Work {
    /// Did the run find work?
    fn found(&self) -> bool;
}

impl Work for Outcome {
    fn found(&self) -> bool {
        *self != Outcome::Empty
    }
}

/// Sleep bounds of an agent.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// The first sleep after a run, and the sleep after a run that found work.
    pub interval: Duration,
    /// The longest sleep while idle.
    pub max_backoff: Duration,
}

impl Pace {
    /// The sleep after one that lasted `previous`, given whether the run found work.
    pub fn next(&self, previous: Duration, found_work: bool) -> Duration {
        if found_work {
            self.interval
        } else {
            (previous * 2).clamp(self.interval, self.max_backoff.max(self.interval))
        }
    }
}

/// Run `once` until `stop` turns true. `once` logs and postpones its own failures; an error
/// here only ends the current burst so a broken database is not hammered.
pub async fn run<F, Fut, W>(
    worker: &'static str,
    pace: Pace,
    mut stop: watch::Receiver<bool>,
    mut once: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<W>>,
    W: Work,
{
    // Half, so the first idle sleep is `interval` itself.
    let mut sleep = pace.interval / 2;
    loop {
        let mut found = false;
        loop {
            if *stop.borrow() {
                return;
            }
            match once().await {
                Ok(w) if !w.found() => break,
                Ok(_) => found = true,
                Err(e) => {
                    tracing::debug!(worker, error = %format!("{e:#}"), "review failed");
                    break;
                }
            }
        }
        sleep = if found {
            pace.interval
        } else {
            pace.next(sleep, false)
        };
        metrics::histogram!("berth_gc_sleep_duration_seconds", "worker" => worker)
            .record(sleep.as_secs_f64());
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_sleeps_double_up_to_the_cap_and_work_resets_them() {
        let pace = Pace {
            interval: Duration::from_secs(5),
            max_backoff: Duration::from_secs(60),
        };
        let mut s = pace.interval;
        let mut seen = Vec::new();
        for _ in 0..5 {
            s = pace.next(s, false);
            seen.push(s.as_secs());
        }
        assert_eq!(seen, [10, 20, 40, 60, 60]);
        assert_eq!(pace.next(s, true), Duration::from_secs(5));
    }
}
