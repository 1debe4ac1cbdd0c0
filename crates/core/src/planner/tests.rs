use super::*;
use crate::analysis::Diagnosis;
use crate::category::Category;
use crate::event::FailedJob;
use crate::heal::tests::diag;
use crate::heal::KNOWN_FLAKY;
use crate::learning::ArmStats;
use crate::policy::{Decision, StepKind};
use SessionStatus as S;

fn job(name: &str, d: Diagnosis) -> JobDiagnosis {
    JobDiagnosis {
        job: FailedJob {
            id: name.into(),
            name: name.into(),
            ..Default::default()
        },
        diagnosis: d,
    }
}

fn known() -> Known {
    Known {
        capabilities: Capabilities {
            retry: true,
            ..Default::default()
        },
        ..Default::default()
    }
}

const POLICY: fn() -> Policy = Policy::default;

fn facts<'a>(
    status: S,
    happened: Happened<'a>,
    policy: &'a Policy,
    ev: &'a FailureEvent,
) -> Facts<'a> {
    Facts {
        status,
        happened,
        event: ev,
        policy,
        attempts_done: 0,
        plan: None,
        known: known(),
    }
}

/// The plan `decide` stores for diagnosed jobs, with `k` as the known facts.
fn planned(jobs: &[JobDiagnosis], k: Known) -> (Next, StoredPlan) {
    let (p, ev) = (POLICY(), FailureEvent::default());
    let mut f = facts(S::Analyzing, Happened::Diagnosed(jobs), &p, &ev);
    f.known = k;
    let next = decide(&f).unwrap();
    let Step::Plan(stored) = next.step.clone() else {
        panic!("no plan: {next:?}")
    };
    (next, stored)
}

#[test]
fn a_mixed_run_re_runs_only_the_transient_jobs_and_names_the_others() {
    let jobs = [
        job("build", diag(Category::CompilationError, 0.9)),
        job("fetch", diag(Category::Network, 0.8)),
    ];
    let (next, s) = planned(&jobs, known());
    assert_eq!((next.event, next.status), (Event::Plan, S::Planned));
    assert_eq!(s.category, Category::Network);
    assert!(s.mixed && !s.all_failed);
    assert_eq!(s.jobs.len(), 1);
    assert_eq!(s.jobs[0].name, "fetch");
    assert!(
        s.plan.reason.contains("build (compilation_error)"),
        "{}",
        s.plan.reason
    );
    assert_eq!(
        choose(&jobs).unwrap().run.category,
        Category::CompilationError
    );
    assert_eq!(
        s.facts,
        Some(known()),
        "the facts are recorded with the plan"
    );
    // Replayed from what was recorded, the same plan comes out.
    let ev = FailureEvent::default();
    assert_eq!(replay(&jobs, &ev, &known(), &POLICY()), Some(s));
}

#[test]
fn no_diagnosed_job_escalates_and_a_cancelled_run_is_skipped() {
    let (p, ev) = (POLICY(), FailureEvent::default());
    let next = decide(&facts(S::Analyzing, Happened::Diagnosed(&[]), &p, &ev)).unwrap();
    assert_eq!(
        (next.status, &next.step),
        (S::Escalated, &Step::Close(None))
    );
    let (next, _) = planned(&[job("t", diag(Category::Cancelled, 0.9))], known());
    assert_eq!(next.status, S::Skipped);
    // A stale job for a session another worker moved on is refused by the state machine.
    let jobs = [job("t", diag(Category::Network, 0.9))];
    assert!(decide(&facts(S::Verifying, Happened::Diagnosed(&jobs), &p, &ev)).is_err());
}

