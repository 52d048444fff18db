//! Governance policies: rules of the mesh written as SQL over `tessera_meta`, each returning
//! one row per violation. Global policies (the standard library that ships with Tessera, and
//! the governance council's) apply to every product; a domain's own apply to its products, and
//! may raise a global policy's severity for them but never lower it or switch it off.

use std::fmt;

/// How much a violation weighs. Ordered: `Off < Warn < Block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicySeverity {
    /// Not evaluated (a standard policy the council turned off).
    Off,
    /// Shown and stored; the product still publishes.
    Warn,
    /// Refuses the publish.
    Block,
}

impl PolicySeverity {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "off" => Some(Self::Off),
            "warn" => Some(Self::Warn),
            "block" => Some(Self::Block),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Warn => "warn",
            Self::Block => "block",
        }
    }
}

impl fmt::Display for PolicySeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One policy file (`kind: Policy`).
#[derive(Debug, Clone, PartialEq)]
pub struct GovernancePolicy {
    /// Lower-case words joined by `-`, unique in the mesh.
    pub id: String,
    pub description: String,
    pub severity: PolicySeverity,
    /// What a violation says, unless its row brings a `message` of its own.
    pub message: Option<String>,
    /// The rule: SQL over `tessera_meta` returning one row per violation, with the columns
    /// `domain`, `product` and `object` (and optionally `dataset`, `column_name`, `message`).
    /// `None` for a policy that only [`extends`](Self::extends) another.
    pub query: Option<String>,
    /// The id of a global policy whose severity this one raises (for a domain's products).
    pub extends: Option<String>,
    /// Why the rule exists (the standard library documents each of its policies).
    pub rationale: Option<String>,
}

/// The columns a policy's query must return, in any order.
pub const POLICY_REQUIRED_COLUMNS: [&str; 3] = ["domain", "product", "object"];
/// The columns a policy's query may also return: where the violation is, and its own message.
pub const POLICY_OPTIONAL_COLUMNS: [&str; 3] = ["dataset", "column_name", "message"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_from_off_to_block() {
        assert!(PolicySeverity::Off < PolicySeverity::Warn);
        assert!(PolicySeverity::Warn < PolicySeverity::Block);
        for s in [
            PolicySeverity::Off,
            PolicySeverity::Warn,
            PolicySeverity::Block,
        ] {
            assert_eq!(PolicySeverity::parse(s.as_str()), Some(s));
        }
        assert_eq!(PolicySeverity::parse("error"), None);
    }
}
