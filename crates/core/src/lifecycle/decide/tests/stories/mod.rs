//! Stories: scripted lives of one execution, one test each, one file per concern. Each story function returns the
//! worlds it built, so [`all`] hands every story to the whole-life checks.

use super::world::World;

/// A story: its label (`<module path>::<name>`) and the function that runs it.
pub type Story = (&'static str, fn() -> Vec<World>);

/// In a concern's file: one `#[test]` per story of `mod story`, and `STORIES`, the file's table for [`all`].
macro_rules! stories {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                story::$name();
            }
        )*

        /// Every story of this file, by name.
        pub const STORIES: &[super::Story] =
            &[$((concat!(module_path!(), "::", stringify!($name)), story::$name)),*];
    };
}

mod archive;
mod cache_lag;
mod cancel_pause;
mod cleanup;
mod happy;
mod launch;
mod queue;
mod restart;
mod resume;
mod retry;
mod spec_edits;
mod stall;
mod start;
mod timeout;

/// Every story of every concern.
pub fn all() -> impl Iterator<Item = Story> {
    [
        archive::STORIES,
        cache_lag::STORIES,
        cancel_pause::STORIES,
        cleanup::STORIES,
        happy::STORIES,
        launch::STORIES,
        queue::STORIES,
        restart::STORIES,
        resume::STORIES,
        retry::STORIES,
        spec_edits::STORIES,
        stall::STORIES,
        start::STORIES,
        timeout::STORIES,
    ]
    .into_iter()
    .flatten()
    .copied()
}

/// [`all`] covers every file of this folder (a concern left out would escape the whole-life checks), and no story
/// twice.
#[test]
fn all_covers_every_concern() {
    let folder =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lifecycle/decide/tests/stories");
    let mut files: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "rs"))
        .filter_map(|path| Some(path.file_stem()?.to_str()?.to_string()))
        .filter(|stem| stem != "mod")
        .collect();
    files.sort();
    let mut concerns: Vec<String> = all()
        .map(|(label, _)| label.rsplit("::").nth(1).unwrap().to_string())
        .collect();
    concerns.dedup();
    assert_eq!(concerns, files);
    let mut names: Vec<&str> = all().map(|(label, _)| label).collect();
    let count = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), count, "a story listed twice");
}
