//! How the jobs of one run move on: a job starts when every job it needs succeeded, is skipped
//! when one of them failed or was skipped, and finishes when its time is up.

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Success,
    Failure,
    Skipped,
}

/// Where one job stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    Waiting,
    Running { until: Instant, success: bool },
    Done(End),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    Finish(usize, End),
    Skip(usize),
    Start(usize),
}

/// Every transition due at `now`, in the order they happen: jobs whose time is up finish,
/// then jobs whose needs are settled start or are skipped (repeatedly, as skips cascade).
pub fn due(phases: &[Phase], needs: &[Vec<usize>], now: Instant) -> Vec<Step> {
    #[derive(Clone, Copy, PartialEq)]
    enum Local {
        Waiting,
        Active,
        Done(End),
    }
    let mut steps = Vec::new();
    let mut local: Vec<Local> = phases
        .iter()
        .enumerate()
        .map(|(i, p)| match *p {
            Phase::Waiting => Local::Waiting,
            Phase::Running { until, success } if until <= now => {
                let end = if success { End::Success } else { End::Failure };
                steps.push(Step::Finish(i, end));
                Local::Done(end)
            }
            Phase::Running { .. } => Local::Active,
            Phase::Done(e) => Local::Done(e),
        })
        .collect();
    loop {
        let mut progress = false;
        for i in 0..local.len() {
            if local[i] != Local::Waiting {
                continue;
            }
            let need = |n: &usize| local.get(*n).copied().unwrap_or(Local::Done(End::Success));
            if needs[i]
                .iter()
                .any(|n| matches!(need(n), Local::Done(End::Failure | End::Skipped)))
            {
                steps.push(Step::Skip(i));
                local[i] = Local::Done(End::Skipped);
                progress = true;
            } else if needs[i]
                .iter()
                .all(|n| need(n) == Local::Done(End::Success))
            {
                steps.push(Step::Start(i));
                local[i] = Local::Active;
                progress = true;
            }
        }
        if !progress {
            return steps;
        }
    }
}

/// When the next running job finishes.
pub fn next_deadline(phases: &[Phase]) -> Option<Instant> {
    phases
        .iter()
        .filter_map(|p| match p {
            Phase::Running { until, .. } => Some(*until),
            _ => None,
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn failures_skip_dependents_and_success_starts_them() {
        let now = Instant::now();
        let needs = vec![vec![], vec![0], vec![1], vec![]];
        let phases = [
            Phase::Running {
                until: now,
                success: false,
            },
            Phase::Waiting,
            Phase::Waiting,
            Phase::Waiting,
        ];
        let steps = due(&phases, &needs, now);
        assert_eq!(
            steps,
            [
                Step::Finish(0, End::Failure),
                Step::Skip(1),
                Step::Skip(2),
                Step::Start(3)
            ]
        );
        let later = [
            Phase::Running {
                until: now + Duration::from_secs(1),
                success: true,
            },
            Phase::Waiting,
        ];
        assert!(due(&later, &needs[..2], now).is_empty());
        assert_eq!(next_deadline(&later), Some(now + Duration::from_secs(1)));
    }
}
