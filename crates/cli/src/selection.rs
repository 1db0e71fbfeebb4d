//! Which executions a bulk command targets, decided from the command line alone, before any request.
//!
//! As with `kubectl delete`, a selection that would match every execution in scope must say so with `--all`:
//! a filter that filters nothing is refused rather than read as "everything".

use crate::args::{BulkArgs, Filter};
use crate::error::CliError;

/// The targets of a bulk command.
#[derive(Clone, Copy, Debug)]
pub enum Selection<'a> {
    /// These executions, by name, in the command's namespace.
    Names(&'a [String]),
    /// Every execution in scope the filter selects (with `--all` and no filter: every one).
    Filtered(&'a Filter),
}

/// The selection `args` asks for, or why it is refused.
pub fn of(args: &BulkArgs) -> Result<Selection<'_>, CliError> {
    let filtered = !is_empty(&args.filter);
    match (args.names.is_empty(), filtered || args.all) {
        (false, true) => Err(CliError::Usage(
            "give names, or a filter (-l, --phase, --queue) or --all, not both".into(),
        )),
        (true, false) => Err(CliError::Usage(
            "say which executions: names, -l SELECTOR, --phase, --queue, or --all (with -n or -A)"
                .into(),
        )),
        (true, true) if !args.all && names_every_phase(&args.filter) => Err(CliError::Usage(
            "--phase names every phase, which selects every execution: add --all if that is meant"
                .into(),
        )),
        (true, true) => Ok(Selection::Filtered(&args.filter)),
        (false, false) => Ok(Selection::Names(&args.names)),
    }
}

/// Whether `filter` filters nothing.
fn is_empty(filter: &Filter) -> bool {
    filter.selector.is_none() && filter.phase.is_empty() && filter.queue.is_none()
}

/// Whether `filter` is only `--phase`, naming every phase there is.
fn names_every_phase(filter: &Filter) -> bool {
    filter.selector.is_none()
        && filter.queue.is_none()
        && crew_api::Phase::ALL.iter().all(|phase| {
            filter
                .phase
                .iter()
                .any(|given| given.eq_ignore_ascii_case(phase.as_str()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(names: &[&str], filter: Filter, all: bool) -> BulkArgs {
        BulkArgs {
            names: names.iter().map(|n| n.to_string()).collect(),
            filter,
            all,
            dry_run: false,
            yes: false,
            parallel: 1,
        }
    }

    fn phases(list: &str) -> Filter {
        Filter {
            phase: list.split(',').map(str::to_string).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn names_or_a_filter_or_all() {
        let by_name = bulk(&["a", "b"], Filter::default(), false);
        assert!(matches!(of(&by_name), Ok(Selection::Names(n)) if n.len() == 2));
        assert!(matches!(
            of(&bulk(&[], phases("Failed"), false)),
            Ok(Selection::Filtered(_))
        ));
        assert!(matches!(
            of(&bulk(&[], Filter::default(), true)),
            Ok(Selection::Filtered(f)) if is_empty(f)
        ));
        let nothing = of(&bulk(&[], Filter::default(), false)).unwrap_err();
        assert!(nothing.to_string().contains("say which executions"));
        assert!(of(&bulk(&["a"], phases("Failed"), false)).is_err());
        assert!(of(&bulk(&["a"], Filter::default(), true)).is_err());
    }

    #[test]
    fn every_phase_is_everything_and_needs_all() {
        let every = "pending,Queued,Running,Paused,Succeeded,Failed,Cancelled";
        let refused = of(&bulk(&[], phases(every), false)).unwrap_err();
        assert!(refused.to_string().contains("add --all"), "{refused}");
        assert!(of(&bulk(&[], phases(every), true)).is_ok());
        let narrowed = Filter {
            queue: Some("gpu".into()),
            ..phases(every)
        };
        assert!(of(&bulk(&[], narrowed, false)).is_ok());
        assert!(of(&bulk(&[], phases("Succeeded,Failed,Cancelled"), false)).is_ok());
    }
}
