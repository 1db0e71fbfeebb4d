//! Stories of launching an attempt: Jobs the API server or the worker policy refuses, a Job name an earlier execution holds.

use crate::lifecycle::decide::tests::prelude::*;

stories!(
    worker_policy_refusals_are_invalid_specs,
    a_service_account_name_that_cannot_be_read_is_an_invalid_spec,
    volumes_workers_may_not_mount_are_invalid_specs,
    a_service_account_is_read_once_before_the_launch,
    invalid_job_fails_the_run_at_once,
    refused_job_is_retried_under_the_policy,
    refused_jobs_without_backoff_take_one_attempt_per_reconcile,
    job_name_taken_by_earlier_execution,
    a_job_name_held_by_an_unowned_job_does_not_wait_forever,
    the_wait_for_an_earlier_executions_job_is_bounded,
);

mod story {
    use super::*;
    use Phase::*;

    /// An injector annotation is refused before anything runs; a ServiceAccount or Secret the namespace's owner
    /// did not open to workers fails the run at its launch, with reason `InvalidSpec` either way.
    pub fn worker_policy_refusals_are_invalid_specs() -> Vec<World> {
        let mut annotated = World::new(CrewExecutionSpec {
            pod_annotations: Some(
                [(
                    "vault.hashicorp.com/agent-inject".to_string(),
                    "true".to_string(),
                )]
                .into(),
            ),
            ..spec(&[])
        });
        let plan = annotated.step(0);
        assert!(plan.launch.is_none());
        assert_eq!(
            (annotated.phase(), annotated.reason()),
            (Failed, "InvalidSpec")
        );
        assert!(
            annotated
                .message()
                .contains("vault.hashicorp.com/agent-inject"),
            "{}",
            annotated.message()
        );
        let mut powerful = World::new(CrewExecutionSpec {
            service_account_name: Some("powerful".into()),
            retry: retry(3, 0),
            ..spec(&[])
        });
        // It exists, but its owner did not open it to workers.
        powerful
            .service_accounts
            .insert("powerful".into(), Default::default());
        powerful.step(0);
        assert_eq!(
            (powerful.phase(), powerful.reason()),
            (Failed, "InvalidSpec")
        );
        assert_eq!(powerful.job_creates, 0, "no retry: no attempt can cure it");
        assert!(
            powerful.message().contains("powerful"),
            "{}",
            powerful.message()
        );
        vec![annotated, powerful]
    }

    /// Review finding 2: a ServiceAccount name no read can even ask for (`""`, a trailing space) got past the
    /// schema and made every launch fail before its status write. A run that bypassed the schema now fails with
    /// `InvalidSpec` before any read or Job.
    pub fn a_service_account_name_that_cannot_be_read_is_an_invalid_spec() -> Vec<World> {
        ["", "runner ", "Runner"]
            .into_iter()
            .map(|name| {
                let mut w = World::new(CrewExecutionSpec {
                    service_account_name: Some(name.into()),
                    retry: retry(3, 0),
                    ..spec(&[])
                });
                let first = w.decide_at(0);
                assert_eq!(first.read, None, "{name:?}: nothing to read");
                w.step(0);
                assert_eq!((w.phase(), w.reason()), (Failed, "InvalidSpec"), "{name:?}");
                assert!(
                    w.message().contains("serviceAccountName"),
                    "{}",
                    w.message()
                );
                assert_eq!(w.job_creates, 0, "{name:?}");
                w
            })
            .collect()
    }

