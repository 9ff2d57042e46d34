//! The dosing sessions of the live floor boards, kept folded in this server process.
//!
//! A board shows every session on a location's floor, and under a busy floor it is fetched again
//! at every change (issue 9: a change reaches another client's board within 250 ms at the 99th
//! percentile, with the vitals of 64 clients being written). Loaded from scratch, each session
//! cost a dozen statements (its whole event log, its protocol, the gate facts from the patient's
//! record) — some three hundred per board of twenty sessions. Here each session is kept as folded
//! from its first `count` events, and a board reads only the events its sessions gained since
//! (one statement for all of them). The log is append-only, so a session folded from its first
//! `count` events is the same whoever folded it: a board can never show a fold that the stored
//! log does not give.
//!
//! The protocol version a session runs under never changes (it is pinned when the session opens),
//! so it is read once. The gate facts come from the rest of the record (consent, eligibility,
//! REMS, C-SSRS, weight); the board uses them only for "what stops the next step", and re-reads
//! them when they are older than [`GATES_FRESH`]. Recording an event never takes them from here:
//! every write reads them anew (`sessions::record`), so a hard stop is never decided on a kept
//! fact.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kapstone_domain::UtcTs;
use kapstone_domain::decision::Route;
use kapstone_domain::protocol::Protocol;
use kapstone_domain::session::{self, Context, GateFacts, Recorded, Session, SessionView};
use kapstone_store::dosing::{self as store, SessionRow};
use uuid::Uuid;

use crate::auth::guard::CurrentUser;
use crate::error::AppError;
use crate::state::AppState;

/// How long the board shows a session's gate facts before reading them again.
pub const GATES_FRESH: Duration = Duration::from_secs(5);

/// Sessions kept before the ones no board has shown for [`FORGET_AFTER`] are dropped.
const KEEP: usize = 512;
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// The kept sessions; cheap to clone.
#[derive(Clone, Default)]
pub struct FloorSessions(Arc<Mutex<HashMap<Uuid, Kept>>>);

struct Kept {
    /// The events folded into `session`: the next to read is numbered `count`.
    count: i32,
    session: Session,
    protocol: Arc<Protocol>,
    gates: GateFacts,
    gates_read: Instant,
    shown: Instant,
}

/// What a refresh must read for one session.
struct Need {
    row: SessionRow,
    /// Kept already, folded from this many events, under a protocol for this route (else
    /// everything is read).
    kept: Option<(i32, Route)>,
    gates: bool,
}

impl FloorSessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Kept>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Brings the kept sessions of `rows` (as just read) up to date: their new events folded in,
    /// stale gate facts read again, a session not kept yet loaded whole.
    pub async fn refresh(&self, state: &AppState, user: &CurrentUser, rows: &[SessionRow]) -> Result<(), AppError> {
        let needs: Vec<Need> = {
            let kept = self.lock();
            rows.iter()
                .filter_map(|row| {
                    // Kept further than `row` (another board read newer events): nothing to read.
                    let k = kept.get(&row.id);
                    let behind = k.is_none_or(|k| k.count < row.event_count);
                    let gates = k.is_none_or(|k| k.gates_read.elapsed() >= GATES_FRESH);
                    (behind || gates).then(|| Need {
                        row: row.clone(),
                        kept: k.map(|k| (k.count, k.protocol.route)),
                        gates,
                    })
                })
                .collect()
        };
        if needs.is_empty() {
            return Ok(());
        }
        let from: Vec<(Uuid, i32)> = needs
            .iter()
            .filter(|n| n.kept.is_none_or(|(c, _)| c < n.row.event_count))
            .map(|n| (n.row.id, n.kept.map_or(0, |(c, _)| c)))
            .collect();
        let mut events: HashMap<Uuid, Vec<(i32, Recorded)>> = HashMap::new();
        for r in store::events_from(&state.db, &from).await? {
            let recorded = super::sessions::parse_event(&r.event)?;
            events.entry(r.session_id).or_default().push((r.event.seq, recorded));
        }
        // Read outside the lock, the sessions side by side (a board waits for the slowest, not
        // for the sum): the protocol of a session not kept yet, and gate facts that are due.
        let loaded = futures_util::future::try_join_all(needs.into_iter().map(|need| async move {
            let (protocol, route) = match need.kept {
                Some((_, route)) => (None, route),
                None => {
                    let p = super::protocols::version(
                        state,
                        user.clinic,
                        &need.row.protocol_id,
                        &need.row.protocol_version,
                    )
                    .await?;
                    let route = p.route;
                    (Some(Arc::new(p)), route)
                }
            };
            let gates = match need.gates {
                true => Some(super::sessions::gate_facts(state, user, &need.row, route).await?),
                false => None,
            };
            Ok::<_, AppError>((need, protocol, gates))
        }))
        .await?;
        let now = Instant::now();
        let mut kept = self.lock();
        for (need, protocol, gates) in loaded {
            let id = need.row.id;
            if let (None, Some(protocol), Some(gates)) = (kept.get(&id), protocol, gates.clone()) {
                kept.insert(
                    id,
                    Kept { count: 0, session: Session::scheduled(), protocol, gates, gates_read: now, shown: now },
                );
            }
            let Some(k) = kept.get_mut(&id) else { continue };
            if let Some(gates) = gates {
                k.gates = gates;
                k.gates_read = now;
            }
            // Another board may have folded some of these already: take only the next ones, in order.
            let ctx = Context { protocol: &k.protocol, gates: k.gates.clone(), now: UtcTs::now() };
            for (seq, recorded) in events.remove(&id).unwrap_or_default() {
                if seq == k.count {
                    k.session =
                        session::apply(std::mem::replace(&mut k.session, Session::scheduled()), &ctx, &recorded);
                    k.count += 1;
                }
            }
        }
        if kept.len() > KEEP {
            kept.retain(|_, k| k.shown.elapsed() < FORGET_AFTER);
        }
        Ok(())
    }

    /// What `f` makes of the kept session `id` as it stands at `now` (`None`: not kept, e.g. a
    /// refresh that failed part way).
    pub fn with<R>(&self, id: Uuid, now: UtcTs, f: impl FnOnce(&SessionView<'_>) -> R) -> Option<R> {
        let mut kept = self.lock();
        let k = kept.get_mut(&id)?;
        k.shown = Instant::now();
        let ctx = Context { protocol: &k.protocol, gates: k.gates.clone(), now };
        Some(f(&k.session.view(&ctx)))
    }

    /// Forgets every session (a test that rewrites a log behind the server's back).
    pub fn clear(&self) {
        self.lock().clear();
    }
}
