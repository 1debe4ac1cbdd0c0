//! Flaky-test statistics, quarantine and verdicts on SQLite and PostgreSQL (fresh database).

mod common;

use pipeguard_store::{quarantine_key, Observation, Store, Task, VerdictRecord};

fn tests(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn exercise(store: &Store) {
    let t = tests(&["tests::a", "tests::b"]);
    let obs = |id: &'static str, repo: &'static str, flaky: bool, lost: i64| Observation {
        session_id: id,
        repository: repo,
        tests: &t,
        flaky,
        time_lost_ms: lost,
    };
    assert_eq!(
        store
            .record_test_outcomes(&obs("s1", "o/r", true, 60_000))
            .await
            .unwrap(),
        2
    );
    // The same session again (a job taken twice) counts nothing.
    assert_eq!(
        store
            .record_test_outcomes(&obs("s1", "o/r", true, 60_000))
            .await
            .unwrap(),
        0
    );
    store
        .record_test_outcomes(&obs("s2", "o/r", false, 30_000))
        .await
        .unwrap();
    store
        .record_test_outcomes(&obs("s3", "other/repo", true, 1_000))
        .await
        .unwrap();
    let only_b = tests(&["tests::b"]);
    store
        .record_test_outcomes(&Observation {
            session_id: "s4",
            repository: "o/r",
            tests: &only_b,
            flaky: true,
            time_lost_ms: 120_000,
        })
        .await
        .unwrap();

    // A human says s2's failure was flaky too: its failures become flaky ones, once.
    assert_eq!(store.mark_flaky("s2").await.unwrap(), 2);
    assert_eq!(store.mark_flaky("s2").await.unwrap(), 0);
    store
        .record_test_outcomes(&obs("s5", "o/r", false, 0))
        .await
        .unwrap();
    let all = store.flaky_tests("o/r", 10).await.unwrap();
    assert_eq!(all.len(), 2);
    // Ranked by time lost: b lost 60+30+120 s, a 60+30 s.
    assert_eq!(all[0].test, "tests::b");
    assert_eq!(
        (all[0].runs, all[0].failures, all[0].flaky_failures),
        (4, 1, 3)
    );
    assert_eq!(all[0].time_lost_ms, 210_000);
    assert!((all[0].flakiness_rate - 3.0 / 4.0).abs() < 1e-9);
    assert!(all[0].first_seen_at <= all[0].last_seen_at);
    assert!(!all[0].quarantined);
    assert_eq!(store.flaky_tests("", 10).await.unwrap().len(), 4);
    assert_eq!(store.flaky_tests("", 1).await.unwrap().len(), 1);
    assert_eq!(store.flaky_test_count().await.unwrap(), 4);
    let some = store
        .tests_stats("o/r", &tests(&["tests::a", "never::seen"]))
        .await
        .unwrap();
    assert_eq!(some.len(), 1);
    assert_eq!((some[0].runs, some[0].failures), (3, 1));

    // Quarantine: add, update the reason, list, show in the stats, remove.
    store
        .quarantine_add("o/r", "tests::a", "times out on arm")
        .await
        .unwrap();
    let q = store
        .quarantine_add("o/r", "tests::a", "times out on arm runners")
        .await
        .unwrap();
    assert_eq!(q.reason, "times out on arm runners");
    assert_eq!(store.quarantine_list("").await.unwrap().len(), 1);
    assert!(store.quarantine_list("x/y").await.unwrap().is_empty());
    let a = store
        .tests_stats("o/r", &tests(&["tests::a"]))
        .await
        .unwrap();
    assert!(a[0].quarantined);
    assert!(store.quarantine_remove("o/r", "tests::a").await.unwrap());
    assert!(!store.quarantine_remove("o/r", "tests::a").await.unwrap());
    ticket_and_release(store).await;

    // Verdicts: the latest per session wins; the confusion counts compare with the diagnosis.
    let v = |id: &str, human: &str, diagnosed: &str| VerdictRecord {
        session_id: id.into(),
        category: human.into(),
        diagnosed_category: Some(diagnosed.into()),
        diagnosed_by: Some("rules".into()),
        note: "checked the runner".into(),
        evidence: "upstream went away".into(),
        created_at: 0,
    };
    store
        .put_verdict(&v("s1", "timeout", "unknown"))
        .await
        .unwrap();
    let stored = store
        .put_verdict(&v("s1", "network", "unknown"))
        .await
        .unwrap();
    assert_eq!(stored.category, "network");
    assert!(stored.created_at > 0);
    store
        .put_verdict(&v("s2", "network", "network"))
        .await
        .unwrap();
    assert_eq!(store.verdicts(10).await.unwrap().len(), 2);
    assert_eq!(
        store.verdict("s1").await.unwrap().unwrap().note,
        "checked the runner"
    );
    assert!(store.verdict("nope").await.unwrap().is_none());
    let confusion = store.verdict_confusion().await.unwrap();
    assert_eq!(confusion.len(), 2);
    assert!(confusion
        .iter()
        .any(|c| c.diagnosed == "unknown" && c.human == "network" && c.count == 1));
}

/// A ticket's failure is kept until it is filed; a release queues what follows it (sessionless
/// jobs the worker can claim) in its transaction, once.
async fn ticket_and_release(store: &Store) {
    store
        .quarantine_add("o/r", "tests::b", "slow")
        .await
        .unwrap();
    store
        .quarantine_ticket_failed("o/r", "tests::b", "503 from the platform")
        .await
        .unwrap();
    let q = store.quarantined("o/r", "tests::b").await.unwrap().unwrap();
    assert_eq!(q.ticket_error.as_deref(), Some("503 from the platform"));
    store
        .quarantine_ticket("o/r", "tests::b", "7", "https://example.test/issues/7")
        .await
        .unwrap();
    let q = store.quarantined("o/r", "tests::b").await.unwrap().unwrap();
    assert_eq!((q.ticket_id.as_deref(), q.ticket_error), (Some("7"), None));
    let close = Task::CloseTicket {
        repository: "o/r".into(),
        test: "tests::b".into(),
        ticket_id: "7".into(),
        ticket_url: "https://example.test/issues/7".into(),
        comment: "released".into(),
    };
    assert!(close.sessionless());
    let then = [close.clone()];
    assert!(store
        .quarantine_release("o/r", "tests::b", &then)
        .await
        .unwrap());
    assert!(!store
        .quarantine_release("o/r", "tests::b", &then)
        .await
        .unwrap());
    assert!(store
        .quarantined("o/r", "tests::b")
        .await
        .unwrap()
        .is_none());
    // Claimed although no session has that id; the second release queued nothing.
    let job = store
        .claim(60_000, &[])
        .await
        .unwrap()
        .expect("a queued job");
    assert_eq!(
        (job.session_id, job.task),
        (quarantine_key("o/r", "tests::b"), close)
    );
    store.finish_job(job.id).await.unwrap();
    assert!(store.claim(60_000, &[]).await.unwrap().is_none());
}

#[tokio::test]
async fn sqlite_flaky_and_verdicts() {
    let (store, _dir) = common::sqlite().await;
    exercise(&store).await;
}

#[tokio::test]
async fn postgres_flaky_and_verdicts() {
    let Some(pg) = common::FreshPostgres::create().await else {
        return;
    };
    exercise(&pg.store).await;
    pg.drop_database().await;
}

/// A green run of a repository with no quarantined test writes nothing; a quarantine added in
/// this process is seen at once, so its passes are counted from the next green run.
#[tokio::test]
async fn green_runs_count_passes_only_where_tests_are_quarantined() {
    let (store, _dir) = common::sqlite().await;
    assert!(!store.surely_unquarantined("o/r"), "nothing read yet");
    assert!(store
        .quarantine_passed("o/none", Some("CI"))
        .await
        .unwrap()
        .is_empty());
    assert!(store.surely_unquarantined("o/none"));
    assert!(store.surely_unquarantined("o/r"));
    store
        .quarantine_add("o/r", "tests::a", "times out")
        .await
        .unwrap();
    assert!(!store.surely_unquarantined("o/r"));
    let e = store.quarantine_passed("o/r", Some("CI")).await.unwrap();
    assert_eq!((e.len(), e[0].passes_since), (1, 1));
    assert!(!store.surely_unquarantined("o/r"));
    assert!(store.surely_unquarantined("o/none"));
    assert!(store.quarantine_remove("o/r", "tests::a").await.unwrap());
    assert!(store
        .quarantine_passed("o/r", Some("CI"))
        .await
        .unwrap()
        .is_empty());
    assert!(store.surely_unquarantined("o/r"));
}

/// A session of `repository` in `workflow`, as a failure's intake stores it.
async fn session_in(store: &Store, id: &str, repository: &str, workflow: &str) {
    common::exec(
        store,
        &format!(
            "INSERT INTO sessions (id, platform, repository, run_id, first_attempt, \
             current_attempt, status, event, workflow, failed_at, created_at, updated_at) \
             VALUES ('{id}', 'github', '{repository}', '{id}', 1, 1, 'failed', '{{}}', \
             '{workflow}', 1, 1, 1)"
        ),
    )
    .await;
}

/// A quarantined test's passes are green runs of the workflow it was seen failing in: taken
/// from its last failure when quarantined, or learnt from its next failure. Without one (older
/// rows) every green run of the repository is a pass, as before.
async fn passes_count_only_the_workflow_the_test_failed_in(store: &Store) {
    let failed = tests(&["ui::login"]);
    for (id, workflow) in [("s1", "Nightly"), ("s2", "E2E")] {
        session_in(store, id, "o/w", workflow).await;
        store
            .record_test_outcomes(&Observation {
                session_id: id,
                repository: "o/w",
                tests: &failed,
                flaky: true,
                time_lost_ms: 0,
            })
            .await
            .unwrap();
    }
    // s2 is the later observation only when the clock moved: make it so.
    common::exec(
        store,
        "UPDATE test_observations SET observed_at = 1 WHERE session_id = 's1'",
    )
    .await;
    let q = store.quarantine_add("o/w", "ui::login", "r").await.unwrap();
    assert_eq!(
        q.workflow.as_deref(),
        Some("E2E"),
        "its last failure's workflow"
    );
    store
        .quarantine_add("o/w", "never::failed", "r")
        .await
        .unwrap();

    let passes = |e: &[pipeguard_store::QuarantineEntry]| {
        e.iter()
            .map(|q| (q.test.clone(), q.passes_since))
            .collect::<Vec<_>>()
    };
    let e = store.quarantine_passed("o/w", Some("CI")).await.unwrap();
    assert_eq!(
        passes(&e),
        [("never::failed".into(), 1), ("ui::login".into(), 0)],
        "another workflow's green run is no pass of ui::login"
    );
    let e = store.quarantine_passed("o/w", None).await.unwrap();
    assert_eq!(
        passes(&e),
        [("never::failed".into(), 2), ("ui::login".into(), 0)]
    );
    let e = store.quarantine_passed("o/w", Some("E2E")).await.unwrap();
    assert_eq!(
        passes(&e),
        [("never::failed".into(), 3), ("ui::login".into(), 1)]
    );

    // The unknown one fails in CI: its count starts over and from then on only CI counts.
    store
        .quarantine_failed("o/w", &tests(&["never::failed"]), "CI")
        .await
        .unwrap();
    let e = store.quarantine_passed("o/w", Some("E2E")).await.unwrap();
    assert_eq!(
        passes(&e),
        [("never::failed".into(), 0), ("ui::login".into(), 2)]
    );
    assert_eq!(e[0].workflow.as_deref(), Some("CI"));
    // A failure elsewhere still starts the count over, and does not move the workflow.
    store
        .quarantine_failed("o/w", &tests(&["ui::login"]), "CI")
        .await
        .unwrap();
    let q = store
        .quarantined("o/w", "ui::login")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((q.passes_since, q.workflow.as_deref()), (0, Some("E2E")));
    // Renewing a quarantine keeps the workflow it knows.
    let q = store
        .quarantine_add("o/w", "never::failed", "again")
        .await
        .unwrap();
    assert_eq!(q.workflow.as_deref(), Some("CI"));
}

#[tokio::test]
async fn sqlite_passes_count_only_the_workflow_the_test_failed_in() {
    let (store, _dir) = common::sqlite().await;
    passes_count_only_the_workflow_the_test_failed_in(&store).await;
}

#[tokio::test]
async fn postgres_passes_count_only_the_workflow_the_test_failed_in() {
    let Some(pg) = common::FreshPostgres::create().await else {
        return;
    };
    passes_count_only_the_workflow_the_test_failed_in(&pg.store).await;
    pg.drop_database().await;
}
