//! Who is asking: every service operation takes a [`RequestContext`] — the principal, the
//! request's id and the front end it came through — so that nothing runs anonymously. Work
//! Tessera starts by itself runs as somebody too: scheduled checks as the product's owner team,
//! platform work as a named system principal.

use std::fmt;

/// What kind of principal acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrincipalKind {
    /// A person or a client with a token.
    User,
    /// A team acting as itself: a product's owner team runs its product's checks and rules.
    Team,
    /// Tessera's own work (startup, migrations, the demo's loading), by a named component.
    System,
}

/// Somebody who acts: a user with the groups and teams it belongs to, a team, or a named part
/// of the system.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub name: String,
    pub groups: Vec<String>,
    /// The teams it belongs to (an ODPS product's owner team is a team).
    pub teams: Vec<String>,
}

impl Principal {
    pub fn user(name: impl Into<String>, groups: Vec<String>, teams: Vec<String>) -> Self {
        Self {
            kind: PrincipalKind::User,
            name: name.into(),
            groups,
            teams,
        }
    }

    /// A team acting as itself; it belongs to its own team.
    pub fn team(name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            kind: PrincipalKind::Team,
            teams: vec![name.clone()],
            name,
            groups: Vec::new(),
        }
    }

    /// A part of Tessera doing its own work, e.g. `system:scheduler`.
    pub fn system(component: &str) -> Self {
        Self {
            kind: PrincipalKind::System,
            name: format!("system:{component}"),
            groups: Vec::new(),
            teams: Vec::new(),
        }
    }

    /// Whoever calls before the HTTP API authenticates its callers (tokens come with access
    /// control): named, so that what it does is still somebody's.
    pub fn unauthenticated() -> Self {
        Self::user("unauthenticated", Vec::new(), Vec::new())
    }

    pub fn is_system(&self) -> bool {
        self.kind == PrincipalKind::System
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            PrincipalKind::User => write!(f, "user {}", self.name),
            PrincipalKind::Team => write!(f, "team {}", self.name),
            PrincipalKind::System => f.write_str(&self.name),
        }
    }
}

/// The front end a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrontEnd {
    /// The HTTP API (and the CLI, which is its client).
    Http,
    /// The PostgreSQL wire protocol (psql, drivers, BI tools).
    Postgres,
    /// Arrow Flight SQL (ADBC, JDBC and other Flight SQL clients).
    FlightSql,
    /// The server's scheduler (scheduled checks).
    Scheduler,
    /// `tessera demo` loading the reference mesh.
    Demo,
    /// Offline commands that run in the CLI's own process (`tessera test`).
    Offline,
    /// Tessera's own background work.
    System,
}

impl FrontEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            FrontEnd::Http => "http",
            FrontEnd::Postgres => "postgres",
            FrontEnd::FlightSql => "flight_sql",
            FrontEnd::Scheduler => "scheduler",
            FrontEnd::Demo => "demo",
            FrontEnd::Offline => "offline",
            FrontEnd::System => "system",
        }
    }
}

/// Who asks, which request it is, and through which front end: an argument of every service
/// operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub principal: Principal,
    /// Unique per request; front ends take it from the client (`X-Request-Id`) or make one.
    pub request_id: String,
    pub front_end: FrontEnd,
    /// The access generation the principal was authenticated at, when a front end
    /// authenticated it: the request's decisions are then all made as of that one access
    /// state, without asking the metadata store again (`None`: as of the newest).
    pub access_generation: Option<i64>,
}

impl RequestContext {
    pub fn new(principal: Principal, request_id: impl Into<String>, front_end: FrontEnd) -> Self {
        Self {
            principal,
            request_id: request_id.into(),
            front_end,
            access_generation: None,
        }
    }

    /// The same request, decided as of access generation `generation`.
    pub fn as_of(self, generation: i64) -> Self {
        Self {
            access_generation: Some(generation),
            ..self
        }
    }

    /// Work of a part of Tessera, as the system principal `system:{component}`.
    pub fn system(component: &str, request_id: impl Into<String>, front_end: FrontEnd) -> Self {
        Self::new(Principal::system(component), request_id, front_end)
    }

    /// The same request, done with the rights of another principal — a product's `sql` rules
    /// run as its owner team, whoever asked for the check.
    pub fn acting_as(&self, principal: Principal) -> Self {
        Self {
            principal,
            request_id: self.request_id.clone(),
            front_end: self.front_end,
            access_generation: self.access_generation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_keeps_its_request_when_it_acts_as_a_team() {
        let cx = RequestContext::new(Principal::user("ana", vec![], vec![]), "r1", FrontEnd::Http);
        let as_owner = cx.acting_as(Principal::team("shop team"));
        assert_eq!(as_owner.request_id, "r1");
        assert_eq!(as_owner.principal.teams, vec!["shop team".to_string()]);
        assert_eq!(as_owner.principal.to_string(), "team shop team");
        assert!(
            RequestContext::system("scheduler", "r2", FrontEnd::Scheduler)
                .principal
                .is_system()
        );
    }
}
