//! Claims to roles: each rule grants a role when a claim equals a value or, for a list
//! claim such as `groups`, contains it. Evaluated afresh at every sign-in.

use serde_json::Value;

use super::RoleRule;

/// A claim name or dotted path: letters, digits and `_ - : . /` (so namespaced claims
/// such as `https://example.com/roles` and paths such as `realm_access.roles` both fit).
pub fn valid_claim_path(path: &str) -> bool {
    (1..=256).contains(&path.len())
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-:./".contains(&b))
}

/// A role name: 1-64 characters of `a-z 0-9 _ . : -`, starting with a letter.
pub fn valid_role_name(role: &str) -> bool {
    role.len() <= 64
        && role.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.:-".contains(&b))
}

/// The claim at `path`: the top-level claim of exactly that name if there is one (a
/// namespaced claim may contain dots), else the dotted path walked through objects.
pub fn claim<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut at = claims;
    for part in path.split('.') {
        at = at.get(part)?;
    }
    Some(at)
}

/// The claim at `path` as a string, if it is one.
pub fn claim_str<'a>(claims: &'a Value, path: &str) -> Option<&'a str> {
    claim(claims, path).and_then(Value::as_str)
}

fn matches(v: &Value, wanted: &str) -> bool {
    match v {
        Value::String(s) => s == wanted,
        Value::Array(items) => items.iter().any(|i| i.as_str() == Some(wanted)),
        Value::Bool(b) => wanted == if *b { "true" } else { "false" },
        Value::Number(n) => n.to_string() == wanted,
        _ => false,
    }
}

/// The roles the rules grant for these claims, in rule order, without duplicates.
pub fn map_roles(rules: &[RoleRule], claims: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for rule in rules {
        if claim(claims, &rule.claim).is_some_and(|v| matches(v, &rule.value))
            && !out.contains(&rule.role)
        {
            out.push(rule.role.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rule(claim: &str, value: &str, role: &str) -> RoleRule {
        RoleRule {
            claim: claim.into(),
            value: value.into(),
            role: role.into(),
        }
    }

    #[test]
    fn groups_map_to_roles() {
        let claims = json!({
            "groups": ["advisors", "aegis-admins"],
            "realm_access": {"roles": ["auditor"]},
            "https://example.com/tier": "gold",
            "hd": "example.com",
            "email_verified": true,
        });
        let rules = [
            rule("groups", "aegis-admins", "admin"),
            rule("groups", "advisors", "advisor"),
            rule("groups", "nobody", "ghost"),
            rule("realm_access.roles", "auditor", "auditor"),
            rule("https://example.com/tier", "gold", "gold"),
            rule("hd", "example.com", "staff"),
            rule("groups", "advisors", "advisor"),
            rule("email_verified", "true", "verified"),
            rule("missing.path", "x", "never"),
        ];
        assert_eq!(
            map_roles(&rules, &claims),
            ["admin", "advisor", "auditor", "gold", "staff", "verified"]
        );
        assert!(map_roles(&rules, &json!({})).is_empty());
    }

    #[test]
    fn names_and_paths() {
        assert!(valid_role_name("admin"));
        assert!(valid_role_name("app:reader"));
        assert!(!valid_role_name("Admin"));
        assert!(!valid_role_name("1st"));
        assert!(!valid_role_name(""));
        assert!(valid_claim_path("realm_access.roles"));
        assert!(valid_claim_path("https://example.com/roles"));
        assert!(!valid_claim_path("groups[0]"));
        assert!(!valid_claim_path(""));
    }
}