#[test]
fn an_early_plan_retries_only_its_transient_job_and_never_the_whole_run() {
    let (p, ev) = (POLICY(), FailureEvent::default());
    let early = |j: JobDiagnosis, k: Known| {
        let mut f = facts(S::Analyzing, Happened::DiagnosedEarly(&j), &p, &ev);
        f.known = k;
        decide(&f).unwrap()
    };
    let next = early(job("fetch", diag(Category::Network, 0.9)), known());
    let Step::Plan(s) = &next.step else {
        panic!("{next:?}")
    };
    assert!(!s.all_failed, "the other jobs are not known yet");
    assert!(
        s.plan.reason.contains("job fetch retried while"),
        "{}",
        s.plan.reason
    );
    assert!(
        next.reason.contains("retrying it alone now"),
        "{}",
        next.reason
    );
    // A genuine failure, a deploy that needs approval and a remedy other than a retry wait
    // for the run, saying why.
    let waits = |n: Next| n.step == Step::WaitForRun && n.status == S::Analyzing;
    assert!(waits(early(
        job("unit", diag(Category::CompilationError, 0.9)),
        known()
    )));
    let deploy = early(job("deploy-prod", diag(Category::Network, 0.9)), known());
    assert!(
        deploy.reason.contains("deploys or publishes"),
        "{}",
        deploy.reason
    );
    assert!(waits(deploy));
    let mut scaled = known();
    scaled.capabilities.scale_resources = true;
    assert!(waits(early(
        job("t", diag(Category::OutOfMemory, 0.9)),
        scaled
    )));
    let mut fixed = known();
    fixed.fixes = vec![fix(Risk::Low, None)];
    assert!(waits(early(
        job("fetch", diag(Category::Network, 0.9)),
        fixed
    )));
}

#[test]
fn learning_for_the_chosen_strategy_can_escalate() {
    let mut k = known();
    k.learned = vec![(
        Strategy::Retry,
        Learned {
            fingerprint: ArmStats {
                healed: 0,
                failed: 4,
            },
            ..Default::default()
        },
    )];
    let (next, s) = planned(&[job("t", diag(Category::Network, 0.9))], k);
    assert_eq!(
        (s.plan.decision, next.status),
        (Decision::Escalate, S::Escalated)
    );
    assert!(s.plan.reason.starts_with("learning:"), "{}", s.plan.reason);
}

fn fix(risk: Risk, strategy: Option<Strategy>) -> Fix {
    Fix {
        name: "mirror".into(),
        risk,
        what: "ansible-playbook x".into(),
        strategy,
    }
}

#[test]
fn fixes_gate_the_plan_by_their_risk_and_strategy() {
    let with = |f: Fix| {
        let mut k = known();
        k.fixes = vec![f];
        planned(&[job("t", diag(Category::Network, 0.9))], k)
    };
    let (next, s) = with(fix(Risk::High, None));
    assert_eq!(next.status, S::AwaitingApproval);
    assert!(s
        .plan
        .steps
        .iter()
        .any(|st| st.kind == StepKind::Fix && st.risk == Risk::High));
    assert_eq!(
        with(fix(Risk::Refused, None)).1.plan.decision,
        Decision::Escalate
    );
    // A reset command belongs to the reset strategy: a plain retry does not run it.
    let (_, s) = with(fix(Risk::Refused, Some(Strategy::ResetEnvironment)));
    assert_eq!(s.plan.decision, Decision::Act);
}

#[test]
fn a_known_flaky_test_is_retried_at_once() {
    let mut d = diag(Category::FlakyTest, 0.9);
    d.summary = format!("{KNOWN_FLAKY}a (flaky in 2 of 4 failing runs)");
    let (_, s) = planned(&[job("t", d)], known());
    let retry = s
        .plan
        .steps
        .iter()
        .find(|s| s.kind == StepKind::Retry)
        .unwrap();
    assert_eq!(retry.delay_seconds, 0);
    assert!(
        s.plan.reason.ends_with("retry at once"),
        "{}",
        s.plan.reason
    );
}

