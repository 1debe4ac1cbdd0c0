//! The healing session's state machine: its statuses and, in one table, which event moves a
//! session from which statuses to which. The store applies a move only while the session is
//! still in one of the statuses the table allows (a compare-and-set), so two workers or a
//! worker and a person cannot both move it; nothing else decides what is legal.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Received,
    Analyzing,
    Planned,
    AwaitingApproval,
    Executing,
    Verifying,
    /// Waiting out an incident: not retried until its canary is green (or people close it).
    Held,
    Healed,
    Failed,
    Escalated,
    Skipped,
    /// Observe mode: everything but the action ran; the plan says what would have happened.
    Observed,
}

use SessionStatus as S;

/// Every status, in the order of the happy path.
const ALL: [S; 12] = [
    S::Received,
    S::Analyzing,
    S::Planned,
    S::AwaitingApproval,
    S::Executing,
    S::Verifying,
    S::Held,
    S::Healed,
    S::Failed,
    S::Escalated,
    S::Skipped,
    S::Observed,
];

/// `ALL` with a `'static` address, so a one-status slice of it can guard a move.
static STATUSES: [S; 12] = ALL;

/// Sessions still being worked on: the first seven statuses.
pub const OPEN: &[S] = ALL.split_at(7).0;

impl SessionStatus {
    pub const ALL: [SessionStatus; 12] = ALL;

    pub fn as_str(self) -> &'static str {
        match self {
            S::Received => "received",
            S::Analyzing => "analyzing",
            S::Planned => "planned",
            S::AwaitingApproval => "awaiting_approval",
            S::Executing => "executing",
            S::Verifying => "verifying",
            S::Held => "held",
            S::Healed => "healed",
            S::Failed => "failed",
            S::Escalated => "escalated",
            S::Skipped => "skipped",
            S::Observed => "observed",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            S::Healed | S::Failed | S::Escalated | S::Skipped | S::Observed
        )
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SessionStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ALL.into_iter().find(|x| x.as_str() == s).ok_or(())
    }
}

/// What happens to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The worker takes the delivery up: fetch the logs, diagnose.
    Take,
    /// The plan heals without a person.
    Plan,
    /// The plan waits for people to approve it.
    AskApproval,
    /// Nothing to heal (a cancelled run).
    Skip,
    /// The diagnosis hands the failure to a person.
    EscalatePlan,
    /// Observe mode: the plan is recorded as what would have happened, and nothing acts.
    Observe,
    /// Enough people approved the plan.
    Approve,
    /// A person rejected the plan.
    Reject,
    /// Nobody approved the plan in time.
    Lapse,
    /// The heal attempt's platform call is being made.
    Start,
    /// The platform cannot take the call yet: back to planned, to try again.
    Postpone,
    /// The call was made: wait for the attempt's outcome.
    Verify,
    /// The transient jobs were re-run; the others need a person.
    HandOver,
    /// The call cannot be made or confirmed (budget, refusal, an interrupted call).
    EscalateCall,
    /// The attempt the heal started passed.
    Heal,
    /// The attempt completed: the next queued job goes.
    NextJob,
    /// The attempt failed: diagnose it afresh.
    Rediagnose,
    /// The attempt failed and no heal attempt is left.
    GiveUp,
    /// An open incident has the session's cause: wait for its canary, do not retry.
    Hold,
    /// The incident's canary goes, or its wave releases the session: plan the call again.
    Release,
    /// The incident stayed open too long: its held sessions go to people, together.
    Abandon,
    /// The worker could not go on (an error, a run that never completed).
    Fail,
    /// Someone asked for a re-run of a closed session and its new plan heals without a person.
    Reopen,
    /// Someone asked for a re-run of a closed session and its new plan waits for people.
    ReopenForApproval,
    /// Fields change, the status stays (a note, the model asked after the plan).
    Amend(SessionStatus),
}

/// One row of the table: `event` moves a session in one of `from` to `to`.
struct Rule {
    event: Event,
    from: &'static [S],
    to: S,
}

const CALLING: &[S] = &[S::Planned, S::Executing];
const AWAITING_OUTCOME: &[S] = &[S::Verifying, S::Executing];
/// Closed without a heal: what a requested re-run may reopen (never `healed`).
const REOPENABLE: &[S] = &[S::Escalated, S::Failed, S::Skipped];

