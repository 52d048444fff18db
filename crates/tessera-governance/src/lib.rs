//! Who may do what, decided by Cedar policies (the `cedar-policy` crate).
//!
//! An [`AccessModel`] is built from what the metadata store knows — users and their groups and
//! teams, products with their owner team, datasets and grants — as Cedar *entity data*, plus
//! the policies: the defaults that ship with Tessera ([`DEFAULT_POLICIES`]) and those admins
//! add. Grants are attributes of the product entities (`readers`), not one policy per grant, so
//! a decision costs the same with ten grants or ten thousand. [`AccessModel::decide`] answers
//! allow or deny and names the policies that decided.
//!
//! Entity types: `User` (parents: its `Group`s and `Team`s), `Group`, `Team`, `System`,
//! `Platform` (the one `Platform::"tessera"`), `Domain` (attribute `owners`: the owner teams of
//! its products), `Product` (parent: its domain; attributes `owner`, a team, and `readers`, a
//! set of users, groups and teams), `Dataset` (parent: its product; the product's attributes).
//! Actions: see [`Action`].
//!
//! It also holds the governance policies that ship with Tessera ([`STANDARD_POLICIES`]: SQL
//! over `tessera_meta`, evaluated by the service layer) and the name of the group whose members
//! write global ones ([`GOVERNANCE_COUNCIL_GROUP`]).
//!
//! This crate does no IO and is not async: the service layer loads the facts, builds the model
//! when they change, and asks it.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, PolicyId, PolicySet, Request, RestrictedExpression,
};
use tessera_core::{Principal, PrincipalKind};

/// The policies that ship with Tessera, as Cedar text: everyone discovers every product; a
/// product's owner team manages, ingests, publishes, reads it (personal data included) and
/// approves requests for it; a grant lets its grantee read; platform admins and Tessera's own
/// system principals do everything.
pub const DEFAULT_POLICIES: &str = include_str!("default_policies.cedar");

/// The standard library of governance policies, on by default (the governance council may turn
/// one off for the whole mesh): `(file name, policy file text)`, each a `kind: Policy` file
/// with its rationale.
pub const STANDARD_POLICIES: &[(&str, &str)] = &[
    (
        "snake-case-names.yaml",
        include_str!("../standard/snake-case-names.yaml"),
    ),
    (
        "product-owner.yaml",
        include_str!("../standard/product-owner.yaml"),
    ),
    (
        "support-channel.yaml",
        include_str!("../standard/support-channel.yaml"),
    ),
    (
        "described-products-and-datasets.yaml",
        include_str!("../standard/described-products-and-datasets.yaml"),
    ),
    (
        "described-columns.yaml",
        include_str!("../standard/described-columns.yaml"),
    ),
    (
        "personal-data-classified.yaml",
        include_str!("../standard/personal-data-classified.yaml"),
    ),
    (
        "freshness-slo.yaml",
        include_str!("../standard/freshness-slo.yaml"),
    ),
    (
        "personal-data-retention.yaml",
        include_str!("../standard/personal-data-retention.yaml"),
    ),
    (
        "sample-queries.yaml",
        include_str!("../standard/sample-queries.yaml"),
    ),
];

/// Members of this group apply global governance policies and switch standard ones on and off
/// (admins may too).
pub const GOVERNANCE_COUNCIL_GROUP: &str = "governance council";

/// What a principal may do to a domain, product or dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// See that it exists, with its description and schema.
    Discover,
    /// Query its data (personal data masked without `ReadPii`).
    Read,
    /// See its personal data unmasked.
    ReadPii,
    /// Load data into it.
    Ingest,
    /// Apply its product folder.
    Publish,
    /// Change who may use it.
    Manage,
    /// Decide access requests for it.
    Approve,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Discover,
        Action::Read,
        Action::ReadPii,
        Action::Ingest,
        Action::Publish,
        Action::Manage,
        Action::Approve,
    ];

    /// The action's name in policies and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Discover => "discover",
            Action::Read => "read",
            Action::ReadPii => "read_pii",
            Action::Ingest => "ingest",
            Action::Publish => "publish",
            Action::Manage => "manage",
            Action::Approve => "approve",
        }
    }
}

impl FromStr for Action {
    type Err = GovernanceError;