#[test]
fn a_plan_on_the_models_reading_waits_for_people_when_it_proposes_a_risky_fix() {
    let verdict = |decided| ModelVerdict {
        decided,
        risky_fix: Some(("rm -rf node_modules".into(), Risk::Medium)),
    };
    let mut k = known();
    k.model = Some(verdict(true));
    let jobs = [job("t", diag(Category::Network, 0.9))];
    let (next, s) = planned(&jobs, k.clone());
    assert_eq!(next.status, S::AwaitingApproval);
    // The backtest replays the recorded verdict into the same gated plan.
    let replayed = replay(
        &jobs,
        &FailureEvent::default(),
        s.facts.as_ref().unwrap(),
        &POLICY(),
    );
    assert_eq!(replayed.as_ref(), Some(&s));
    assert!(
        s.plan
            .reason
            .contains("`rm -rf node_modules` (medium risk)"),
        "{}",
        s.plan.reason
    );
    // The model only explained a diagnosis the rules made: the plan is theirs.
    k.model = Some(verdict(false));
    assert_eq!(
        planned(&[job("t", diag(Category::Network, 0.9))], k)
            .0
            .status,
        S::Planned
    );
}

#[test]
fn one_job_per_attempt_queues_the_others_and_runs_them_in_turn_up_to_the_limit() {
    let mut k = known();
    k.platform.one_job_per_attempt = true;
    let jobs = [
        job("a", diag(Category::Network, 0.9)),
        job("b", diag(Category::Network, 0.9)),
        job("c", diag(Category::CompilationError, 0.9)),
    ];
    let (_, s) = planned(&jobs, k);
    assert_eq!(
        (s.jobs[0].name.as_str(), s.queued[0].name.as_str()),
        ("a", "b")
    );
    let (p, ev) = (POLICY(), FailureEvent::default());
    let done = Happened::Completed {
        attempt: 2,
        shown: 2,
        success: false,
    };
    let mut f = facts(S::Verifying, done, &p, &ev);
    f.plan = Some(&s);
    f.attempts_done = 1;
    let next = decide(&f).unwrap();
    let Step::Execute(Some(again)) = &next.step else {
        panic!("{next:?}")
    };
    assert_eq!((again.jobs[0].name.as_str(), again.queued.len()), ("b", 0));
    assert_eq!(next.status, S::Planned);
    f.attempts_done = 2;
    let next = decide(&f).unwrap();
    assert_eq!(next.status, S::Escalated);
    assert!(
        next.reason.contains("transient job(s) b not re-run"),
        "{}",
        next.reason
    );
}

#[test]
fn a_failed_attempt_is_diagnosed_again_until_no_attempt_is_left_then_escalated() {
    let (_, s) = planned(&[job("t", diag(Category::Network, 0.9))], known());
    let (p, ev) = (POLICY(), FailureEvent::default());
    let outcome = |success, attempts_done| {
        let done = Happened::Completed {
            attempt: 2,
            shown: 2,
            success,
        };
        let mut f = facts(S::Verifying, done, &p, &ev);
        f.plan = Some(&s);
        f.attempts_done = attempts_done;
        decide(&f).unwrap()
    };
    assert_eq!(outcome(true, 1).status, S::Healed);
    assert_eq!(outcome(false, 1).step, Step::Diagnose);
    // Out of attempts: escalated with the policy's reason, as a fresh plan would say.
    let last = outcome(false, 2);
    assert_eq!((last.event, last.status), (Event::GiveUp, S::Escalated));
    assert_eq!(
        last.reason,
        "network persisted after 2 heal attempt(s); the limit is 2"
    );
    // Another attempt than the heal's finishing first changes nothing.
    let mut ours = s.clone();
    ours.awaiting_attempt = Some(3);
    let mut f = facts(
        S::Verifying,
        Happened::Completed {
            attempt: 2,
            shown: 2,
            success: true,
        },
        &p,
        &ev,
    );
    f.plan = Some(&ours);
    assert_eq!(decide(&f).unwrap().step, Step::Wait);
}

