//! Authorization: which identity may do which action on which repository, from the `auth`
//! configuration (admins, rules with repository globs, anonymous access). Pure and
//! synchronous; the access gate calls it for every request.

use oci_storage_config::{AccessRule, AuthConfig, RuleAction};
use oci_storage_core::Identity;

use super::Action;

/// A rule with its patterns compiled.
#[derive(Debug)]
struct Rule {
    patterns: Vec<glob::Pattern>,
    actions: Vec<Action>,
    users: Vec<String>,
    groups: Vec<String>,
    anonymous: bool,
}

/// The compiled policy.
#[derive(Debug)]
pub struct Policy {
    anonymous_pull: bool,
    /// username → groups given by `auth.groups`.
    memberships: std::collections::HashMap<String, Vec<String>>,
    admin_users: Vec<String>,
    admin_groups: Vec<String>,
    rules: Vec<Rule>,
}

const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

fn action(a: RuleAction) -> Action {
    match a {
        RuleAction::Pull => Action::Pull,
        RuleAction::Push => Action::Push,
        RuleAction::Delete => Action::Delete,
    }
}

impl Policy {
    /// Compiles the policy; an invalid pattern is an error naming it.
    pub fn new(config: &AuthConfig) -> Result<Self, String> {
        let rules = config
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| compile(i, rule))
            .collect::<Result<Vec<_>, _>>()?;
        let (groups, users): (Vec<&String>, Vec<&String>) =
            config.admins.iter().partition(|a| a.starts_with('@'));
        let mut memberships: std::collections::HashMap<String, Vec<String>> = Default::default();
        for (group, members) in &config.groups {
            for member in members {
                memberships
                    .entry(member.clone())
                    .or_default()
                    .push(group.clone());
            }
        }
        Ok(Self {
            anonymous_pull: config.anonymous_pull,
            memberships,
            admin_users: users.into_iter().cloned().collect(),
            admin_groups: groups.into_iter().map(|g| g[1..].to_owned()).collect(),
            rules,
        })
    }

    /// Adds the groups that `auth.groups` gives the identity's user.
    pub fn add_memberships(&self, who: &mut Identity) {
        for group in self.memberships.get(&who.username).into_iter().flatten() {
            if !who.groups.contains(group) {
                who.groups.push(group.clone());
            }
        }
    }

    pub fn is_admin(&self, who: &Identity) -> bool {
        self.admin_users.contains(&who.username)
            || who.groups.iter().any(|g| self.admin_groups.contains(g))
    }

    /// Whether `who` (None: anonymous) may perform `action` on `repository`.
    pub fn allows(&self, who: Option<&Identity>, repository: &str, action: Action) -> bool {
        if let Some(who) = who
            && self.is_admin(who)
        {
            return true;
        }
        if action == Action::Pull && self.anonymous_pull {
            return true;
        }
        if who.is_some() && self.rules.is_empty() {
            return true;
        }
        self.rules.iter().any(|rule| {
            rule.actions.contains(&action)
                && applies_to(rule, who)
                && rule
                    .patterns
                    .iter()
                    .any(|p| p.matches_with(repository, MATCH))
        })
    }

    /// Whether anonymous callers may pull anything at all (then `/v2/` answers them 200).
    pub fn anonymous_may_pull_somewhere(&self) -> bool {
        self.anonymous_pull
            || self
                .rules
                .iter()
                .any(|r| r.anonymous && r.actions.contains(&Action::Pull))
    }
}

fn applies_to(rule: &Rule, who: Option<&Identity>) -> bool {
    rule.anonymous
        || who.is_some_and(|who| {
            rule.users.contains(&who.username) || who.groups.iter().any(|g| rule.groups.contains(g))
        })
}

fn compile(index: usize, rule: &AccessRule) -> Result<Rule, String> {
    let patterns = rule
        .repositories
        .iter()
        .map(|p| {
            glob::Pattern::new(p)
                .map_err(|e| format!("auth.rules[{index}].repositories: {p:?}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rule {
        patterns,
        actions: rule.actions.iter().copied().map(action).collect(),
        users: rule.users.clone(),
        groups: rule.groups.clone(),
        anonymous: rule.anonymous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(name: &str, groups: &[&str]) -> Identity {
        Identity {
            username: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn policy(yaml: &str) -> Policy {
        let config = oci_storage_config::parse(yaml, "test", Vec::new()).unwrap();
        Policy::new(&config.auth).unwrap()
    }

    #[test]
    fn without_rules_logged_in_users_may_do_everything() {
        let p = policy("auth: {users: []}");
        let alice = identity("alice", &[]);
        assert!(p.allows(Some(&alice), "any/repo", Action::Delete));
        assert!(!p.allows(None, "any/repo", Action::Pull));
    }

    #[test]
    fn rules_globs_groups_anonymous() {
        let p = policy(
            r#"
auth:
  admins: [root, "@ops"]
  rules:
    - {repositories: ["team-a/**"], actions: [pull, push], groups: [team-a]}
    - {repositories: ["public/*"], actions: [pull], anonymous: true}
    - {repositories: ["shared/*/charts"], actions: [pull], users: [bob]}
"#,
        );
        let alice = identity("alice", &["team-a"]);
        let bob = identity("bob", &[]);
        assert!(p.allows(Some(&alice), "team-a/x/y", Action::Push));
        assert!(!p.allows(Some(&alice), "team-a/x/y", Action::Delete));
        assert!(!p.allows(Some(&alice), "team-b/x", Action::Pull));
        assert!(!p.allows(Some(&bob), "team-a/x", Action::Pull));
        assert!(p.allows(Some(&bob), "shared/x/charts", Action::Pull));
        assert!(
            !p.allows(Some(&bob), "shared/x/y/charts", Action::Pull),
            "* stays in a segment"
        );
        assert!(p.allows(None, "public/img", Action::Pull));
        assert!(p.allows(Some(&bob), "public/img", Action::Pull));
        assert!(!p.allows(None, "public/img", Action::Push));
        assert!(!p.allows(None, "public/a/b", Action::Pull));
        assert!(p.anonymous_may_pull_somewhere());
        assert!(p.allows(Some(&identity("root", &[])), "x", Action::Delete));
        assert!(p.allows(Some(&identity("carol", &["ops"])), "x", Action::Delete));
    }

    #[test]
    fn invalid_pattern_is_named() {
        let config = oci_storage_config::parse(
            "auth: {rules: [{repositories: ['a/[b'], actions: [pull]}]}",
            "t",
            Vec::new(),
        )
        .unwrap();
        let err = Policy::new(&config.auth).unwrap_err();
        assert!(err.contains("auth.rules[0]"), "{err}");
    }
}