    fn from_str(s: &str) -> Result<Self> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                GovernanceError::Invalid(format!(
                    "unknown action {s:?}: one of discover, read, read_pii, ingest, publish, manage, approve"
                ))
            })
    }
}

/// What an action is done to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resource {
    /// The platform itself: `manage` on it is administering tokens and policies.
    Platform,
    Domain(String),
    Product {
        domain: String,
        product: String,
    },
    Dataset {
        domain: String,
        product: String,
        dataset: String,
    },
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Resource::Platform => f.write_str("the platform"),
            Resource::Domain(d) => write!(f, "domain {d}"),
            Resource::Product { domain, product } => write!(f, "product {domain}.{product}"),
            Resource::Dataset {
                domain,
                product,
                dataset,
            } => write!(f, "dataset {domain}.{product}.{dataset}"),
        }
    }
}

impl FromStr for Resource {
    type Err = GovernanceError;

    /// `platform`, `DOMAIN`, `DOMAIN.PRODUCT` or `DOMAIN.PRODUCT.DATASET`.
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('.').collect();
        if parts.iter().any(|p| p.trim().is_empty()) {
            return Err(GovernanceError::Invalid(format!(
                "{s:?} is not a resource: write platform, DOMAIN, DOMAIN.PRODUCT or DOMAIN.PRODUCT.DATASET"
            )));
        }
        Ok(match parts.as_slice() {
            ["platform"] => Resource::Platform,
            [d] => Resource::Domain(d.to_string()),
            [d, p] => Resource::Product {
                domain: d.to_string(),
                product: p.to_string(),
            },
            [d, p, ds] => Resource::Dataset {
                domain: d.to_string(),
                product: p.to_string(),
                dataset: ds.to_string(),
            },
            _ => {
                return Err(GovernanceError::Invalid(format!(
                    "{s:?} is not a resource: write platform, DOMAIN, DOMAIN.PRODUCT or DOMAIN.PRODUCT.DATASET"
                )));
            }
        })
    }
}

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Grantee {
    User(String),
    Group(String),
    Team(String),
}

/// A user and what it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFacts {
    pub name: String,
    pub groups: Vec<String>,
    pub teams: Vec<String>,
}

/// A published product: its owner team, its datasets, and who holds an active read grant —
/// for every row (`readers`) or only the rows a row filter keeps (`filtered_readers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductFacts {
    pub domain: String,
    pub product: String,
    pub owner_team: Option<String>,
    pub datasets: Vec<String>,
    pub readers: Vec<Grantee>,
    pub filtered_readers: Vec<Grantee>,
}

/// The policy that lets the holder of a row-filtered grant read: a decision that only it
/// allowed is a read of the filtered rows.
pub const FILTERED_READ_POLICY: &str = "granted-read-filtered";

/// An admin's policy: an id and its Cedar text (one or more policies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyText {
    pub id: String,
    pub text: String,
}

/// Allow or deny, and the policies that decided (the permits that allowed, or the forbids that
/// denied; none when nothing permitted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub policies: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    /// A policy that does not parse, an unknown action: the caller's fault.
    #[error("{0}")]
    Invalid(String),
    /// A bug in Tessera (entity data that Cedar refuses).
    #[error("internal error (this is a bug in Tessera): {0}")]
    Internal(String),
}

pub type Result<T, E = GovernanceError> = std::result::Result<T, E>;

/// Policies and entity data, ready to decide.
pub struct AccessModel {
    policies: PolicySet,
    entities: Entities,
    authorizer: Authorizer,
}

/// The id of the one `Platform` entity.
const PLATFORM: &str = "tessera";

fn uid(kind: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(
        EntityTypeName::from_str(kind).expect("Tessera's entity type names parse"),
        EntityId::new(id),
    )
}

fn product_id(domain: &str, product: &str) -> String {
    format!("{domain}.{product}")
}

fn grantee_uid(g: &Grantee) -> EntityUid {
    match g {
        Grantee::User(n) => uid("User", n),
        Grantee::Group(n) => uid("Group", n),
        Grantee::Team(n) => uid("Team", n),
    }
}