#[test]
fn the_budget_stops_a_call_that_was_not_made_yet() {
    let (_, s) = planned(&[job("t", diag(Category::Network, 0.9))], known());
    let (p, mut ev) = (POLICY(), FailureEvent::default());
    ev.repository = "acme/api".into();
    let full = Budget {
        repository: Some(Count { used: 3, limit: 3 }),
        ..Default::default()
    };
    let due = |status, budget: Budget| {
        let mut f = facts(status, Happened::Due(budget), &p, &ev);
        f.plan = Some(&s);
        decide(&f).unwrap()
    };
    let stopped = due(S::Planned, full.clone());
    assert_eq!(stopped.status, S::Escalated);
    assert!(
        stopped.reason.contains("3 re-runs of acme/api"),
        "{}",
        stopped.reason
    );
    assert!(matches!(
        due(S::Planned, Budget::default()).step,
        Step::Call(_, Call::Retry)
    ));
    // A job taken again after its call was counted already.
    assert!(matches!(due(S::Executing, full).step, Step::Call(..)));
}

#[test]
fn each_strategy_becomes_one_platform_call_and_a_new_run_must_be_followed() {
    let t = Traits {
        rerun_starts_new_run: true,
        ..Default::default()
    };
    let scale = Call::for_strategy(Strategy::ScaleResources, &t);
    assert_eq!(scale, Call::RerunWith(Inputs::Scale));
    assert!(scale.starts_new_run(&t));
    let api = Traits {
        can_clear_caches: true,
        ..t
    };
    assert_eq!(
        Call::for_strategy(Strategy::ClearCache, &api),
        Call::ClearCachesThenRetry
    );
    let cmd = Traits {
        reset_command: true,
        ..t
    };
    assert!(!Call::for_strategy(Strategy::ResetEnvironment, &cmd).starts_new_run(&cmd));
    // The platform's answers.
    let mut k = known();
    k.platform = t;
    let (_, mut s) = planned(&[job("t", diag(Category::OutOfMemory, 0.9))], known());
    s.plan.strategy = Strategy::ScaleResources;
    let (p, ev) = (POLICY(), FailureEvent::default());
    let answer = |a: Result<Answer, CallError>| {
        let mut f = facts(S::Executing, Happened::Called(a), &p, &ev);
        f.plan = Some(&s);
        f.known = k.clone();
        decide(&f).unwrap()
    };
    assert_eq!(
        answer(Ok(Answer::default())).status,
        S::Escalated,
        "no run to follow"
    );
    let followed = answer(Ok(Answer {
        new_run: true,
        attempt: None,
    }));
    assert!(matches!(followed.step, Step::Called { soon: true, .. }));
    let busy = CallError {
        transient: true,
        unconfirmed: true,
        message: "502".into(),
    };
    assert_eq!(
        answer(Err(busy)).status,
        S::Escalated,
        "it may have started a run"
    );
    // A plain re-run: asked to wait, it is called again; of unknown outcome, it is not.
    s.plan.strategy = Strategy::Retry;
    let answer = |a: Result<Answer, CallError>| {
        let mut f = facts(S::Executing, Happened::Called(a), &p, &ev);
        f.plan = Some(&s);
        f.known = k.clone();
        decide(&f).unwrap()
    };
    let wait = CallError {
        transient: true,
        unconfirmed: false,
        message: "429".into(),
    };
    assert_eq!(answer(Err(wait.clone())).step, Step::Postpone);
    let lost = CallError {
        unconfirmed: true,
        ..wait
    };
    let escalated = answer(Err(lost));
    assert_eq!(escalated.status, S::Escalated);
    assert!(escalated.reason.contains("did not confirm the re-run"));
}

#[test]
fn a_plan_runs_once_enough_people_approved() {
    let (p, ev) = (POLICY(), FailureEvent::default());
    let approve = |approvals| {
        let a = Happened::Approved {
            approvals,
            required: 2,
        };
        decide(&facts(S::AwaitingApproval, a, &p, &ev)).unwrap()
    };
    assert_eq!(
        (approve(1).status, approve(1).step),
        (S::AwaitingApproval, Step::Wait)
    );
    assert_eq!(
        (approve(2).status, approve(2).step),
        (S::Planned, Step::Execute(None))
    );
}

fn observing() -> Known {
    Known {
        mode: Mode::Observe,
        ..known()
    }
}

