//! Admission cost in one long queue, without a cluster: the operator's queue book against the pass over every
//! member that admission made before it (`crew-bench --admission N`).
//!
//! Both drain the same queue of N waiting executions with `limit` slots, the way the operator does: every member
//! is reconciled once on arrival (an admission verdict each), then each freed slot wakes the heads, each head is
//! admitted and runs, and the oldest running member finishes. "list" builds the queue's member list from every
//! execution for each question (as the shell did with its cache) and asks `queue::admit` / `next_admitted`;
//! "book" asks the `QueueBook`, kept up to date by the same changes.

use crew_api::{CrewExecutionSpec, Phase};
use crew_core::lifecycle::Admission;
use crew_core::lifecycle::queue::{Member, admit, member_key, next_admitted};
use crew_core::lifecycle::queue_book::{Entry, LineId, QueueBook};
use crew_core::lifecycle::queue_stats::MemberFacts;
use jiff::Timestamp;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One execution of the simulated queue.
#[derive(Clone)]
struct Execution {
    name: String,
    spec: CrewExecutionSpec,
    phase: Phase,
    created: Timestamp,
}

impl Execution {
    fn member(&self) -> Member {
        Member::new(
            &member_key("bench", &self.name),
            &self.spec,
            self.phase,
            self.created,
        )
    }

    fn entry(&self, line: &LineId) -> Entry {
        Entry {
            namespace: "bench".into(),
            name: self.name.clone(),
            uid: self.name.clone(),
            line: line.clone(),
            member: self.member(),
            facts: MemberFacts {
                phase: self.phase,
                completed: None,
                duration_seconds: None,
                waiting_since: None,
            },
        }
    }
}

/// What one strategy took to work through the queue.
#[derive(Debug)]
pub struct Drain {
    /// Time for the arrival verdicts (one per member).
    pub arrivals: Duration,
    /// Time to work through the queue after that.
    pub drain: Duration,
    /// Admission verdicts asked for.
    pub verdicts: usize,
}

fn executions(n: usize) -> Vec<Execution> {
    (0..n)
        .map(|i| Execution {
            name: format!("run-{i:05}"),
            spec: CrewExecutionSpec {
                priority: (i % 7) as i32,
                ..Default::default()
            },
            phase: Phase::Queued,
            created: Timestamp::from_second(1_700_000_000 + i as i64).unwrap_or_default(),
        })
        .collect()
}

/// The queue's questions, answered either way.
trait Strategy {
    fn changed(&mut self, all: &[Execution], index: usize);
    fn verdict(&mut self, all: &[Execution], index: usize, limit: u32) -> Admission;
    fn heads(&mut self, all: &[Execution], limit: u32) -> Vec<String>;
}

/// Before the book: every question builds the member list from every execution.
struct List;

impl Strategy for List {
    fn changed(&mut self, _: &[Execution], _: usize) {}

    fn verdict(&mut self, all: &[Execution], index: usize, limit: u32) -> Admission {
        let members: Vec<Member> = all.iter().map(Execution::member).collect();
        admit(
            &members,
            &member_key("bench", &all[index].name),
            "q",
            Some(limit),
        )
    }

    fn heads(&mut self, all: &[Execution], limit: u32) -> Vec<String> {
        let members: Vec<Member> = all.iter().map(Execution::member).collect();
        next_admitted(&members, limit)
            .into_iter()
            .map(|key| key.trim_start_matches("bench/").to_string())
            .collect()
    }
}

/// The operator's index.
struct Book {
    book: QueueBook,
    line: LineId,
    now: Timestamp,
}

impl Strategy for Book {
    fn changed(&mut self, all: &[Execution], index: usize) {
        self.book.apply(all[index].entry(&self.line));
    }

    fn verdict(&mut self, all: &[Execution], index: usize, limit: u32) -> Admission {
        self.book.admit(
            &self.line,
            &member_key("bench", &all[index].name),
            "q",
            Some(limit),
            self.now,
        )
    }

    fn heads(&mut self, _: &[Execution], limit: u32) -> Vec<String> {
        self.book
            .next_admitted(&self.line, limit, self.now)
            .into_iter()
            .map(|(_, name)| name)
            .collect()
    }
}

fn drain(strategy: &mut dyn Strategy, n: usize, limit: u32) -> Drain {
    let mut all = executions(n);
    let index_of = |name: &str| {
        name.trim_start_matches("run-")
            .parse::<usize>()
            .unwrap_or(0)
    };
    let mut verdicts = 0;
    let mut running: VecDeque<usize> = VecDeque::new();
    let started = Instant::now();
    for i in 0..n {
        strategy.changed(&all, i);
        verdicts += 1;
        if strategy.verdict(&all, i, limit) == Admission::Admitted {
            all[i].phase = Phase::Running;
            strategy.changed(&all, i);
            running.push_back(i);
        }
    }
    let arrivals = started.elapsed();
    let started = Instant::now();
    loop {
        let heads = strategy.heads(&all, limit);
        if heads.is_empty() && running.is_empty() {
            break;
        }
        for head in heads {
            let i = index_of(&head);
            verdicts += 1;
            if strategy.verdict(&all, i, limit) == Admission::Admitted {
                all[i].phase = Phase::Running;
                strategy.changed(&all, i);
                running.push_back(i);
            }
        }
        if let Some(done) = running.pop_front() {
            all[done].phase = Phase::Succeeded;
            strategy.changed(&all, done);
        }
    }
    Drain {
        arrivals,
        drain: started.elapsed(),
        verdicts,
    }
}

/// Drains a queue of `n` with `limit` slots both ways and renders a table.
pub fn compare(n: usize, limit: u32) -> String {
    let list = drain(&mut List, n, limit);
    let book = drain(
        &mut Book {
            book: QueueBook::default(),
            line: LineId::of("bench", Some("q")),
            now: Timestamp::from_second(1_800_000_000).unwrap_or_default(),
        },
        n,
        limit,
    );
    let row = |name: &str, d: &Drain| {
        format!(
            "| {name} | {} | {:.3} | {:.3} | {:.1} |\n",
            d.verdicts,
            d.arrivals.as_secs_f64(),
            d.drain.as_secs_f64(),
            (d.arrivals + d.drain).as_secs_f64() * 1e6 / d.verdicts.max(1) as f64,
        )
    };
    format!(
        "Admission in one queue of {n} with maxRunning {limit} (no cluster)\n\n\
         | admission | verdicts | arrivals s | drain s | µs per verdict |\n| --- | ---: | ---: | ---: | ---: |\n{}{}",
        row("pass over every member (before)", &list),
        row("queue book (after)", &book),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ways_drain_the_whole_queue_with_the_same_verdicts() {
        let list = drain(&mut List, 60, 4);
        let book = drain(
            &mut Book {
                book: QueueBook::default(),
                line: LineId::of("bench", Some("q")),
                now: Timestamp::UNIX_EPOCH,
            },
            60,
            4,
        );
        assert_eq!(list.verdicts, book.verdicts);
        assert_eq!(
            list.verdicts,
            60 + 56,
            "one on arrival each, and one as a head for each not admitted on arrival"
        );
    }
}
