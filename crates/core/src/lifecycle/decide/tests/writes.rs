//! What a clean run costs in writes, and what its writes look like (whole seconds).

use super::prelude::*;

/// Writes of a clean run of `n` steps: n+1 status writes and events, n Jobs, one ConfigMap.
#[test]
fn write_counts_per_clean_run() {
    for n in 1..=4usize {
        let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut w = World::new(spec(&refs));
        w.step(0);
        for (i, name) in names.iter().enumerate() {
            let t = 10 * (i as i64 + 1);
            w.succeed(&job(name, 1), t, "ok");
            w.step(t);
            w.quiet(t + 1);
        }
        assert_eq!(w.phase(), Phase::Succeeded);
        println!(
            "{n}-step run: {} status writes, {} events, {} job creates, {} config maps",
            w.status_writes,
            w.events.len(),
            w.job_creates,
            w.config_maps
        );
        assert_eq!(
            (
                w.status_writes,
                w.events.len(),
                w.job_creates,
                w.config_maps
            ),
            (n + 1, n + 1, n, 1)
        );
    }
    let mut w = World::new(CrewExecutionSpec {
        crew: None,
        inputs: None,
        ..spec(&[])
    });
    assert!(
        !w.step(0).ensure_config_map,
        "no ConfigMap without crew or inputs"
    );
}

/// Sub-second parts of `now` are dropped: the status written survives an API round trip unchanged.
#[test]
fn sub_second_time_is_truncated() {
    let w = World::new(spec(&[]));
    let observed = Observed {
        name: NAME,
        generation: Some(1),
        spec: &w.spec,
        status: None,
        jobs: &[],
        admission: Admission::Admitted,
        rejected: None,
        missing_job: None,
        default_start_timeout_seconds: DEFAULT_START_TIMEOUT_SECONDS,
        pod_refused: None,
        service_account: None,
        worker_policy: &WorkerPolicy::default(),
        report: None,
        report_due: false,
        acting_since: None,
        retain: false,
        has_finalizer: false,
        archive: Default::default(),
        resume_source: None,
    };
    let now = at(0)
        .checked_add(jiff::SignedDuration::from_millis(750))
        .unwrap();
    let status = decide(&observed, now).status.unwrap();
    assert_eq!(status.start_time, Some(time(0)));
    assert_eq!(status.history[0].time, time(0));
}