#[test]
fn observe_mode_closes_with_what_act_mode_would_have_done() {
    let (p, ev) = (POLICY(), FailureEvent::default());
    let transient = [
        job("test-a", diag(Category::Network, 0.9)),
        job("test-b", diag(Category::Network, 0.8)),
    ];
    let mut f = facts(S::Analyzing, Happened::Diagnosed(&transient), &p, &ev);
    let acting = decide(&f).unwrap();
    assert_eq!(acting.status, S::Planned);
    f.known = observing();
    let next = decide(&f).unwrap();
    assert_eq!((next.event, next.status), (Event::Observe, S::Observed));
    assert_eq!(next.reason, "would re-run jobs test-a, test-b after 30 s");
    // The plan is stored as act mode made it: the backtest and the readiness read it.
    let (Step::Close(Some(stored)), Step::Plan(act)) = (&next.step, &acting.step) else {
        panic!("{next:?}")
    };
    assert_eq!(stored.plan, act.plan);
    assert_eq!(stored.facts.as_ref().unwrap().mode, Mode::Observe);

    let genuine = [job("build", diag(Category::CompilationError, 0.9))];
    f.happened = Happened::Diagnosed(&genuine);
    let next = decide(&f).unwrap();
    assert_eq!(next.status, S::Observed);
    assert!(
        next.reason.starts_with("would escalate: "),
        "{}",
        next.reason
    );

    f.happened = Happened::Diagnosed(&[]);
    let next = decide(&f).unwrap();
    assert_eq!(
        (next.status, next.step.clone()),
        (S::Observed, Step::Close(None))
    );
    assert_eq!(
        next.reason,
        "would escalate: no failed job or log found for this run attempt"
    );

    let cancelled = [job("build", diag(Category::Cancelled, 1.0))];
    f.happened = Happened::Diagnosed(&cancelled);
    assert_eq!(decide(&f).unwrap().status, S::Skipped);
}

#[test]
fn observe_mode_records_an_approval_and_never_retries_a_job_early() {
    let (p, ev) = (POLICY(), FailureEvent::default());
    let jobs = [job("fetch", diag(Category::Network, 0.9))];
    let mut f = facts(S::Analyzing, Happened::Diagnosed(&jobs), &p, &ev);
    f.known = Known {
        fixes: vec![fix(Risk::High, None)],
        ..observing()
    };
    let next = decide(&f).unwrap();
    assert_eq!(next.status, S::Observed);
    assert!(
        next.reason.starts_with("would ask for approval: "),
        "{}",
        next.reason
    );
    f.known = observing();
    f.happened = Happened::DiagnosedEarly(&jobs[0]);
    let next = decide(&f).unwrap();
    assert_eq!((next.status, next.step), (S::Analyzing, Step::WaitForRun));
}

#[test]
fn a_failure_on_a_suspect_runner_is_not_re_run_onto_it() {
    let jobs = [job("it", diag(Category::Network, 0.9))];
    let runner = |suspect, quarantined, can_take_out| RunnerState {
        name: "gl-runner-7".into(),
        suspect,
        quarantined,
        can_take_out,
    };
    let with = |r: RunnerState| Known {
        runners: vec![r],
        ..known()
    };
    // Healthy: the plain re-run.
    let (next, p) = planned(&jobs, with(runner(false, false, true)));
    assert_eq!((next.status, p.plan.decision), (S::Planned, Decision::Act));
    // Taken out: the re-run goes ahead, elsewhere.
    let (next, p) = planned(&jobs, with(runner(true, true, true)));
    assert_eq!((next.status, p.plan.decision), (S::Planned, Decision::Act));
    assert!(
        p.plan.reason.contains("runner gl-runner-7 was taken out"),
        "{}",
        p.plan.reason
    );
    // Suspect, not yet taken out: a person approves first.
    let (next, p) = planned(&jobs, with(runner(true, false, true)));
    assert_eq!(next.status, S::AwaitingApproval);
    assert!(p.plan.reason.contains("/quarantine"), "{}", p.plan.reason);
    // A platform that cannot take a runner out (GitHub): escalated, naming the runner.
    let (next, p) = planned(&jobs, with(runner(true, false, false)));
    assert_eq!(
        (next.status, p.plan.decision),
        (S::Escalated, Decision::Escalate)
    );
    assert!(
        p.plan.reason.contains("take gl-runner-7 out"),
        "{}",
        p.plan.reason
    );
    // A genuine failure stays escalated as it was.
    let genuine = [job("unit", diag(Category::CompilationError, 0.9))];
    let (_, p) = planned(&genuine, with(runner(true, false, true)));
    assert_eq!(p.plan.decision, Decision::Escalate);
}

