//! Deterministic names and label values of the objects an execution owns.
//!
//! The same (execution, step, attempt) always gives the same Job name, so creating it again after a restart hits
//! `AlreadyExists` instead of making a second Job. Every execution name Kubernetes accepts (up to 253 characters)
//! and every step name (a DNS label, up to 63) gives valid child names: a name that fits is used as it is, one that
//! does not is cut and given a stable hash of everything it was made from.

/// Longest name usable where Kubernetes puts the name into a label value (a Job's pods get `job-name=<job>`).
pub const MAX_LABEL_VALUE: usize = 63;
/// Longest object name (DNS subdomain).
pub const MAX_OBJECT_NAME: usize = 253;
/// Longest `generateName` the API server keeps whole: it appends 5 random characters and cuts a longer prefix to
/// this length.
pub const MAX_GENERATE_NAME: usize = 58;
const HASH_LEN: usize = 8;

/// Name of the Job of one step attempt: `<execution>-<step>-<attempt>` when that fits in 63 characters (a Job's
/// pods carry its name as a label value). Otherwise `<execution cut>-<step cut>-<hash>-<attempt>`: both names are
/// cut (the step keeps at least half of the room when it is that long) and the hash is 10 hex digits of the
/// (execution, step, attempt) tuple itself, not of the joined text, so `a` + step `b-c` and `a-b` + step `c` get
/// different names once shortened. (Short names are kept byte for byte, as Jobs already running are named: two
/// executions whose short names join to the same text still meet, and `AlreadyExists` with another owner fails
/// that attempt, see the operator's `create_job`.)
pub fn job_name(execution: &str, step: &str, attempt: u32) -> String {
    let suffix = format!("-{attempt}");
    let full = format!("{execution}-{step}{suffix}");
    if full.len() <= MAX_LABEL_VALUE {
        return full;
    }
    let hash = format!("-{}", tuple_hash(execution, step, attempt));
    // At least 63 - 11 - 11 = 41 characters are left, even for the largest attempt number.
    let room = MAX_LABEL_VALUE.saturating_sub(suffix.len() + hash.len());
    let (execution_room, step_room) = share_room(execution.len(), step.len(), room);
    let parts: Vec<&str> = [cut(execution, execution_room), cut(step, step_room)]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect();
    format!("{}{hash}{suffix}", parts.join("-"))
}

/// How many characters of the execution name and of the step name a shortened Job name keeps, in `room`
/// characters that also hold the `-` between them: the step gets what the execution leaves, and at least half.
fn share_room(execution: usize, step: usize, room: usize) -> (usize, usize) {
    let room = room.saturating_sub(1);
    let step_room = step.min((room / 2).max(room.saturating_sub(execution)));
    (execution.min(room - step_room), step_room)
}

/// 10 hex digits (40 bits) of an FNV-1a 64 hash of (execution, step, attempt), each part length-prefixed so that no
/// two tuples share an encoding.
fn tuple_hash(execution: &str, step: &str, attempt: u32) -> String {
    let encoded = format!(
        "{}:{execution}{}:{step}{attempt}",
        execution.len(),
        step.len()
    );
    let hash = fnv1a_64(&encoded);
    format!("{:010x}", (hash ^ (hash >> 40)) & 0xff_ffff_ffff)
}

/// The longest prefix of `text` of at most `max` bytes (whole characters only), without trailing `-` or `.`, so
/// that whatever follows a separator starts a new part.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim_end_matches(['-', '.'])
}

/// The `generateName` of a new object named after `base` (a rerun): `<base>-` when the API server, which adds 5
/// random characters, keeps it whole; else the base shortened with a hash of the whole of it (so reruns of two long
/// names with the same beginning stay told apart), then `-`. The generated name is at most 63 characters and keeps
/// its `-` before the random characters.
pub fn generate_name(base: &str) -> String {
    if base.len() < MAX_GENERATE_NAME {
        format!("{base}-")
    } else {
        format!("{}-", shorten(base, MAX_GENERATE_NAME - 1))
    }
}

