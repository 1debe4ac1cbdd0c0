//! The strategy vocabulary the store, the API and the plans share: names that read back as
//! the same strategy, the built-in choice per category, and which strategies act.

use pipeguard_taxonomy::{Category, Strategy};

#[test]
fn every_stored_strategy_name_reads_back_as_itself() {
    for s in Strategy::ALL {
        assert_eq!(Strategy::parse(s.as_str()), Some(s), "{}", s.as_str());
    }
    for bogus in ["", "retry ", "Retry", "rerun"] {
        assert_eq!(Strategy::parse(bogus), None, "{bogus:?}");
    }
}

#[test]
fn the_built_in_strategy_follows_the_category() {
    for (category, want) in [
        (Category::Network, Strategy::Retry),
        (Category::FlakyTest, Strategy::Retry),
        (Category::OutOfMemory, Strategy::ScaleResources),
        (Category::DiskFull, Strategy::ScaleResources),
        (Category::CacheCorruption, Strategy::ClearCache),
        (Category::MissingPackage, Strategy::HealHost),
        // A cancelled run was stopped on purpose: nothing to do, and nobody to call.
        (Category::Cancelled, Strategy::None),
        (Category::TestFailure, Strategy::Escalate),
        (Category::Unknown, Strategy::Escalate),
    ] {
        assert_eq!(Strategy::default_for(category), want, "{category}");
    }
}

#[test]
fn only_strategies_that_change_something_act() {
    let acting: Vec<&str> = Strategy::ALL
        .iter()
        .filter(|s| s.acts())
        .map(|s| s.as_str())
        .collect();
    assert_eq!(
        acting,
        [
            "retry",
            "scale_resources",
            "clear_cache",
            "reset_environment",
            "heal_host"
        ]
    );
}
