//! Deterministic names and label values of the objects an execution owns.
//!
//! The same (execution, step, attempt) always gives the same Job name, so creating it again after a restart hits
//! `AlreadyExists` instead of making a second Job.

/// Longest name usable where Kubernetes puts the name into a label value (a Job's pods get `job-name=<job>`).
pub const MAX_LABEL_VALUE: usize = 63;
/// Longest object name (DNS subdomain).
pub const MAX_OBJECT_NAME: usize = 253;
const HASH_LEN: usize = 8;

/// Name of the Job of one step attempt: `<execution>-<step>-<attempt>`, shortened with a stable hash when longer
/// than 63 characters.
pub fn job_name(execution: &str, step: &str, attempt: u32) -> String {
    let suffix = format!("-{attempt}");
    shorten(
        &format!("{execution}-{step}"),
        MAX_LABEL_VALUE - suffix.len(),
    ) + &suffix
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
    let hash = fnv1a_64(&format!("{uid}/{entry_key}"));
    with_suffix(execution, &format!(".{hash:016x}"))
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

    proptest! {
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
