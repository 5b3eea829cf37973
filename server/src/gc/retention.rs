//! Retention (`gc.retention`): which tags a run deletes, per repository. The first policy
//! whose `repositories` match applies: the newest `keepLast` tags by push time (the time the
//! tag was written, so a moved tag counts as new) stay, and every tag matching `keepTags`,
//! and every immutable tag; the others go. What they pointed at is then collected as any
//! untagged content is.

use std::time::SystemTime;

use oci_storage_config::RetentionPolicy;

use super::inventory::{Inventory, Object};

/// A tag a policy deletes.
#[derive(Debug, Clone)]
pub struct Doomed {
    pub repository: String,
    pub tag: String,
    pub object: Object,
}

/// The first policy for `repository`.
pub fn policy_for<'a>(
    policies: &'a [RetentionPolicy],
    repository: &str,
) -> Option<&'a RetentionPolicy> {
    policies.iter().find(|p| p.applies_to(repository))
}

/// The tags the policies delete, by repository.
/// A tag written after `cutoff` (within `gc.delay`) is never deleted.
pub fn doomed_tags(
    policies: &[RetentionPolicy],
    inventory: &Inventory,
    immutable: &dyn Fn(&str) -> bool,
    cutoff: SystemTime,
) -> Vec<Doomed> {
    let mut doomed = Vec::new();
    for (repository, links) in &inventory.repositories {
        let Some(keep_last) =
            policy_for(policies, repository).and_then(|p| p.keep_last.map(|n| (p, n)))
        else {
            continue;
        };
        let (policy, keep_last) = keep_last;
        let mut tags: Vec<(&str, &Object)> = links
            .tags
            .iter()
            .filter_map(|o| Some((o.key.as_str().rsplit_once("/_tags/")?.1, o)))
            .collect();
        // Newest first; ties (same time) by name, so the choice is the same every run.
        tags.sort_by(|(a_name, a), (b_name, b)| {
            let time = |o: &Object| o.modified.unwrap_or(SystemTime::UNIX_EPOCH);
            time(b).cmp(&time(a)).then(a_name.cmp(b_name))
        });
        for (tag, object) in tags.into_iter().skip(keep_last as usize) {
            if policy.keeps_tag(tag) || immutable(tag) || !object.older_than(cutoff) {
                continue;
            }
            doomed.push(Doomed {
                repository: repository.clone(),
                tag: tag.to_owned(),
                object: object.clone(),
            });
        }
    }
    doomed
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use oci_storage_core::Key;

    use super::*;

    fn policy(yaml: &str) -> RetentionPolicy {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn tag(repo: &str, name: &str, age_secs: u64) -> Object {
        Object {
            key: Key::new(format!("repositories/{repo}/_tags/{name}")).unwrap(),
            size: 0,
            modified: Some(SystemTime::now() - Duration::from_secs(age_secs)),
            version: None,
        }
    }

    #[test]
    fn keeps_the_newest_the_matching_and_the_immutable() {
        let mut inventory = Inventory::default();
        let repo = inventory.repositories.entry("team/app".into()).or_default();
        for (name, age) in [
            ("v1", 50),
            ("v2", 40),
            ("dev-1", 30),
            ("dev-2", 20),
            ("dev-3", 10),
            ("frozen", 60),
            // The newest, and newer than gc.delay.
            ("dev-0", 1),
        ] {
            repo.tags.push(tag("team/app", name, age));
        }
        inventory
            .repositories
            .entry("other/app".into())
            .or_default()
            .tags
            .push(tag("other/app", "old", 1000));
        let policies = vec![
            policy("{repositories: [\"team/**\"], keepLast: 2, keepTags: [\"v*\"]}"),
            policy("{repositories: [\"**\"], untaggedOlderThan: 7d}"),
        ];
        let cutoff = SystemTime::now() - Duration::from_secs(5);
        let doomed: Vec<String> = doomed_tags(&policies, &inventory, &|t| t == "frozen", cutoff)
            .into_iter()
            .map(|d| format!("{}:{}", d.repository, d.tag))
            .collect();
        // dev-0 and dev-3 are the newest two, dev-2 the third; v1, v2 match keepTags; frozen
        // is immutable; other/app's policy has no keepLast.
        assert_eq!(doomed, vec!["team/app:dev-2", "team/app:dev-1"]);
    }
}
