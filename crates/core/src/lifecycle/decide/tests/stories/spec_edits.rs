//! Stories of invalid specs and spec edits mid-run: frozen steps, live fields, edits while paused or queued.

use crate::lifecycle::decide::tests::prelude::*;

stories!(
    invalid_spec_fails,
    invalid_spec_edit_while_running,
    invalid_live_field_edit_while_running,
    steps_renamed_mid_run_keep_the_frozen_steps,
    service_account_edited_mid_run_keeps_the_frozen_one,
    invalid_spec_edit_while_paused_or_queued,
    retry_limit_lowered_while_paused_or_queued,
    remaining_steps_removed_while_paused_or_queued,
);

mod story {
    use super::*;
    use Phase::*;

    pub fn invalid_spec_fails() -> Vec<World> {
        let cases: [(&str, CrewExecutionSpec, &str); 3] = [
            (
                "no image",
                CrewExecutionSpec {
                    image: None,
                    ..spec(&[])
                },
                "has no image",
            ),
            (
                "duplicate step names",
                spec(&["a", "b", "a"]),
                "used more than once",
            ),
            (
                "step without image",
                CrewExecutionSpec {
                    image: None,
                    steps: vec![
                        StepSpec {
                            image: Some("x:1".into()),
                            ..step_spec("a")
                        },
                        step_spec("b"),
                    ],
                    ..spec(&[])
                },
                "step \"b\" has no image",
            ),
        ];
        let mut worlds = Vec::new();
        for (label, spec, needle) in cases {
            let mut w = World::new(spec);
            let plan = w.step(0);
            assert!(plan.launch.is_none() && !plan.ensure_config_map, "{label}");
            assert_eq!((w.phase(), w.reason()), (Failed, "InvalidSpec"), "{label}");
            assert!(w.message().starts_with("invalid spec: "), "{label}");
            assert!(w.message().contains(needle), "{label}: {}", w.message());
            assert_eq!(w.cond_is("Stalled"), ("True", "InvalidSpec"), "{label}");
            assert_eq!(w.cond_is("Succeeded").0, "False", "{label}");
            assert_eq!(w.warnings(), ["InvalidSpec"], "{label}");
            assert_eq!(w.history(), [(Pending, Failed, "InvalidSpec")], "{label}");
            assert_eq!(w.status().completion_time, Some(time(0)), "{label}");
            assert_eq!(w.quiet(10), None, "{label}");
            assert_eq!(w.job_creates, 0, "{label}");
            worlds.push(w);
        }
        worlds
    }

    /// A spec edited into an invalid one while its step runs: the Job is deleted and the execution fails.
    pub fn invalid_spec_edit_while_running() -> Vec<World> {
        // Review finding 11: an edit of the steps after the start does not apply to the run, valid or not; it is
        // reported (Warning Event, condition StepsChanged) and the run goes on with the steps it started with.
        let mut w = World::new(spec(&["a", "b"]));
        w.step(0);
        w.edit(|s| s.steps.push(step_spec("a")));
        let plan = w.step(5);
        assert!(plan.delete_jobs.is_empty(), "the running step goes on");
        assert_eq!(w.phase(), Running);
        assert_eq!(w.warnings(), ["StepsChanged"]);
        assert_eq!(w.cond_is("StepsChanged"), ("True", "StepsFrozen"));
        assert_eq!(w.quiet(6), None);
        w.succeed(&job("a", 1), 10, "a");
        w.step(10);
        w.succeed(&job("b", 1), 20, "b");
        w.step(20);
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(w.warnings(), ["StepsChanged"], "reported once");
        vec![w]
    }