/// Name of the ConfigMap carrying `crew.json` and `inputs.json`: `<execution>-crew-<hash of its UID>`. The UID
/// keeps each execution to its own inputs: an earlier execution of the same name whose ConfigMap is still
/// awaiting garbage collection, or anyone's ConfigMap called `<execution>-crew`, is never mounted instead
/// (review finding 9), so `AlreadyExists` on create can only be this execution's own earlier create.
pub fn config_map_name(execution: &str, uid: &str) -> String {
    let suffix = format!("-{}", stable_hash(uid));
    shorten(&format!("{execution}-crew"), MAX_OBJECT_NAME - suffix.len()) + &suffix
}

/// A label value naming an execution: the name itself when it fits, else a shortened, hashed form.
pub fn label_value(name: &str) -> String {
    shorten(name, MAX_LABEL_VALUE)
}

/// `text` if it fits in `max` characters; otherwise a prefix, `-`, and an 8-character hash of the whole text.
/// The result starts and ends with an alphanumeric character whenever `text` does.
pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(HASH_LEN + 1);
    let prefix: String = text.chars().take(keep).collect();
    let prefix = prefix.trim_end_matches(['-', '.']);
    format!("{prefix}-{}", stable_hash(text))
}

/// FNV-1a 64 of `text`, as 8 lower-case hex digits (stable across versions and platforms).
pub fn stable_hash(text: &str) -> String {
    let hash = fnv1a_64(text);
    format!("{:08x}", (hash ^ (hash >> 32)) as u32)
}

