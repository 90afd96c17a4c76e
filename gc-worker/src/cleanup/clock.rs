//! The clock cleanup policies are judged by: the system clock, optionally shifted by a
//! fixed offset (`BERTH_CLOCK_OFFSET`) and by an offset read from a file at every use
//! (`BERTH_CLOCK_OFFSET_FILE`). **Test knobs**: an end-to-end test "moves time" past a
//! policy's `next_run_at` by writing `2d` into the file while the worker runs, instead of
//! sleeping. Only policy time moves (which policies are due, a run's start, `older_than`);
//! leases and GC review times stay on the system clock.

use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};

/// Now, for cleanup-policy decisions.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset: Duration,
    file: Option<PathBuf>,
}

impl Clock {
    /// The system clock, unshifted.
    pub fn system() -> Self {
        Clock::default()
    }

    /// The clock `cfg` asks for (`clock_offset`, `clock_offset_file`).
    pub fn from_config(cfg: &crate::Config) -> anyhow::Result<Self> {
        let offset = if cfg.clock_offset.trim().is_empty() {
            Duration::zero()
        } else {
            parse_offset(&cfg.clock_offset).context("BERTH_CLOCK_OFFSET")?
        };
        let file = (!cfg.clock_offset_file.trim().is_empty())
            .then(|| PathBuf::from(cfg.clock_offset_file.trim()));
        if offset != Duration::zero() || file.is_some() {
            tracing::warn!(
                clock.offset = %cfg.clock_offset,
                clock.offset_file = %cfg.clock_offset_file,
                "cleanup-policy clock is shifted (a test knob)"
            );
        }
        Ok(Clock { offset, file })
    }

    /// A clock shifted by `offset` (tests).
    pub fn shifted(offset: Duration) -> Self {
        Clock { offset, file: None }
    }

    /// The current time: system time plus the offsets. An unreadable or empty offset file
    /// counts as no offset.
    pub fn now(&self) -> DateTime<Utc> {
        let from_file = self
            .file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|s| parse_offset(&s).ok())
            .unwrap_or_else(Duration::zero);
        Utc::now() + self.offset + from_file
    }
}

/// A humantime duration, optionally negative: `10d`, `-1h`, `2d 3h`.
pub fn parse_offset(text: &str) -> anyhow::Result<Duration> {
    let t = text.trim();
    let (sign, rest) = match t.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, t),
    };
    let d = berth_server::parse_duration(rest)?;
    Ok(Duration::from_std(d).context("offset too large")? * sign)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("10d").unwrap(), Duration::days(10));
        assert_eq!(parse_offset(" -1h\n").unwrap(), Duration::hours(-1));
        assert!(parse_offset("soon").is_err());
    }

    #[test]
    fn file_offset_is_read_at_every_use() {
        let path = std::env::temp_dir().join(format!("berth-clock-{}", uuid::Uuid::new_v4()));
        let clock = Clock {
            offset: Duration::zero(),
            file: Some(path.clone()),
        };
        assert!((clock.now() - Utc::now()).num_seconds().abs() < 5);
        std::fs::write(&path, "3d").unwrap();
        let shift = clock.now() - Utc::now();
        assert!((shift - Duration::days(3)).num_seconds().abs() < 5);
        let _ = std::fs::remove_file(&path);
    }
}
