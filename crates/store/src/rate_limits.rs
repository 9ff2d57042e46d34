//! Rate-limit counters in the database, so every server process on one PostgreSQL (or one
//! SQLite file) counts into the same window: the app servers keep no state of their own.

use kapstone_domain::UtcTs;

use crate::{DbTs, Result, Tx, on_tx};

/// Counts one attempt in `bucket`'s window starting at `window_start` and returns the attempts
/// counted so far in that window, this one included. The increment is one atomic upsert, so
/// concurrent processes never lose a count. The first attempt of a window also prunes windows
/// that have ended (of any bucket), which keeps the table small without a separate job.
pub async fn hit(tx: &mut Tx, bucket: &str, window_start: UtcTs, expires_at: UtcTs, now: UtcTs) -> Result<i64> {
    let hits: i64 = on_tx!(tx, |c| {
        sqlx::query_scalar(
            "INSERT INTO rate_limit_counters (bucket, window_start, hits, expires_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limit_counters.hits + 1 RETURNING hits",
        )
        .bind(bucket)
        .bind(DbTs(window_start))
        .bind(DbTs(expires_at))
        .fetch_one(c)
        .await?
    });
    if hits == 1 {
        on_tx!(tx, |c| {
            sqlx::query("DELETE FROM rate_limit_counters WHERE expires_at < $1").bind(DbTs(now)).execute(c).await?;
        });
    }
    Ok(hits)
}