#[test]
fn with_steering_a_suspect_runner_not_taken_out_is_avoided_instead_of_awaited() {
    let jobs = [job("it", diag(Category::Network, 0.9))];
    let runner = |name: &str, quarantined| RunnerState {
        name: name.into(),
        suspect: true,
        quarantined,
        can_take_out: true,
    };
    let known_with = |runners: Vec<RunnerState>, steer_runners| Known {
        runners,
        platform: Traits {
            steer_runners,
            ..Default::default()
        },
        ..known()
    };
    let call_of = |s: &StoredPlan| {
        let (p, ev) = (POLICY(), FailureEvent::default());
        let mut f = facts(S::Planned, Happened::Due(Budget::default()), &p, &ev);
        f.plan = Some(s);
        match decide(&f).unwrap().step {
            Step::Call(_, call) => call,
            other => panic!("no call: {other:?}"),
        }
    };
    // Steering: acts at once, names the runner avoided, and the call carries the steering.
    let (next, s) = planned(&jobs, known_with(vec![runner("agent-3", false)], true));
    assert_eq!((next.status, s.plan.decision), (S::Planned, Decision::Act));
    assert_eq!(s.avoid_runners, ["agent-3"]);
    assert!(
        s.plan
            .reason
            .contains("runner agent-3 fails unrelated jobs")
            && s.plan.reason.contains("steered away from it"),
        "{}",
        s.plan.reason
    );
    assert_eq!(call_of(&s), Call::RerunWith(Inputs::AvoidRunners));
    // Two suspect runners: both avoided.
    let two = vec![runner("agent-3", false), runner("agent-9", false)];
    let (_, s) = planned(&jobs, known_with(two, true));
    assert_eq!(s.avoid_runners, ["agent-3", "agent-9"]);
    // Without steering: today's behaviour, a person approves and the re-run is plain.
    let (next, s) = planned(&jobs, known_with(vec![runner("agent-3", false)], false));
    assert_eq!(next.status, S::AwaitingApproval);
    assert!(s.avoid_runners.is_empty());
    assert!(s.plan.reason.contains("/quarantine"), "{}", s.plan.reason);
    assert_eq!(call_of(&s), Call::Retry);
    // Taken out already: the platform sends the re-run elsewhere, nothing to steer.
    let (next, s) = planned(&jobs, known_with(vec![runner("agent-3", true)], true));
    assert_eq!(next.status, S::Planned);
    assert!(s.avoid_runners.is_empty());
    assert_eq!(call_of(&s), Call::Retry);
    // A re-run that already carries other inputs (a bigger runner) is not steered: approval.
    let mut scaled = known_with(vec![runner("agent-3", false)], true);
    scaled.capabilities.scale_resources = true;
    let (next, s) = planned(&[job("t", diag(Category::OutOfMemory, 0.9))], scaled);
    assert_eq!(s.plan.strategy, Strategy::ScaleResources);
    assert_eq!(next.status, S::AwaitingApproval);
    assert!(s.avoid_runners.is_empty());
    // A genuine failure is escalated as before, with nothing to steer.
    let genuine = [job("unit", diag(Category::CompilationError, 0.9))];
    let (_, s) = planned(&genuine, known_with(vec![runner("agent-3", false)], true));
    assert_eq!(s.plan.decision, Decision::Escalate);
    assert!(s.avoid_runners.is_empty());
}