    /// Review finding 14: `serviceAccountName` and `imagePullPolicy` were read from the live spec at every launch,
    /// so an edit mid-run changed the next attempt's ServiceAccount, unreported. They are frozen with the steps:
    /// the edit is reported as `StepsChanged`, and the retry runs, and is checked, as the ServiceAccount it started
    /// with.
    pub fn service_account_edited_mid_run_keeps_the_frozen_one() -> Vec<World> {
        let opened = || {
            [(
                crate::lifecycle::worker_policy::WORKER_ANNOTATION.to_string(),
                "true".to_string(),
            )]
            .into()
        };
        let mut w = World::new(CrewExecutionSpec {
            service_account_name: Some("runner".into()),
            image_pull_policy: Some("IfNotPresent".into()),
            retry: retry(1, 10),
            ..spec(&[])
        });
        w.service_accounts.insert("runner".into(), opened());
        w.service_accounts.insert("powerful".into(), opened());
        let plan = w.step(0);
        let launched = plan.launch.expect("attempt 1").step;
        assert_eq!(launched.service_account_name.as_deref(), Some("runner"));
        let frozen = &w.status().resolved_steps[0];
        assert_eq!(
            (
                frozen.service_account_name.as_deref(),
                frozen.image_pull_policy.as_deref()
            ),
            (Some("runner"), Some("IfNotPresent"))
        );
        w.edit(|s| {
            s.service_account_name = Some("powerful".into());
            s.image_pull_policy = Some("Always".into());
        });
        w.step(5);
        assert_eq!(w.warnings(), ["StepsChanged"]);
        assert_eq!(w.cond_is("StepsChanged"), ("True", "StepsFrozen"));
        w.fail(&job("main", 1), 6, 1, "boom");
        w.step(6);
        let plan = w.step(16);
        let retried = plan.launch.expect("attempt 2").step;
        assert_eq!(
            (
                retried.service_account_name.as_deref(),
                retried.image_pull_policy.as_deref()
            ),
            (Some("runner"), Some("IfNotPresent")),
            "the retry runs as the run started"
        );
        vec![w]
    }

    /// An invalid value of a field that stays live (here `retry`) fails a running run, as before the freeze.
    pub fn invalid_live_field_edit_while_running() -> Vec<World> {
        let mut w = World::new(spec(&["a", "b"]));
        w.step(0);
        w.edit(|s| {
            s.retry = Some(RetryPolicy {
                limit: 1,
                backoff_seconds: 10,
                max_backoff_seconds: 5,
            })
        });
        let plan = w.step(5);
        assert_eq!(plan.delete_jobs, [job("a", 1)]);
        assert_eq!((w.phase(), w.reason()), (Failed, "InvalidSpec"));
        assert_eq!(w.warnings(), ["InvalidSpec"]);
        assert_eq!(w.quiet(6), None);
        vec![w]
    }