/// Parses Cedar text into policies whose ids are `SOURCE:N`, or the `@id("…")` annotation a
/// policy carries, so a decision names them.
fn parse_policies(source: &str, text: &str, into: &mut PolicySet) -> Result<()> {
    let parsed = PolicySet::from_str(text).map_err(|e| {
        GovernanceError::Invalid(format!("policy {source:?} is not valid Cedar: {e}"))
    })?;
    if parsed.templates().next().is_some() {
        return Err(GovernanceError::Invalid(format!(
            "policy {source:?} holds a template; Tessera takes static policies only"
        )));
    }
    for (n, policy) in parsed.policies().enumerate() {
        let id = match policy.annotation("id") {
            Some(named) => named.to_string(),
            None => format!("{source}:{n}"),
        };
        into.add(policy.new_id(PolicyId::new(&id)))
            .map_err(|e| GovernanceError::Invalid(format!("policy {source:?}: {e}")))?;
    }
    Ok(())
}

impl AccessModel {
    /// The model of a mesh: its users, products and grants, under the default policies and
    /// `extra` (an admin's).
    pub fn new(
        users: &[UserFacts],
        products: &[ProductFacts],
        extra: &[PolicyText],
    ) -> Result<Self> {
        let mut policies = PolicySet::new();
        parse_policies("tessera-defaults", DEFAULT_POLICIES, &mut policies)?;
        for p in extra {
            parse_policies(&p.id, &p.text, &mut policies)?;
        }
        let mut entities = Vec::new();
        let mut containers: HashSet<EntityUid> = HashSet::new();
        for user in users {
            let parents: HashSet<EntityUid> = user
                .groups
                .iter()
                .map(|g| uid("Group", g))
                .chain(user.teams.iter().map(|t| uid("Team", t)))
                .collect();
            containers.extend(parents.iter().cloned());
            entities.push(Entity::new_no_attrs(uid("User", &user.name), parents));
        }
        // Each domain's owner teams: those of its products.
        let mut domains: HashMap<String, HashSet<EntityUid>> = HashMap::new();
        for p in products {
            let attrs = |p: &ProductFacts| {
                let set = |grantees: &[Grantee]| {
                    RestrictedExpression::new_set(
                        grantees
                            .iter()
                            .map(|g| RestrictedExpression::new_entity_uid(grantee_uid(g))),
                    )
                };
                let mut attrs = HashMap::from([
                    ("readers".to_string(), set(&p.readers)),
                    ("filtered_readers".to_string(), set(&p.filtered_readers)),
                ]);
                if let Some(owner) = &p.owner_team {
                    attrs.insert(
                        "owner".to_string(),
                        RestrictedExpression::new_entity_uid(uid("Team", owner)),
                    );
                }
                attrs
            };
            let product = uid("Product", &product_id(&p.domain, &p.product));
            let owners = domains.entry(p.domain.clone()).or_default();
            if let Some(owner) = &p.owner_team {
                owners.insert(uid("Team", owner));
            }
            let entity = Entity::new(
                product.clone(),
                attrs(p),
                HashSet::from([uid("Domain", &p.domain)]),
            )
            .map_err(|e| GovernanceError::Internal(e.to_string()))?;
            entities.push(entity);
            for dataset in &p.datasets {
                let id = format!("{}.{dataset}", product_id(&p.domain, &p.product));
                let entity = Entity::new(
                    uid("Dataset", &id),
                    attrs(p),
                    HashSet::from([product.clone()]),
                )
                .map_err(|e| GovernanceError::Internal(e.to_string()))?;
                entities.push(entity);
            }
        }
        for (domain, owners) in domains {
            let owners = RestrictedExpression::new_set(
                owners.into_iter().map(RestrictedExpression::new_entity_uid),
            );
            let entity = Entity::new(
                uid("Domain", &domain),
                HashMap::from([("owners".to_string(), owners)]),
                HashSet::new(),
            )
            .map_err(|e| GovernanceError::Internal(e.to_string()))?;
            entities.push(entity);
        }
        entities.push(Entity::new_no_attrs(
            uid("Platform", PLATFORM),
            HashSet::new(),
        ));
        for container in containers {
            entities.push(Entity::new_no_attrs(container, HashSet::new()));
        }
        let entities = Entities::from_entities(entities, None)
            .map_err(|e| GovernanceError::Internal(e.to_string()))?;
        Ok(Self {
            policies,
            entities,
            authorizer: Authorizer::new(),
        })
    }

