//! Which snapshots `backup.keep` keeps: the newest `last`, plus the newest of each of the
//! `daily` most recent days and of the `weekly` most recent ISO weeks that have one (UTC), as
//! restic's `forget` counts them. The newest snapshot is always kept.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate};
use oci_storage_config::Keep;

use super::format::SnapshotId;

/// The snapshots to keep among `ids` (any order).
pub fn kept(ids: &[SnapshotId], keep: Keep) -> BTreeSet<SnapshotId> {
    let mut newest_first: Vec<&SnapshotId> = ids.iter().collect();
    newest_first.sort();
    newest_first.reverse();
    let mut kept = BTreeSet::new();
    if let Some(newest) = newest_first.first() {
        kept.insert((*newest).clone());
    }
    kept.extend(
        newest_first
            .iter()
            .take(keep.last as usize)
            .map(|id| (*id).clone()),
    );
    let mut days: BTreeSet<NaiveDate> = BTreeSet::new();
    let mut weeks: BTreeSet<(i32, u32)> = BTreeSet::new();
    for id in &newest_first {
        let day = id.time().date_naive();
        if days.len() < keep.daily as usize && days.insert(day) {
            kept.insert((*id).clone());
        }
        let week = day.iso_week();
        if weeks.len() < keep.weekly as usize && weeks.insert((week.year(), week.week())) {
            kept.insert((*id).clone());
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(at: &str) -> SnapshotId {
        SnapshotId::new(at.parse().unwrap())
    }

    fn keep(last: u32, daily: u32, weekly: u32) -> Keep {
        Keep {
            last,
            daily,
            weekly,
        }
    }

    #[test]
    fn last_daily_and_weekly_as_restic_counts_them() {
        // Two a day from Monday 2026-11-16 to Tuesday 2026-12-01 (three ISO weeks).
        let mut ids = Vec::new();
        for day in 16..=30 {
            ids.push(id(&format!("2026-11-{day}T03:00:00Z")));
            ids.push(id(&format!("2026-11-{day}T15:00:00Z")));
        }
        ids.push(id("2026-12-01T03:00:00Z"));
        let newest = ids.last().unwrap().clone();

        let k = kept(&ids, keep(3, 0, 0));
        assert_eq!(k.len(), 3);
        assert!(k.contains(&newest));

        // The newest of each of the last 4 days: Dec 1, Nov 30 15:00, 29 15:00, 28 15:00.
        let k = kept(&ids, keep(0, 4, 0));
        let times: Vec<String> = k.iter().map(|i| i.as_str()[..15].to_owned()).collect();
        assert_eq!(
            times,
            [
                "20261128T150000",
                "20261129T150000",
                "20261130T150000",
                "20261201T030000"
            ]
        );

        // Weeks: Dec 1 (week 49), Sunday Nov 29 15:00 (week 48), Nov 22 15:00 (week 47).
        let k = kept(&ids, keep(0, 0, 3));
        let times: Vec<String> = k.iter().map(|i| i.as_str()[..15].to_owned()).collect();
        assert_eq!(
            times,
            ["20261122T150000", "20261129T150000", "20261201T030000"]
        );

        // Rules add up; overlapping picks count once.
        assert_eq!(kept(&ids, keep(2, 2, 1)).len(), 2);
        assert_eq!(kept(&ids, keep(2, 3, 3)).len(), 4);
        assert!(kept(&[], keep(1, 1, 1)).is_empty());
    }
}
