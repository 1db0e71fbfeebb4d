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

/// Name of the ConfigMap carrying `crew.json` and `inputs.json`.
pub fn config_map_name(execution: &str) -> String {
    shorten(&format!("{execution}-crew"), MAX_OBJECT_NAME)
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
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:08x}", (hash ^ (hash >> 32)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn short_names_are_readable() {
        assert_eq!(job_name("report", "research", 1), "report-research-1");
        assert_eq!(job_name("report", "main", 12), "report-main-12");
        assert_eq!(config_map_name("report"), "report-crew");
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

    proptest! {
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
