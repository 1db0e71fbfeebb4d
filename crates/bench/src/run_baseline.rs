//! The baseline run: no operator. The benchmark creates each chain's first bare Job (the same Job the operator
//! would create) as fast as the API server accepts them, and the next step's Job as soon as it sees the previous
//! one complete; a chain is done when its last Job completed. With `job_cleanup` it also deletes each Job once it
//! has seen it complete, as the operator does under `jobCleanup: OnStepCompletion`.

use super::create::{is_not_found, with_retry};
use super::harness::{Harness, RunConfig, lock};
use super::report::{Mode, RunResult};
use super::workload::{baseline_job, job_name, namespace_of};
use futures::StreamExt;
use futures::channel::mpsc::unbounded;
use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use std::sync::Arc;
use std::time::Duration;

/// Runs N chains of `steps` bare Jobs on a fresh control plane.
pub async fn run(config: &RunConfig) -> RunResult {
    let label = format!("baseline-{}x{}", config.n, config.steps);
    let mut harness = match Harness::start(config, &label).await {
        Ok(h) => h,
        Err(e) => return RunResult::failed(Mode::Baseline, config.n, config.steps, e),
    };
    let (mut result, keep) = match measure(config, &mut harness).await {
        Ok(r) => {
            let keep = !r.completed || config.keep_dirs;
            (r, keep)
        }
        Err(e) => (
            RunResult::failed(Mode::Baseline, config.n, config.steps, e),
            true,
        ),
    };
    result.kept_dir = harness.finish(keep).await;
    result
}

async fn measure(config: &RunConfig, harness: &mut Harness) -> Result<RunResult, String> {
    let (next, requests) = unbounded::<(usize, usize)>();
    let listed = harness.watch_jobs(Some(next.clone()), true, config.job_cleanup);
    Harness::wait_listed(vec![listed]).await?;
    let before = harness.scrape_apiserver().await?;
    let cpu_before = harness.cpu(&[]);
    eprintln!(
        "  baseline run: creating {} chains of {} Job(s)",
        config.n, config.steps
    );

    for chain in 0..config.n {
        let _ = next.unbounded_send((chain, 0));
    }
    drop(next);
    let (client, start, timeline) = (
        harness.client.clone(),
        harness.start,
        Arc::clone(&harness.timeline),
    );
    let (steps, namespaces, concurrency, job_cleanup) = (
        config.steps,
        config.namespaces,
        config.concurrency,
        config.job_cleanup,
    );
    let creator = tokio::spawn(async move {
        requests
            .for_each_concurrent(concurrency, |(chain, step)| {
                let (client, timeline) = (client.clone(), Arc::clone(&timeline));
                async move {
                    let ns = namespace_of(chain, namespaces);
                    let api: Api<Job> = Api::namespaced(client, &ns);
                    if job_cleanup && step > 0 {
                        // The previous step's Job completed (that is why this request came): let it go.
                        let (params, done) =
                            (DeleteParams::background(), job_name(chain, step - 1));
                        if let Err(e) = with_retry(|| api.delete(&done, &params)).await
                            && !is_not_found(&e)
                        {
                            eprintln!("delete Job {chain}/{}: {e}", step - 1);
                        }
                    }
                    if step == steps {
                        return; // only the last Job's deletion
                    }
                    let job = match baseline_job(chain, &ns, steps, step) {
                        Ok(job) => job,
                        Err(e) => {
                            eprintln!("Job {chain}/{step}: {e}");
                            lock(&timeline).chain_failed();
                            return;
                        }
                    };
                    let params = PostParams::default();
                    if step == 0 {
                        lock(&timeline).created(chain, start.elapsed());
                    }
                    if let Err(e) = with_retry(|| api.create(&params, &job)).await {
                        eprintln!("create Job {chain}/{step}: {e}");
                        lock(&timeline).chain_failed();
                    }
                }
            })
            .await;
    });
    harness.adopt(creator);
    let stopped_early = harness.wait_done(config.n, config.timeout).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = harness.scrape_apiserver().await?;
    let cpu_after = harness.cpu(&[]);
    let cpu = Harness::cpu_delta(&cpu_before, &cpu_after);
    Ok(harness.result(
        Mode::Baseline,
        config,
        stopped_early,
        (&before, &after),
        cpu,
        None,
    ))
}