fn incident(canary: bool) -> Option<crate::incident::Open> {
    Some(crate::incident::Open {
        id: 7,
        target: "registry.npmjs.org".into(),
        canary,
    })
}

#[test]
fn an_open_incident_holds_its_failures_and_lets_only_the_canary_call() {
    let jobs = [job("t", diag(Category::DependencyDownload, 0.9))];
    let (next, s) = planned(
        &jobs,
        Known {
            incident: incident(false),
            ..known()
        },
    );
    assert_eq!((next.event, next.status), (Event::Hold, S::Held));
    assert!(
        next.reason.contains("held by incident 7"),
        "{}",
        next.reason
    );
    // A genuine failure in the same minute is escalated as usual.
    let genuine = [job("u", diag(Category::CompilationError, 0.9))];
    let (esc, _) = planned(
        &genuine,
        Known {
            incident: incident(false),
            ..known()
        },
    );
    assert_eq!(esc.status, S::Escalated);
    // A pending plan whose call comes due while the incident is open is held, not called;
    // the canary calls.
    let (p, ev) = (POLICY(), FailureEvent::default());
    let due = |open| {
        let mut f = facts(S::Planned, Happened::Due(Budget::default()), &p, &ev);
        f.plan = Some(&s);
        f.known.incident = open;
        decide(&f).unwrap()
    };
    assert_eq!(due(incident(false)).step, Step::Hold(7));
    assert_eq!(due(incident(false)).status, S::Held);
    assert!(matches!(
        due(incident(true)).step,
        Step::Call(_, Call::Retry)
    ));
    assert!(matches!(due(None).step, Step::Call(..)));
    // Held sessions leave only by the incident: released (canary or wave) or abandoned.
    let mut f = facts(
        S::Held,
        Happened::Released {
            incident: 7,
            canary: false,
        },
        &p,
        &ev,
    );
    f.plan = Some(&s);
    let released = decide(&f).unwrap();
    assert_eq!(released.status, S::Planned);
    assert!(matches!(released.step, Step::Execute(Some(_))));
    f.happened = Happened::Abandoned {
        incident: 7,
        hours: 6,
    };
    assert_eq!(decide(&f).unwrap().status, S::Escalated);
    f.status = S::Planned;
    assert!(decide(&f).is_err(), "only a held session is abandoned");
}

/// The plan a held session leaves with: released in incident 7's wave or as its canary.
fn released(s: &StoredPlan, canary: bool) -> (Next, StoredPlan) {
    let (p, ev) = (POLICY(), FailureEvent::default());
    let happened = Happened::Released {
        incident: 7,
        canary,
    };
    let mut f = facts(S::Held, happened, &p, &ev);
    f.plan = Some(s);
    let next = decide(&f).unwrap();
    let plan = match &next.step {
        Step::Execute(Some(p)) => p.clone(),
        _ => s.clone(),
    };
    (next, plan)
}