/// FNV-1a 64 (stable across versions and platforms, unlike the standard library's hashers).
fn fnv1a_64(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Name of the Event recording one history entry of an execution: `<execution>.<16 hex digits>`, the digits a
/// stable 64-bit hash of the execution's UID and the entry's [`entry_key`](crate::lifecycle::history::entry_key).
/// The same entry always gets the same name, so an Event created again (after a crash between the status write
/// and the Event) hits `AlreadyExists` instead of making a duplicate. The execution name is cut so that the whole
/// fits in 253 characters, for every legal execution name.
pub fn event_name(execution: &str, uid: &str, entry_key: &str) -> String {
    with_suffix(execution, &format!(".{}", entry_digest(uid, entry_key)))
}

/// A stable 16-hex-digit digest of one history entry of one execution (its UID and the entry's
/// [`entry_key`](crate::lifecycle::history::entry_key)): the suffix of the entry's Kubernetes Event and of its
/// CloudEvent id, so both name the same transition.
pub fn entry_digest(uid: &str, entry_key: &str) -> String {
    format!("{:016x}", fnv1a_64(&format!("{uid}/{entry_key}")))
}

/// Name of an Event that records no history entry (a warning about the spec): `<execution>.<hex nanoseconds>`,
/// cut like [`event_name`].
pub fn event_name_at(execution: &str, nanoseconds: i128) -> String {
    with_suffix(execution, &format!(".{nanoseconds:x}"))
}

/// `prefix` + `suffix` within [`MAX_OBJECT_NAME`]: the prefix cut as needed, never ending in `-` or `.`.
fn with_suffix(prefix: &str, suffix: &str) -> String {
    let keep = MAX_OBJECT_NAME.saturating_sub(suffix.len());
    let prefix: String = prefix.chars().take(keep).collect();
    format!("{}{suffix}", prefix.trim_end_matches(['-', '.']))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_names_are_readable() {
        assert_eq!(job_name("report", "research", 1), "report-research-1");
        assert_eq!(job_name("report", "main", 12), "report-main-12");
        assert_eq!(
            config_map_name("report", "uid-1"),
            format!("report-crew-{}", stable_hash("uid-1"))
        );
        assert_ne!(
            config_map_name("report", "uid-1"),
            config_map_name("report", "uid-2")
        );
        assert!(config_map_name(&"r".repeat(253), "uid-1").len() <= MAX_OBJECT_NAME);
    }

    #[test]
    fn long_names_are_shortened_with_a_stable_hash() {
        let exec = "a".repeat(200);
        let name = job_name(&exec, "write-the-final-report", 3);
        assert!(name.len() <= 63, "{name}");
        assert!(name.ends_with("-3"));
        assert_eq!(name, job_name(&exec, "write-the-final-report", 3));
        assert_ne!(name, job_name(&exec, "write-the-final-repora", 3));
        assert_ne!(name, job_name(&exec, "write-the-final-report", 4));
    }

    #[test]
    fn exactly_63_is_kept() {
        let exec = "e".repeat(63 - "-s-1".len());
        assert_eq!(job_name(&exec, "s", 1).len(), 63);
        assert_eq!(job_name(&exec, "s", 1), format!("{exec}-s-1"));
    }

    const PINNED_CREW_HASH: &str = "9ec47128";
    const PINNED_LONG_HASH: &str = "fe90c53efe";

    #[test]
    fn hash_is_pinned() {
        // Changing the hash would rename live Jobs after an upgrade: pin it.
        assert_eq!(stable_hash("crew"), PINNED_CREW_HASH);
        assert_eq!(
            shorten(&"x".repeat(70), 63),
            format!("{}-{}", "x".repeat(54), stable_hash(&"x".repeat(70)))
        );
    }

    #[test]
    fn event_names_are_stable_distinct_and_fit_every_legal_name() {
        let name = event_name("hello", "u1", "10|Running|Succeeded|StepSucceeded|main|");
        assert_eq!(
            name,
            event_name("hello", "u1", "10|Running|Succeeded|StepSucceeded|main|")
        );
        assert!(
            name.starts_with("hello.") && name.len() == "hello.".len() + 16,
            "{name}"
        );
        assert_ne!(
            name,
            event_name("hello", "u2", "10|Running|Succeeded|StepSucceeded|main|")
        );
        assert_ne!(
            name,
            event_name("hello", "u1", "11|Running|Succeeded|StepSucceeded|main|")
        );
        // A 253-character execution name (the longest legal one) still gives a valid Event name.
        let longest = format!("{}-{}", "a".repeat(236), "b".repeat(16));
        for name in [
            event_name(&longest, "u1", "k"),
            event_name_at(&longest, 1_700_000_000_123_456_789),
        ] {
            assert!(name.len() <= MAX_OBJECT_NAME, "{}", name.len());
            assert!(!name.contains("-."), "{name}");
        }
        assert_eq!(event_name_at("hello", 255), "hello.ff");
    }

    /// A DNS subdomain (RFC 1123): at most 253 characters, dot-separated labels of `a-z`, `0-9` and `-`, each
    /// starting and ending alphanumeric.
    fn is_dns_subdomain(name: &str) -> bool {
        name.len() <= MAX_OBJECT_NAME
            && name.split('.').all(|label| {
                label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && label.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && label.ends_with(|c: char| c.is_ascii_alphanumeric())
            })
    }

    /// A label value: at most 63 characters of `A-Za-z0-9`, `-`, `_`, `.`, starting and ending alphanumeric.
    fn is_label_value(value: &str) -> bool {
        value.is_empty()
            || (value.len() <= MAX_LABEL_VALUE
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                && value.starts_with(|c: char| c.is_ascii_alphanumeric())
                && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
    }

    /// Every execution name Kubernetes accepts: a DNS subdomain of 1 to 253 characters, long ones as likely as
    /// short ones, with and without dots.
    fn execution_name() -> impl Strategy<Value = String> {
        let label = "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?";
        prop_oneof![
            "[a-z0-9]([-a-z0-9]{0,251}[a-z0-9])?",
            prop::collection::vec(label, 1..8)
                .prop_map(|labels| { cut(&labels.join("."), MAX_OBJECT_NAME).to_string() }),
            "[a-z0-9]{1,20}",
        ]
    }

    /// Every step name the schema accepts: a DNS label.
    fn step_name() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", "[a-z0-9]{1,10}"]
    }

    fn attempt() -> impl Strategy<Value = u32> {
        prop_oneof![1u32..=101, any::<u32>()]
    }

    #[test]
    fn the_longest_names_give_valid_job_names() {
        let execution = format!("{}.{}", "e".repeat(126), "x".repeat(126));
        let step = "s".repeat(63);
        for attempt in [1, 2, 101, u32::MAX] {
            let name = job_name(&execution, &step, attempt);
            assert!(name.len() <= MAX_LABEL_VALUE, "{name}");
            assert!(is_dns_subdomain(&name) && is_label_value(&name), "{name}");
            assert!(name.ends_with(&format!("-{attempt}")), "{name}");
            assert!(name.contains("-sss"), "the step stays readable: {name}");
        }
    }

    #[test]
    fn shortened_job_names_hash_the_tuple_not_the_joined_text() {
        // `<a>` + step `b-c` and `<a>-b` + step `c` join to the same text.
        let a = "a".repeat(60);
        let first = job_name(&a, "b-c", 1);
        let second = job_name(&format!("{a}-b"), "c", 1);
        assert_ne!(first, second);
        // The same with both names at their longest.
        let a = "a".repeat(251);
        let step = format!("c-{}", "d".repeat(61));
        let first = job_name(&a, &step, 7);
        let second = job_name(&format!("{a}-c"), &"d".repeat(61), 7);
        assert_ne!(first, second);
        // Long executions sharing a long prefix, or only their last character, stay apart.
        let prefix = "shared-prefix-".repeat(17);
        assert_ne!(
            job_name(&format!("{prefix}a"), "main", 1),
            job_name(&format!("{prefix}b"), "main", 1)
        );
    }

    #[test]
    fn a_shortened_job_name_is_pinned() {
        // A change would rename the Jobs of long executions after an upgrade, and a restarted operator would start
        // a second Job for the running attempt: pin it.
        assert_eq!(
            job_name(&"a".repeat(200), "write-the-final-report", 3),
            format!(
                "{}-write-the-final-report-{PINNED_LONG_HASH}-3",
                "a".repeat(27)
            )
        );
    }

    #[test]
    fn generated_names_keep_their_separator_and_fit() {
        assert_eq!(generate_name("nightly"), "nightly-");
        assert_eq!(
            generate_name(&"n".repeat(57)),
            format!("{}-", "n".repeat(57))
        );
        let long = generate_name(&"n".repeat(253));
        assert_eq!(long.len(), MAX_GENERATE_NAME);
        assert!(
            long.starts_with(&"n".repeat(48)) && long.ends_with('-'),
            "{long}"
        );
        assert_ne!(
            long,
            generate_name(&format!("{}m", "n".repeat(252))),
            "two long names sharing a beginning stay told apart"
        );
        // A cut never leaves `.-` or `--` before the hash or the random characters.
        let dotted = format!("{}.{}", "a".repeat(47), "b".repeat(100));
        let prefix = generate_name(&dotted);
        assert!(
            prefix.starts_with(&format!("{}-", "a".repeat(47))),
            "{prefix}"
        );
        assert!(!prefix.contains(".-") && !prefix.contains("--"), "{prefix}");
    }

    proptest! {
        #[test]
        fn every_child_name_is_valid_deterministic_and_kept_when_short(
            exec in execution_name(),
            step in step_name(),
            attempt in attempt(),
        ) {
            prop_assert!(is_dns_subdomain(&exec), "strategy: {}", exec);
            let job = job_name(&exec, &step, attempt);
            prop_assert!(job.len() <= MAX_LABEL_VALUE, "{}", job);
            prop_assert!(is_dns_subdomain(&job) && is_label_value(&job), "{}", job);
            prop_assert!(job.ends_with(&format!("-{attempt}")), "{}", job);
            prop_assert_eq!(&job, &job_name(&exec, &step, attempt));
            let joined = format!("{exec}-{step}-{attempt}");
            if joined.len() <= MAX_LABEL_VALUE {
                prop_assert_eq!(&job, &joined);
            } else {
                prop_assert!(job.contains(&tuple_hash(&exec, &step, attempt)), "{}", job);
            }

            let label = label_value(&exec);
            prop_assert!(is_label_value(&label) && !label.is_empty(), "{}", label);
            prop_assert_eq!(&label, &label_value(&exec));
            if exec.len() <= MAX_LABEL_VALUE {
                prop_assert_eq!(&label, &exec);
            }

            let config_map = config_map_name(&exec, "8d1f7d3c-uid");
            prop_assert!(is_dns_subdomain(&config_map), "{}", config_map);
            prop_assert_eq!(&config_map, &config_map_name(&exec, "8d1f7d3c-uid"));
            if exec.len() + "-crew-".len() + HASH_LEN <= MAX_OBJECT_NAME {
                prop_assert_eq!(&config_map, &format!("{exec}-crew-{}", stable_hash("8d1f7d3c-uid")));
            }

            for event in [event_name(&exec, "uid", "key"), event_name_at(&exec, 1_700_000_000_123_456_789)] {
                prop_assert!(is_dns_subdomain(&event), "{}", event);
            }

            let prefix = generate_name(&exec);
            prop_assert!(prefix.len() <= MAX_GENERATE_NAME, "{}", prefix);
            let generated = format!("{prefix}x7k2q");
            prop_assert!(is_dns_subdomain(&generated) && is_label_value(&generated), "{}", generated);
            if exec.len() < MAX_GENERATE_NAME {
                prop_assert_eq!(prefix, format!("{exec}-"));
            }
        }

        #[test]
        fn distinct_tuples_get_distinct_job_names(
            first in (execution_name(), step_name(), attempt()),
            second in (execution_name(), step_name(), attempt()),
        ) {
            prop_assume!(first != second);
            let joined = |(e, s, a): &(String, String, u32)| format!("{e}-{s}-{a}");
            // Short names are kept as they always were, so two tuples that join to one short text share it.
            prop_assume!(joined(&first) != joined(&second) || joined(&first).len() > MAX_LABEL_VALUE);
            prop_assert_ne!(
                job_name(&first.0, &first.1, first.2),
                job_name(&second.0, &second.1, second.2)
            );
        }

        #[test]
        fn moving_a_dash_between_execution_and_step_changes_a_long_name(
            exec in "[a-z0-9]([-a-z0-9]{60,200}[a-z0-9])",
            head in "[a-z0-9]{1,20}",
            tail in "[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?",
            attempt in attempt(),
        ) {
            // (`<exec>`, `<head>-<tail>`) and (`<exec>-<head>`, `<tail>`) join to the same text.
            prop_assert_ne!(
                job_name(&exec, &format!("{head}-{tail}"), attempt),
                job_name(&format!("{exec}-{head}"), &tail, attempt)
            );
        }

        #[test]
        fn steps_and_attempts_of_one_long_execution_never_share_a_name(
            exec in "[a-z0-9]([-a-z0-9]{60,251}[a-z0-9])",
            steps in prop::collection::btree_set("[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", 2..8),
        ) {
            let mut seen = std::collections::BTreeSet::new();
            for step in &steps {
                for attempt in 1..=5 {
                    prop_assert!(seen.insert(job_name(&exec, step, attempt)));
                }
            }
        }

        #[test]
        fn event_names_are_dns_subdomains(exec in "[a-z0-9]([-a-z0-9]{0,60}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,60}[a-z0-9])?){0,4}", key in ".{0,40}") {
            let name = event_name(&exec, "uid", &key);
            prop_assert!(name.len() <= MAX_OBJECT_NAME);
            prop_assert!(name.split('.').all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-')), "{}", name);
        }

        #[test]
        fn job_names_are_valid_dns_labels(exec in "[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?){0,5}", step in "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", attempt in 1u32..10_000) {
            let name = job_name(&exec, &step, attempt);
            prop_assert!(name.len() <= 63);
            prop_assert!(name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()));
            let suffix = format!("-{}", attempt);
            prop_assert!(name.ends_with(&suffix));
            prop_assert!(!name.contains("-.") && !name.contains(".-"));
        }

        #[test]
        fn distinct_attempts_never_share_a_name(exec in "[a-z]{1,200}", step in "[a-z]{1,63}", a in 1u32..1000, b in 1u32..1000) {
            prop_assume!(a != b);
            prop_assert_ne!(job_name(&exec, &step, a), job_name(&exec, &step, b));
        }
    }
}