/// Every legal move. `Amend` keeps any status and is not listed.
const RULES: &[Rule] = &[
    rule(Event::Take, &[S::Received], S::Analyzing),
    rule(Event::Plan, &[S::Analyzing], S::Planned),
    rule(Event::AskApproval, &[S::Analyzing], S::AwaitingApproval),
    rule(Event::Skip, &[S::Analyzing], S::Skipped),
    rule(Event::EscalatePlan, &[S::Analyzing], S::Escalated),
    rule(Event::Observe, &[S::Analyzing], S::Observed),
    rule(Event::Approve, &[S::AwaitingApproval], S::Planned),
    rule(Event::Reject, &[S::AwaitingApproval], S::Escalated),
    rule(Event::Lapse, &[S::AwaitingApproval], S::Escalated),
    rule(Event::Start, &[S::Planned], S::Executing),
    rule(Event::Postpone, &[S::Executing], S::Planned),
    rule(Event::Verify, CALLING, S::Verifying),
    rule(Event::HandOver, CALLING, S::Escalated),
    rule(
        Event::EscalateCall,
        &[S::Planned, S::Executing, S::Verifying],
        S::Escalated,
    ),
    rule(Event::Heal, AWAITING_OUTCOME, S::Healed),
    rule(Event::NextJob, AWAITING_OUTCOME, S::Planned),
    rule(Event::Rediagnose, AWAITING_OUTCOME, S::Analyzing),
    rule(Event::GiveUp, AWAITING_OUTCOME, S::Escalated),
    rule(Event::Hold, &[S::Analyzing, S::Planned], S::Held),
    rule(Event::Release, &[S::Held], S::Planned),
    rule(Event::Abandon, &[S::Held], S::Escalated),
    rule(Event::Fail, OPEN, S::Failed),
    rule(Event::Reopen, REOPENABLE, S::Planned),
    rule(Event::ReopenForApproval, REOPENABLE, S::AwaitingApproval),
];

const fn rule(event: Event, from: &'static [S], to: S) -> Rule {
    Rule { event, from, to }
}

/// A move the table does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Illegal {
    pub from: SessionStatus,
    pub event: Event,
}

impl fmt::Display for Illegal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not allowed from {}", self.event, self.from)
    }
}

impl std::error::Error for Illegal {}

/// Where `event` takes a session that is in `from`.
pub fn transition(from: S, event: Event) -> Result<S, Illegal> {
    let (sources, to) = moves(event);
    if sources.contains(&from) {
        Ok(to)
    } else {
        Err(Illegal { from, event })
    }
}

/// The statuses `event` may move a session from, and where it takes it: what the store's
/// conditional update checks.
pub fn moves(event: Event) -> (&'static [S], S) {
    if let Event::Amend(s) = event {
        let i = ALL.iter().position(|x| *x == s).unwrap_or_default();
        return (std::slice::from_ref(&STATUSES[i]), s);
    }
    RULES
        .iter()
        .find(|r| r.event == event)
        .map(|r| (r.from, r.to))
        .expect("every event but Amend has a rule")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_is_legal_and_shortcuts_are_refused() {
        let path = [
            Event::Take,
            Event::AskApproval,
            Event::Approve,
            Event::Start,
            Event::Verify,
            Event::Heal,
        ];
        let mut at = S::Received;
        for e in path {
            at = transition(at, e).unwrap();
        }
        assert_eq!(at, S::Healed);
        // Healed only after a call, never straight from a plan or a delivery.
        assert!(transition(S::Received, Event::Heal).is_err());
        assert!(transition(S::Planned, Event::Heal).is_err());
        // A person's rejection applies only while the plan waits for people.
        assert!(transition(S::Executing, Event::Reject).is_err());
        // A closed session stays closed (only its fields may be amended) unless someone asks
        // for a re-run and the planner grants it; a healed or an observed one (observe mode
        // never acts) stays closed for good.
        let reopen = [Event::Reopen, Event::ReopenForApproval];
        for s in ALL.iter().filter(|s| s.is_terminal()) {
            let moves = RULES.iter().filter(|r| r.from.contains(s));
            assert!(moves.clone().all(|r| reopen.contains(&r.event)), "{s}");
            assert_eq!(
                moves.count() > 0,
                !matches!(s, S::Healed | S::Observed),
                "{s}"
            );
            assert_eq!(transition(*s, Event::Amend(*s)), Ok(*s));
        }
        assert!(transition(S::Healed, Event::Amend(S::Failed)).is_err());
    }

    #[test]
    fn every_event_has_one_rule_and_statuses_round_trip() {
        for r in RULES {
            assert_eq!(RULES.iter().filter(|x| x.event == r.event).count(), 1);
            assert!(!r.from.is_empty());
        }
        for s in ALL {
            assert_eq!(s.as_str().parse::<S>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }
}