#[test]
fn a_wave_re_runs_each_held_failure_past_the_repository_budget_and_never_escalates_for_budget() {
    let jobs = [job("t", diag(Category::DependencyDownload, 0.9))];
    let (_, held) = planned(
        &jobs,
        Known {
            incident: incident(false),
            ..known()
        },
    );
    let (p, mut ev) = (POLICY(), FailureEvent::default());
    ev.repository = "acme/api".into();
    let repo_spent = |wave_used| Budget {
        repository: Some(Count { used: 5, limit: 5 }),
        global: Some(Count {
            used: wave_used,
            limit: 100,
        }),
        wave: Some(Count {
            used: wave_used,
            limit: 75,
        }),
    };
    let due = |plan: &StoredPlan, budget| {
        let mut f = facts(S::Planned, Happened::Due(budget), &p, &ev);
        f.plan = Some(plan);
        decide(&f).unwrap()
    };
    // Released by the wave: the repository's spent budget does not stop its one re-run.
    let (next, wave) = released(&held, false);
    assert_eq!(next.status, S::Planned);
    assert_eq!(wave.facts.as_ref().unwrap().wave, Some(7));
    assert!(matches!(due(&wave, repo_spent(10)).step, Step::Call(..)));
    // The wave's share of the global budget used (a race with unrelated failures): held
    // again for the wave's next release, never handed to people.
    let waits = due(&wave, repo_spent(75));
    assert_eq!((waits.event, waits.status), (Event::Hold, S::Held));
    assert_eq!(waits.step, Step::Hold(7));
    assert!(waits.reason.contains("wave's share"), "{}", waits.reason);
    // The per-failure path is as it was: a plan no wave released is stopped by its
    // repository's budget, and so is the canary.
    let (_, plain) = planned(&jobs, known());
    assert_eq!(due(&plain, repo_spent(10)).status, S::Escalated);
    let (next, canary) = released(&held, true);
    assert_eq!(next.step, Step::Execute(None));
    assert_eq!(due(&canary, repo_spent(10)).status, S::Escalated);
    // Exactly once: the wave's re-run failed, and the plan made afresh is weighed against
    // the repository's budget again.
    let mut f = facts(S::Analyzing, Happened::Diagnosed(&jobs), &p, &ev);
    f.plan = Some(&wave);
    let Step::Plan(again) = decide(&f).unwrap().step else {
        panic!("no plan")
    };
    assert_eq!(again.facts.as_ref().unwrap().wave, None);
    let stopped = due(&again, repo_spent(10));
    assert_eq!(stopped.status, S::Escalated);
    assert!(
        stopped.reason.contains("re-runs of acme/api"),
        "{}",
        stopped.reason
    );
}

#[test]
fn a_requested_re_run_reopens_only_what_the_policy_would_heal() {
    let p = POLICY();
    let ev = FailureEvent::default();
    let ask = |status, jobs: &[JobDiagnosis], attempts| {
        let mut f = facts(status, Happened::Requested(jobs), &p, &ev);
        f.attempts_done = attempts;
        decide(&f).unwrap()
    };
    let compile = [job("build", diag(Category::CompilationError, 0.9))];
    let refused = ask(S::Escalated, &compile, 0);
    assert_eq!((refused.status, &refused.step), (S::Escalated, &Step::Wait));
    assert!(
        refused
            .reason
            .starts_with("re-run refused: compilation_error needs"),
        "{}",
        refused.reason
    );

    let network = [job("fetch", diag(Category::Network, 0.9))];
    let reopened = ask(S::Escalated, &network, 0);
    assert_eq!(
        (reopened.event, reopened.status),
        (Event::Reopen, S::Planned)
    );
    assert!(matches!(reopened.step, Step::Plan(_)));
    // The attempts already made count: past the limit it is refused.
    let spent = ask(S::Failed, &network, p.max_attempts);
    assert_eq!(spent.status, S::Failed);
    assert!(
        spent.reason.starts_with("re-run refused"),
        "{}",
        spent.reason
    );

    let deploy_ev = FailureEvent {
        workflow: "deploy production".into(),
        ..Default::default()
    };
    let mut f = facts(S::Escalated, Happened::Requested(&network), &p, &deploy_ev);
    f.attempts_done = 0;
    let held = decide(&f).unwrap();
    assert_eq!(
        (held.event, held.status),
        (Event::ReopenForApproval, S::AwaitingApproval)
    );

    // Open, healed or observed sessions are not re-run: observe mode never acts.
    for s in [S::Verifying, S::Planned, S::Healed, S::Observed] {
        let n = ask(s, &network, 0);
        assert_eq!((n.status, &n.step), (s, &Step::Wait), "{s}");
        assert!(n.reason.starts_with("re-run refused"), "{}", n.reason);
    }
    let waiting = ask(S::AwaitingApproval, &network, 0);
    assert_eq!(
        (waiting.status, &waiting.step),
        (S::AwaitingApproval, &Step::Wait)
    );
    assert!(waiting.reason.starts_with("held"), "{}", waiting.reason);
}