    /// Whether `principal` may do `action` to `resource`, and which policies said so.
    pub fn decide(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource,
    ) -> Result<Decision> {
        let principal = match principal.kind {
            PrincipalKind::User => uid("User", &principal.name),
            PrincipalKind::Team => uid("Team", &principal.name),
            PrincipalKind::System => uid("System", &principal.name),
        };
        let resource = match resource {
            Resource::Platform => uid("Platform", PLATFORM),
            Resource::Domain(d) => uid("Domain", d),
            Resource::Product { domain, product } => uid("Product", &product_id(domain, product)),
            Resource::Dataset {
                domain,
                product,
                dataset,
            } => uid(
                "Dataset",
                &format!("{}.{dataset}", product_id(domain, product)),
            ),
        };
        let request = Request::new(
            principal,
            uid("Action", action.as_str()),
            resource,
            Context::empty(),
            None,
        )
        .map_err(|e| GovernanceError::Internal(e.to_string()))?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &self.entities);
        let mut policies: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        policies.sort();
        Ok(Decision {
            allowed: response.decision() == CedarDecision::Allow,
            policies,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(extra: &[PolicyText]) -> AccessModel {
        let users = [
            UserFacts {
                name: "ada".into(),
                groups: vec![],
                teams: vec!["shop team".into()],
            },
            UserFacts {
                name: "bob".into(),
                groups: vec!["analysts".into()],
                teams: vec![],
            },
            UserFacts {
                name: "root".into(),
                groups: vec!["admins".into()],
                teams: vec![],
            },
            UserFacts {
                name: "eve".into(),
                groups: vec![],
                teams: vec![],
            },
        ];
        let products = [
            ProductFacts {
                domain: "shop".into(),
                product: "orders".into(),
                owner_team: Some("shop team".into()),
                datasets: vec!["orders".into()],
                readers: vec![Grantee::Group("analysts".into())],
                filtered_readers: vec![Grantee::User("fay".into())],
            },
            ProductFacts {
                domain: "hr".into(),
                product: "people".into(),
                owner_team: Some("hr team".into()),
                datasets: vec!["staff".into()],
                readers: vec![],
                filtered_readers: vec![],
            },
            ProductFacts {
                domain: "lab".into(),
                product: "scratch".into(),
                owner_team: None,
                datasets: vec!["notes".into()],
                readers: vec![],
                filtered_readers: vec![],
            },
        ];
        AccessModel::new(&users, &products, extra).unwrap()
    }

    fn user(name: &str) -> Principal {
        Principal::user(name, vec![], vec![])
    }

    fn dataset(d: &str, p: &str, ds: &str) -> Resource {
        Resource::Dataset {
            domain: d.into(),
            product: p.into(),
            dataset: ds.into(),
        }
    }

    fn allowed(m: &AccessModel, who: &Principal, action: Action, what: &Resource) -> bool {
        m.decide(who, action, what).unwrap().allowed
    }

    #[test]
    fn the_defaults_decide_as_documented() {
        let m = model(&[]);
        let orders = dataset("shop", "orders", "orders");
        let staff = dataset("hr", "people", "staff");
        // Everyone discovers; the owner team does everything to its own product.
        for who in ["ada", "bob", "eve"] {
            assert!(allowed(&m, &user(who), Action::Discover, &staff), "{who}");
        }
        for action in Action::ALL {
            assert!(allowed(&m, &user("ada"), action, &orders), "{action:?}");
            assert!(!allowed(&m, &user("ada"), action, &staff) || action == Action::Discover);
        }
        // A grant to a group lets its members read, not read PII, ingest or publish.
        assert!(allowed(&m, &user("bob"), Action::Read, &orders));
        for action in [
            Action::ReadPii,
            Action::Ingest,
            Action::Publish,
            Action::Manage,
            Action::Approve,
        ] {
            assert!(!allowed(&m, &user("bob"), action, &orders), "{action:?}");
        }
        assert!(!allowed(&m, &user("eve"), Action::Read, &orders));
        // A row-filtered grant lets its holder read through its own policy.
        let d = m.decide(&user("fay"), Action::Read, &orders).unwrap();
        assert_eq!(d.policies, vec![FILTERED_READ_POLICY.to_string()]);
        assert!(!allowed(&m, &user("fay"), Action::ReadPii, &orders));
        // Admins and system principals do everything; a team acts as its own owner.
        for action in Action::ALL {
            assert!(allowed(&m, &user("root"), action, &staff));
            assert!(allowed(&m, &Principal::system("scheduler"), action, &staff));
            assert!(allowed(&m, &Principal::team("hr team"), action, &staff));
        }
        // An unowned product's rules run as `system:unowned`, which reads unowned products
        // and nothing of a team's.
        let unowned = Principal::system("unowned");
        let notes = dataset("lab", "scratch", "notes");
        for action in [Action::Discover, Action::Read, Action::ReadPii] {
            assert!(allowed(&m, &unowned, action, &notes), "{action:?}");
        }
        assert!(!allowed(&m, &unowned, Action::Ingest, &notes));
        assert!(!allowed(&m, &unowned, Action::Read, &staff));
        assert!(!allowed(&m, &unowned, Action::Manage, &Resource::Platform));
        // A product is decided like its datasets.
        let product = Resource::Product {
            domain: "shop".into(),
            product: "orders".into(),
        };
        assert!(allowed(&m, &user("bob"), Action::Read, &product));
        assert!(!allowed(&m, &user("eve"), Action::Read, &product));
    }

    #[test]
    fn owner_teams_publish_in_their_domain_and_only_admins_run_the_platform() {
        let m = model(&[]);
        let shop: Resource = "shop".parse().unwrap();
        assert!(allowed(&m, &user("ada"), Action::Publish, &shop));
        assert!(!allowed(&m, &user("bob"), Action::Publish, &shop));
        // Nobody but admins publishes into a domain that does not exist yet.
        let new: Resource = "garden".parse().unwrap();
        assert!(!allowed(&m, &user("ada"), Action::Publish, &new));
        assert!(allowed(&m, &user("root"), Action::Publish, &new));
        for who in ["ada", "bob", "eve"] {
            assert!(!allowed(
                &m,
                &user(who),
                Action::Manage,
                &Resource::Platform
            ));
        }
        assert!(allowed(
            &m,
            &user("root"),
            Action::Manage,
            &Resource::Platform
        ));
        assert_eq!(
            "shop.orders.orders".parse::<Resource>().unwrap(),
            dataset("shop", "orders", "orders")
        );
        assert!("shop..orders".parse::<Resource>().is_err());
        assert!("a.b.c.d".parse::<Resource>().is_err());
    }

    #[test]
    fn a_decision_names_the_policies_that_made_it() {
        let m = model(&[]);
        let d = m
            .decide(
                &user("bob"),
                Action::Read,
                &dataset("shop", "orders", "orders"),
            )
            .unwrap();
        assert_eq!(
            d,
            Decision {
                allowed: true,
                policies: vec!["granted-read".into()]
            }
        );
        let d = m
            .decide(
                &user("eve"),
                Action::Read,
                &dataset("shop", "orders", "orders"),
            )
            .unwrap();
        assert_eq!(
            d,
            Decision {
                allowed: false,
                policies: vec![]
            }
        );
    }

    #[test]
    fn admin_policies_add_permits_and_forbids() {
        let extra = [PolicyText {
            id: "no-hr-for-analysts".into(),
            text: r#"forbid(principal in Group::"analysts", action, resource in Domain::"hr");
                     permit(principal == User::"eve", action == Action::"read", resource in Product::"shop.orders");"#
                .into(),
        }];
        let m = model(&extra);
        assert!(allowed(
            &m,
            &user("eve"),
            Action::Read,
            &dataset("shop", "orders", "orders")
        ));
        let d = m
            .decide(
                &user("bob"),
                Action::Discover,
                &dataset("hr", "people", "staff"),
            )
            .unwrap();
        assert_eq!(
            d,
            Decision {
                allowed: false,
                policies: vec!["no-hr-for-analysts:0".into()]
            }
        );
        let bad = AccessModel::new(
            &[],
            &[],
            &[PolicyText {
                id: "bad".into(),
                text: "permit(".into(),
            }],
        );
        assert!(
            matches!(bad, Err(GovernanceError::Invalid(m)) if m.contains("policy \"bad\" is not valid Cedar"))
        );
    }
}
