//! Watches the floor counters for every live board this server process serves.
//!
//! Each clinic's floor counter (`floor_changes`) moves in the same transaction as any change to
//! its floor, whichever server process made it. One task per process reads the counters of the
//! clinics somebody is watching, every [`TICK`], and wakes their event streams: many open boards
//! cost one small query per clinic per tick instead of one per board, and a change made through
//! another process on the same database reaches this one's boards within a tick (issue 9: a
//! change on another client's board within 250 ms at the 99th percentile). A change made through
//! this process moves its boards as soon as it is committed ([`FloorWatch::bump_in`]), without
//! waiting for the tick and its read.
//!
//! The counter only grows, so a value older than the one a board has (a tick's read that started
//! before a commit pushed a newer one) is ignored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use kapstone_domain::ClinicId;
use kapstone_store::Db;
use kapstone_store::writer::Batch;
use tokio::sync::watch;

/// How often the watched counters are read.
pub const TICK: Duration = Duration::from_millis(50);

type Watched = Mutex<HashMap<ClinicId, watch::Sender<Option<i64>>>>;

/// The per-process watcher; cheap to clone. The task ends when the last clone is dropped.
#[derive(Clone)]
pub struct FloorWatch {
    watched: Arc<Watched>,
}

impl FloorWatch {
    /// Must be called inside a tokio runtime: it starts the polling task.
    pub fn spawn(db: Db) -> Self {
        Self::spawn_every(db, TICK)
    }

    /// [`FloorWatch::spawn`] reading the counters every `tick` (tests: a tick that never comes
    /// shows what reaches the boards without it).
    pub fn spawn_every(db: Db, tick: Duration) -> Self {
        let watched: Arc<Watched> = Arc::default();
        tokio::spawn(poll(db, Arc::downgrade(&watched), tick));
        Self { watched }
    }

    /// A receiver of the clinic's counter: `None` until the first read, then each new value.
    pub fn subscribe(&self, clinic: ClinicId) -> watch::Receiver<Option<i64>> {
        let mut map = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(clinic).or_insert_with(|| watch::Sender::new(None)).subscribe()
    }

    /// Bumps the clinic's floor counter in `batch` (once however many of its jobs ask) and, once
    /// the batch is committed, moves this process's boards of the clinic to the new value.
    pub fn bump_in(&self, batch: &mut Batch, clinic: ClinicId) {
        // Filled by the bump if it is this job's that runs (the first job of the batch to ask);
        // left at 0 otherwise (a counter is 1 after its first bump), which moves nothing.
        let counter = Arc::new(AtomicI64::new(0));
        let bumped = Arc::clone(&counter);
        batch.once(format!("floor:{clinic}"), move |tx| {
            Box::pin(async move {
                bumped.store(kapstone_store::dosing::bump_floor(tx, clinic).await?, Ordering::Relaxed);
                Ok(())
            })
        });
        let watch = self.clone();
        batch.after_commit(move || watch.advance(clinic, counter.load(Ordering::Relaxed)));
    }

    /// The clinic's counter is now at least `counter`: its boards in this process move if they
    /// were behind.
    fn advance(&self, clinic: ClinicId, counter: i64) {
        if counter <= 0 {
            return;
        }
        let map = self.watched.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = map.get(&clinic) {
            tx.send_if_modified(|v| forward(v, counter));
        }
    }
}

/// Moves `value` to `counter` if that is newer; whether it moved.
fn forward(value: &mut Option<i64>, counter: i64) -> bool {
    let newer = value.is_none_or(|v| counter > v);
    if newer {
        *value = Some(counter);
    }
    newer
}

/// The clinics with at least one open board; forgets the others.
fn clinics_watched(watched: &Watched) -> Vec<ClinicId> {
    let mut map = watched.lock().unwrap_or_else(PoisonError::into_inner);
    map.retain(|_, tx| tx.receiver_count() > 0);
    map.keys().copied().collect()
}

async fn poll(db: Db, watched: Weak<Watched>, tick: Duration) {
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(map) = watched.upgrade() else { return };
        for clinic in clinics_watched(&map) {
            // The database busy or away: the boards keep their last value until a later tick.
            let Ok(counter) = kapstone_store::dosing::floor_counter(&db, clinic).await else { continue };
            let guard = map.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(tx) = guard.get(&clinic) {
                tx.send_if_modified(|v| forward(v, counter));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_moves_only_forward_and_not_for_a_job_whose_bump_did_not_run() {
        let watch = FloorWatch { watched: Arc::default() };
        let clinic = ClinicId::new();
        let mut board = watch.subscribe(clinic);
        // A job whose bump was another job's (its counter left at 0).
        watch.advance(clinic, 0);
        assert!(!board.has_changed().unwrap_or(true));
        assert_eq!(*board.borrow(), None);
        watch.advance(clinic, 5);
        assert_eq!(*board.borrow_and_update(), Some(5));
        // A tick's read that started before the commit pushed 5.
        watch.advance(clinic, 3);
        assert!(!board.has_changed().unwrap_or(true));
        assert_eq!(*board.borrow(), Some(5));
        watch.advance(clinic, 6);
        assert_eq!(*board.borrow_and_update(), Some(6));
        // Another clinic's boards are not touched.
        let other = ClinicId::new();
        watch.advance(other, 9);
        assert_eq!(*board.borrow(), Some(6));
    }
}