    /// Review finding 11: renaming the running step (or reordering, inserting, removing steps) mid-run started the
    /// renamed step beside the running one and dropped the old step's status. The run keeps its frozen steps: no
    /// second Job, every step's status kept, the edit reported once.
    pub fn steps_renamed_mid_run_keep_the_frozen_steps() -> Vec<World> {
        let mut w = World::new(spec(&["a", "b", "c"]));
        w.step(0);
        w.succeed(&job("a", 1), 5, "a");
        w.step(5);
        let frozen = w.status().resolved_steps.clone();
        assert_eq!(
            frozen.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(
            frozen[1].image.as_deref(),
            Some("worker:1"),
            "inherited fields written out"
        );
        w.edit(|s| {
            s.steps = vec![step_spec("a"), step_spec("b2"), step_spec("c")];
            s.image = Some("worker:2".into());
        });
        let plan = w.step(8);
        assert!(plan.launch.is_none(), "no parallel step b2");
        assert_eq!(
            w.status()
                .steps
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(w.cond_is("StepsChanged"), ("True", "StepsFrozen"));
        w.succeed(&job("b", 1), 10, "b");
        let plan = w.step(10);
        let launch = plan.launch.expect("c starts");
        assert_eq!(
            (launch.step.name.as_str(), launch.step.image.as_str()),
            ("c", "worker:1"),
            "as frozen, not as edited"
        );
        w.edit(|s| {
            s.steps = vec![step_spec("a"), step_spec("b"), step_spec("c")];
            s.image = Some("worker:1".into());
        });
        w.step(11);
        assert!(
            find(&w.status().conditions, ConditionType::StepsChanged).is_none(),
            "gone once the spec matches again"
        );
        w.succeed(&job("c", 1), 15, "c");
        w.step(15);
        assert_eq!(w.phase(), Succeeded);
        assert_eq!(w.warnings(), ["StepsChanged"]);
        assert_eq!(w.status().resolved_steps, frozen, "kept as written");
        vec![w]
    }

    /// An invalid spec while Paused or Queued fails the run like anywhere else: a stalled member used to keep its
    /// place at the head of its queue forever (review finding 5).
    pub fn invalid_spec_edit_while_paused_or_queued() -> Vec<World> {
        type Setup = fn(&mut World);
        let cases: [(&str, Phase, Setup); 2] = [
            ("paused", Paused, |w| {
                w.edit(|s| s.suspend = true);
                w.step(0);
            }),
            ("queued", Queued, |w| {
                w.admission = Admission::Wait {
                    queue: "q".into(),
                    position: 1,
                };
                w.step(0);
            }),
        ];
        let mut worlds = Vec::new();
        for (label, phase, setup) in cases {
            let mut w = World::new(spec(&["a"]));
            setup(&mut w);
            assert_eq!(w.phase(), phase, "{label}");
            let before = w.events.len();
            w.edit(|s| s.image = None);
            let plan = w.step(10);
            assert!(plan.launch.is_none(), "{label}");
            assert_eq!((w.phase(), w.reason()), (Failed, "InvalidSpec"), "{label}");
            assert_eq!(w.cond_is("Stalled"), ("True", "InvalidSpec"), "{label}");
            let new: Vec<_> = w.events[before..]
                .iter()
                .map(|e| e.reason.as_str())
                .collect();
            assert_eq!(new, ["InvalidSpec"], "{label}");
            assert_eq!(w.quiet(20), None, "{label}");
            worlds.push(w);
        }
        worlds
    }

    /// The retry limit lowered to 0 while a failed attempt waits, paused or queued: the run fails at once (it used
    /// to stay Paused/Queued forever, refusing the move and warning on every reconcile).
    pub fn retry_limit_lowered_while_paused_or_queued() -> Vec<World> {
        let mut worlds = Vec::new();
        for queued in [false, true] {
            let label = if queued { "queued" } else { "paused" };
            let mut w = World::new(CrewExecutionSpec {
                retry: retry(2, 60),
                ..spec(&[])
            });
            w.step(0);
            w.fail(&job("main", 1), 5, 1, "boom");
            w.step(5);
            assert_eq!(
                (w.phase(), w.reason()),
                (Running, "RetryBackoff"),
                "{label}"
            );
            w.edit(|s| s.suspend = true);
            w.step(6);
            assert_eq!(w.phase(), Paused, "{label}");
            if queued {
                w.admission = Admission::Wait {
                    queue: "q".into(),
                    position: 1,
                };
                w.edit(|s| s.suspend = false);
                w.step(7);
                assert_eq!(w.phase(), Queued, "{label}");
            }
            w.edit(|s| s.retry = retry(0, 60));
            let plan = w.step(8);
            assert!(plan.launch.is_none(), "{label}");
            assert_eq!((w.phase(), w.reason()), (Failed, "StepFailed"), "{label}");
            assert!(!w.event_reasons().contains(&"InvalidTransition"), "{label}");
            assert_eq!(w.quiet(20), None, "{label}");
            worlds.push(w);
        }
        worlds
    }

    /// The steps still to run removed from the spec while paused or queued between steps: the run succeeds with
    /// the steps it ran.
    pub fn remaining_steps_removed_while_paused_or_queued() -> Vec<World> {
        // Steps removed after the start do not apply to the run (review finding 11): it resumes with the steps it
        // started with, the edit reported.
        let mut worlds = Vec::new();
        for queued in [false, true] {
            let label = if queued { "queued" } else { "paused" };
            let mut w = World::new(spec(&["a", "b"]));
            w.step(0);
            w.edit(|s| s.suspend = true);
            w.step(1);
            w.succeed(&job("a", 1), 5, "a done");
            w.step(5);
            assert_eq!(w.phase(), Paused, "{label}");
            if queued {
                w.admission = Admission::Wait {
                    queue: "q".into(),
                    position: 1,
                };
                w.edit(|s| s.suspend = false);
                w.step(6);
                assert_eq!(w.phase(), Queued, "{label}");
            }
            w.edit(|s| s.steps.truncate(1));
            let plan = w.step(8);
            assert!(plan.launch.is_none(), "{label}");
            assert_eq!(w.warnings(), ["StepsChanged"], "{label}");
            if queued {
                w.admission = Admission::Admitted;
            } else {
                w.edit(|s| s.suspend = false);
            }
            let plan = w.step(9);
            assert_eq!(
                plan.launch.map(|l| l.step.name),
                Some("b".into()),
                "{label}"
            );
            w.succeed(&job("b", 1), 12, "b done");
            w.step(12);
            assert_eq!(w.phase(), Succeeded, "{label}");
            assert!(!w.event_reasons().contains(&"InvalidTransition"), "{label}");
            assert_eq!(w.quiet(20), None, "{label}");
            worlds.push(w);
        }
        worlds
    }
}