    /// Review finding 4: the worker policy ignored volume types. A volume no ServiceAccount can open (a token without
    /// a named ServiceAccount, a hostPath) fails the run before anything runs; a claim or CSI driver the
    /// ServiceAccount the pod runs as does not list fails it at its launch, after the read; listed, it runs.
    pub fn volumes_workers_may_not_mount_are_invalid_specs() -> Vec<World> {
        let volumes = |volumes: serde_json::Value| -> Option<crew_api::PodTemplate> {
            Some(serde_json::from_value(serde_json::json!({"volumes": volumes})).unwrap())
        };
        let mut token = World::new(CrewExecutionSpec {
            pod_template: volumes(serde_json::json!([{"name": "t", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token", "audience": "vault"}}]}}])),
            ..spec(&[])
        });
        assert_eq!(token.decide_at(0).read, None, "refused before any read");
        token.step(0);
        assert_eq!((token.phase(), token.reason()), (Failed, "InvalidSpec"));
        assert!(
            token.message().contains("ServiceAccount token"),
            "{}",
            token.message()
        );
        assert_eq!(token.job_creates, 0);

        let mut host = World::new(CrewExecutionSpec {
            steps: vec![StepSpec {
                pod_template: volumes(
                    serde_json::json!([{"name": "docker", "hostPath": {"path": "/var/run"}}]),
                ),
                ..step_spec("b")
            }],
            ..spec(&[])
        });
        host.step(0);
        assert_eq!((host.phase(), host.reason()), (Failed, "InvalidSpec"));
        assert!(
            host.message().contains("of type hostPath"),
            "{}",
            host.message()
        );

        let claim = || CrewExecutionSpec {
            pod_template: volumes(serde_json::json!([
                {"name": "data", "persistentVolumeClaim": {"claimName": "team-data"}},
                {"name": "vault", "csi": {"driver": "secrets-store.csi.k8s.io"}}])),
            ..spec(&[])
        };
        let mut unlisted = World::new(claim());
        assert_eq!(
            unlisted.decide_at(0).read,
            Some(Read::ServiceAccount("default".into())),
            "the pod runs as default: its annotations decide"
        );
        unlisted.step(0);
        assert_eq!(
            (unlisted.phase(), unlisted.reason()),
            (Failed, "InvalidSpec")
        );
        let why = unlisted.message().to_string();
        assert!(
            why.contains("team-data") && why.contains("crew.dev/worker-volume-claims"),
            "{why}"
        );
        assert!(
            why.contains("secrets-store.csi.k8s.io") && why.contains("crew.dev/worker-csi-drivers"),
            "{why}"
        );
        assert_eq!(unlisted.job_creates, 0);

        let mut listed = World::new(claim());
        listed.service_accounts.insert(
            "default".into(),
            [
                (
                    "crew.dev/worker-volume-claims".to_string(),
                    "team-data".to_string(),
                ),
                (
                    "crew.dev/worker-csi-drivers".to_string(),
                    "secrets-store.csi.k8s.io".to_string(),
                ),
            ]
            .into(),
        );
        let plan = listed.step(0);
        assert!(plan.launch.is_some(), "opened by the namespace's owner");
        vec![token, host, unlisted, listed]
    }

    /// A named ServiceAccount is read before its worker launches (a plan that needs it asks for the read and is not
    /// carried out); opened to workers, the Job is created in the same reconcile. A ServiceAccount that does not
    /// exist yet fails the attempt under the retry policy, and the next attempt runs once it exists.
    pub fn a_service_account_is_read_once_before_the_launch() -> Vec<World> {
        let opened = || {
            [(
                crate::lifecycle::worker_policy::WORKER_ANNOTATION.to_string(),
                "true".to_string(),
            )]
            .into()
        };
        let mut robot = World::new(CrewExecutionSpec {
            service_account_name: Some("robot".into()),
            ..spec(&[])
        });
        robot.service_accounts.insert("robot".into(), opened());
        let first = robot.decide_at(0);
        assert_eq!(first.read, Some(Read::ServiceAccount("robot".into())));
        assert!(first.launch.is_none(), "not launched before the read");
        let plan = robot.step(0);
        assert!(plan.launch.is_some(), "launched after the read");
        assert_eq!(plan.read, None);
        assert_eq!((robot.phase(), robot.job_creates), (Running, 1));

        let mut early = World::new(CrewExecutionSpec {
            service_account_name: Some("robot".into()),
            retry: retry(1, 10),
            ..spec(&[])
        });
        early.step(0);
        assert_eq!(early.job_creates, 0);
        assert_eq!(early.event_reasons(), ["Started", "RetryScheduled"]);
        let main = early.step_status("main");
        assert_eq!((main.phase, main.attempt), (StepPhase::Retrying, 1));
        assert!(
            main.message
                .as_deref()
                .is_some_and(|m| m.contains("does not exist")),
            "{main:?}"
        );
        early.service_accounts.insert("robot".into(), opened());
        let plan = early.step(10);
        assert_eq!(
            plan.launch.map(|l| l.attempt),
            Some(2),
            "the retry runs once it exists"
        );
        vec![robot, early]
    }

    /// The API server refuses the Job for a reason no retry can cure (422: a pod annotation key that is not a
    /// qualified name): the run fails at once with `JobRejected` and the API's message, even with retries left
    /// (review finding 2: it used to retry the create forever with no status).
    pub fn invalid_job_fails_the_run_at_once() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(3, 10),
            ..spec(&["a", "b"])
        });
        w.reject_next_launch = Some((
            true,
            "metadata.annotations: Invalid value: \"not a key\"".into(),
        ));
        let plan = w.step(0);
        assert!(plan.launch.is_none());
        assert_eq!((w.phase(), w.reason()), (Failed, "JobRejected"));
        assert!(
            w.message()
                .contains("Job report-a-1 rejected by the API server"),
            "{}",
            w.message()
        );
        assert!(w.message().contains("not a key"), "{}", w.message());
        let a = w.step_status("a");
        assert_eq!((a.phase, a.attempt), (StepPhase::Failed, 1));
        assert!(a.message.as_deref().unwrap().contains("not a key"));
        assert_eq!(w.event_reasons(), ["Started", "JobRejected"]);
        assert_eq!(w.warnings(), ["JobRejected"]);
        assert_eq!(w.job_creates, 0);
        assert_eq!(w.quiet(100), None);
        vec![w]
    }

    /// A refusal that may pass later (quota exceeded, an admission webhook, 429, 5xx) is a failed attempt under the
    /// retry policy: retried with its backoff, and the run fails with `JobRejected` once no retry is left.
    pub fn refused_job_is_retried_under_the_policy() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(1, 20),
            ..spec(&[])
        });
        w.reject_next_launch = Some((false, "exceeded quota: count/jobs.batch=0".into()));
        w.step(0);
        assert_eq!((w.phase(), w.reason()), (Running, "RetryBackoff"));
        let main = w.step_status("main");
        assert_eq!((main.phase, main.attempt), (StepPhase::Retrying, 1));
        assert_eq!(w.event_reasons(), ["Started", "RetryScheduled"]);
        assert_eq!(w.quiet(10), Some(10));
        w.reject_next_launch = Some((false, "exceeded quota: count/jobs.batch=0".into()));
        let plan = w.step(20);
        assert!(plan.launch.is_none());
        assert_eq!((w.phase(), w.reason()), (Failed, "JobRejected"));
        assert_eq!(
            w.event_reasons(),
            ["Started", "RetryScheduled", "JobRejected"]
        );
        assert_eq!(w.job_creates, 0);
        vec![w]
    }

    /// With no backoff, each refused attempt is still recorded before the next starts: no loop within a reconcile.
    pub fn refused_jobs_without_backoff_take_one_attempt_per_reconcile() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            retry: retry(2, 0),
            ..spec(&[])
        });
        for attempt in 1..=2 {
            w.reject_next_launch = Some((
                false,
                "the server is currently unable to handle the request".into(),
            ));
            let plan = w.step(attempt);
            assert!(plan.launch.is_none(), "attempt {attempt}");
            assert_eq!(w.step_status("main").attempt, attempt as u32);
            assert_eq!(w.phase(), Running);
        }
        let plan = w.step(3);
        assert_eq!(plan.launch.map(|l| l.attempt), Some(3));
        w.succeed(&job("main", 3), 4, "ok");
        w.step(4);
        assert_eq!(w.phase(), Succeeded);
        vec![w]
    }

    pub fn job_name_taken_by_earlier_execution() -> Vec<World> {
        let mut w = World::new(spec(&[]));
        w.jobs.push(ObservedJob {
            name: job("main", 1),
            step: "main".into(),
            attempt: 1,
            owned: false,
            controller: Some(earlier_controller()),
            state: JobState::Succeeded,
            created: Some(at(-1000)),
            started: Some(at(-1000)),
            finished: Some(at(-900)),
            seen_finished: Some(at(-900)),
            failure_reason: None,
            failure_message: None,
            worker: Some(WorkerOutcome::default()),
            pod_seen: true,
            pod_started: true,
            start_blocked: None,
            deleting: true,
            posted: None,
        });
        let plan = w.step(0);
        assert!(plan.launch.is_none());
        assert!(plan.delete_jobs.is_empty(), "not ours to delete");
        assert_eq!(plan.requeue_after_seconds, Some(5));
        assert_eq!(w.reason(), "JobNameTaken");
        assert!(w.message().contains("report-main-1"), "{}", w.message());
        assert_eq!(w.warnings(), ["JobNameTaken"]);
        assert!(!w.phase().is_terminal());
        let steps = &w.status().steps;
        assert_eq!(
            steps[0].phase,
            StepPhase::Pending,
            "the old Job is not our attempt"
        );
        assert_eq!(w.quiet(5), Some(5), "warned once");
        w.jobs.clear();
        let plan = w.step(10);
        assert_eq!(
            plan.launch.map(|l| l.job_name).as_deref(),
            Some("report-main-1")
        );
        assert_eq!(w.reason(), "StepRunning");
        assert_eq!(w.warnings(), ["JobNameTaken"]);
        w.succeed(&job("main", 1), 20, "");
        w.step(20);
        assert_eq!(w.phase(), Succeeded);
        vec![w]
    }

    /// Review finding 3: a Job of the attempt's name that nobody will delete (orphaned by `--cascade=orphan`, or
    /// another object's) was waited for forever, holding the queue's head. The name counts as refused now: a failed
    /// attempt (`JobRejected`) under the retry policy, whose next attempt has another name; without retries the run
    /// fails. Either way it ends, visibly.
    pub fn a_job_name_held_by_an_unowned_job_does_not_wait_forever() -> Vec<World> {
        let stranger = JobController {
            api_version: "batch/v1".into(),
            kind: "CronJob".into(),
            name: "nightly".into(),
            uid: "cron-uid".into(),
        };
        let mut worlds = Vec::new();
        for holder in [None, Some(stranger)] {
            let label = format!("{holder:?}");
            let mut w = World::new(CrewExecutionSpec {
                retry: retry(1, 10),
                ..spec(&[])
            });
            w.jobs.push(foreign_job("main", 1, holder));
            let plan = w.step(0);
            assert!(plan.launch.is_none(), "{label}");
            assert!(plan.delete_jobs.is_empty(), "{label}: not ours to delete");
            assert_eq!(w.phase(), Running, "{label}");
            let main = w.step_status("main");
            assert_eq!(
                (main.phase, main.attempt),
                (StepPhase::Retrying, 1),
                "{label}"
            );
            let why = main.message.clone().unwrap_or_default();
            assert!(
                why.contains("report-main-1") && why.contains("nothing will delete"),
                "{label}: {why}"
            );
            assert_eq!(w.warnings(), ["RetryScheduled"], "{label}");
            let plan = w.step(10);
            assert_eq!(
                plan.launch.map(|l| l.job_name).as_deref(),
                Some("report-main-2"),
                "{label}: the next attempt has another name"
            );
            w.succeed(&job("main", 2), 20, "ok");
            w.step(20);
            assert_eq!(w.phase(), Succeeded, "{label}");
            worlds.push(w);
        }
        let mut once = World::new(spec(&[]));
        once.jobs.push(foreign_job("main", 1, None));
        once.step(0);
        assert_eq!((once.phase(), once.reason()), (Failed, "JobRejected"));
        assert_eq!(once.job_creates, 0);
        worlds.push(once);
        worlds
    }

    /// Review finding 3: an earlier execution's Job that its garbage collection never deletes was waited for without
    /// bound. The wait shows (`JobNameTaken`, condition `StartBlocked` since the wait began, persisted in status so
    /// a restart does not start it again) and lasts at most the start timeout; then the attempt fails and the
    /// next, under another name, runs.
    pub fn the_wait_for_an_earlier_executions_job_is_bounded() -> Vec<World> {
        let mut w = World::new(CrewExecutionSpec {
            start_timeout_seconds: Some(60),
            retry: retry(1, 0),
            ..spec(&[])
        });
        w.jobs
            .push(foreign_job("main", 1, Some(earlier_controller())));
        let plan = w.step(0);
        assert!(plan.launch.is_none());
        assert_eq!(plan.requeue_after_seconds, Some(5));
        assert_eq!((w.phase(), w.reason()), (Pending, "JobNameTaken"));
        assert_eq!(w.cond_is("StartBlocked"), ("True", "JobNameTaken"));
        assert_eq!(w.cond("StartBlocked").last_transition_time, time(0));
        assert_eq!(w.warnings(), ["JobNameTaken"]);
        assert_eq!(w.quiet(30), Some(5), "the wait goes on, unwritten");
        let plan = w.step(58);
        assert_eq!(plan.requeue_after_seconds, Some(2), "requeued at the bound");
        let plan = w.step(60);
        assert_eq!(
            plan.launch.map(|l| l.job_name).as_deref(),
            Some("report-main-2"),
            "attempt 1 failed at the bound; attempt 2 has another name"
        );
        assert_eq!(w.phase(), Running);
        assert!(find(&w.status().conditions, ConditionType::StartBlocked).is_none());
        assert_eq!(w.warnings(), ["JobNameTaken", "RetryScheduled"]);
        let failed = w
            .status()
            .history
            .iter()
            .find(|e| e.reason == "RetryScheduled")
            .and_then(|e| e.message.clone())
            .unwrap_or_default();
        assert!(failed.contains("not deleted within 60s"), "{failed}");
        w.succeed(&job("main", 2), 70, "ok");
        w.step(70);
        assert_eq!(w.phase(), Succeeded);
        vec![w]
    }
}
