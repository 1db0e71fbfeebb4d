//! Stories of runs resuming from another execution (`spec.resumeFrom`): the steps before the resume step are
//! taken over as written there, never run again; an execution that cannot be resumed from fails the run at once.

use crate::lifecycle::ResumeSource;
use crate::lifecycle::decide::tests::prelude::*;
use crate::lifecycle::results::Kept;
use crew_api::{ResultRef, ResumeFrom, StepPhase, StepStatus};

stories!(
    a_resumed_run_starts_at_its_step_with_the_earlier_results,
    a_run_cannot_resume_from_what_did_not_succeed,
);

fn resumed(step: &str) -> CrewExecutionSpec {
    let mut spec = spec(&["research", "write", "report"]);
    spec.resume_from = Some(ResumeFrom {
        execution: "earlier".into(),
        step: step.into(),
    });
    spec
}

fn succeeded(name: &str, posted: bool) -> StepStatus {
    StepStatus {
        name: name.into(),
        phase: StepPhase::Succeeded,
        attempt: 2,
        job_name: Some(format!("earlier-{name}-2")),
        start_time: Some(time(-100)),
        completion_time: Some(time(-50)),
        result: Some(format!("{name} done")),
        result_ref: posted.then(|| ResultRef {
            config_map: format!("earlier-result-{name}"),
            size: 9,
            sha256: "0".repeat(64),
            content_type: "text/plain".into(),
        }),
        ..Default::default()
    }
}

fn failed(name: &str) -> StepStatus {
    StepStatus {
        name: name.into(),
        phase: StepPhase::Failed,
        attempt: 1,
        ..Default::default()
    }
}

mod story {
    use super::*;
    use Phase::*;

    pub fn a_resumed_run_starts_at_its_step_with_the_earlier_results() -> Vec<World> {
        let mut w = World::new(resumed("report"));
        w.resume_source = Some(ResumeSource {
            uid: "uid-earlier".into(),
            steps: vec![
                succeeded("research", true),
                succeeded("write", false),
                failed("report"),
            ],
        });
        let plan = w.step(0);
        assert_eq!(plan.adopt_results, ["earlier-result-research"]);
        let launch = plan.launch.expect("the resume step launches at once");
        assert_eq!((launch.step.name.as_str(), launch.attempt), ("report", 1));
        assert_eq!(
            launch
                .results
                .iter()
                .map(|r| (r.step.as_str(), r.kept.clone()))
                .collect::<Vec<_>>(),
            [
                (
                    "research",
                    Kept::ConfigMap("earlier-result-research".into())
                ),
                ("write", Kept::Inline("write done".into())),
            ]
        );
        let research = w.step_status("research").clone();
        assert_eq!(research.phase, StepPhase::Succeeded);
        assert_eq!(research.result_ref, succeeded("research", true).result_ref);
        assert_eq!(
            research.job_name, None,
            "the earlier run's Job is not this run's"
        );
        assert_eq!(
            research.message.as_deref(),
            Some("reused from execution earlier")
        );
        assert!(
            w.history()
                .iter()
                .any(|(_, _, reason)| *reason == "StepsReused"),
            "{:?}",
            w.history()
        );
        assert!(w.last_entry().message.is_some());
        assert_eq!(w.progress().completed_steps, 2);
        w.succeed(&job("report", 1), 30, "the report");
        w.step(30);
        assert_eq!(w.phase(), Succeeded);
        assert!(
            !w.launched.iter().any(|(step, _)| step != "report"),
            "only the resume step ran: {:?}",
            w.launched
        );
        vec![w]
    }

    pub fn a_run_cannot_resume_from_what_did_not_succeed() -> Vec<World> {
        let mut missing = World::new(resumed("report"));
        let plan = missing.step(0);
        assert!(plan.launch.is_none());
        assert_eq!((missing.phase(), missing.reason()), (Failed, "InvalidSpec"));
        assert!(
            missing.message().contains("does not exist"),
            "{}",
            missing.message()
        );

        let mut not_succeeded = World::new(resumed("report"));
        not_succeeded.resume_source = Some(ResumeSource {
            uid: "uid-earlier".into(),
            steps: vec![succeeded("research", false), failed("write")],
        });
        not_succeeded.step(0);
        assert_eq!(not_succeeded.phase(), Failed);
        assert!(
            not_succeeded
                .message()
                .contains("step \"write\" did not succeed"),
            "{}",
            not_succeeded.message()
        );

        let mut unknown_step = World::new(resumed("publish"));
        unknown_step.resume_source = not_succeeded.resume_source.clone();
        unknown_step.step(0);
        assert_eq!(unknown_step.phase(), Failed);
        assert!(unknown_step.message().contains("\"publish\" is not a step"));
        vec![missing, not_succeeded, unknown_step]
    }
}
