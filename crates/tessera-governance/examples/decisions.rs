//! The cost of one access decision on a large mesh: 1,000 products (10 domains, 2 datasets
//! each), 10,000 grants, 2,000 users in groups and teams, the default policies plus an
//! admin's forbid. Run with `cargo run --release -p tessera-governance --example decisions`;
//! results go to bench/RESULTS.md (a timing is never asserted in a test).

use std::time::Instant;

use tessera_core::Principal;
use tessera_governance::{
    AccessModel, Action, Grantee, PolicyText, ProductFacts, Resource, UserFacts,
};

/// A small deterministic generator (no dependency): the same mesh on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % below
    }
}

fn main() {
    let mut rng = Lcg(7);
    let (domains, products_per_domain, users_n, grants_n) = (10, 100, 2_000, 10_000);
    let users: Vec<UserFacts> = (0..users_n)
        .map(|u| UserFacts {
            name: format!("user{u}"),
            groups: vec![format!("group{}", u % 50), format!("group{}", 50 + u % 7)],
            teams: vec![format!("team{}", u % 200)],
        })
        .collect();
    let mut products: Vec<ProductFacts> = (0..domains * products_per_domain)
        .map(|p| ProductFacts {
            domain: format!("domain{}", p / products_per_domain),
            product: format!("product{p}"),
            owner_team: Some(format!("team{}", p % 200)),
            datasets: vec!["facts".into(), "events".into()],
            readers: Vec::new(),
            filtered_readers: Vec::new(),
        })
        .collect();
    for _ in 0..grants_n {
        let p = rng.next(products.len());
        let grantee = match rng.next(3) {
            0 => Grantee::User(format!("user{}", rng.next(users_n))),
            1 => Grantee::Group(format!("group{}", rng.next(57))),
            _ => Grantee::Team(format!("team{}", rng.next(200))),
        };
        if rng.next(10) == 0 {
            products[p].filtered_readers.push(grantee);
        } else {
            products[p].readers.push(grantee);
        }
    }
    let extra = [PolicyText {
        id: "no-contractors-in-domain3".into(),
        text: r#"forbid(principal in Group::"group51", action, resource in Domain::"domain3");"#
            .into(),
    }];
    let built = Instant::now();
    let model = AccessModel::new(&users, &products, &extra).expect("the model builds");
    let build_time = built.elapsed();

    let decisions = 100_000;
    let asks: Vec<(Principal, Action, Resource)> = (0..decisions)
        .map(|_| {
            let u = &users[rng.next(users_n)];
            let p = &products[rng.next(products.len())];
            let action = Action::ALL[rng.next(Action::ALL.len())];
            let resource = Resource::Dataset {
                domain: p.domain.clone(),
                product: p.product.clone(),
                dataset: "facts".into(),
            };
            (
                Principal::user(u.name.clone(), u.groups.clone(), u.teams.clone()),
                action,
                resource,
            )
        })
        .collect();
    let mut times = Vec::with_capacity(decisions);
    let mut allowed = 0;
    for (principal, action, resource) in &asks {
        let start = Instant::now();
        let d = model.decide(principal, *action, resource).expect("decides");
        times.push(start.elapsed().as_nanos() as f64 / 1000.0);
        allowed += d.allowed as usize;
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize];
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "{} products, {} datasets, {} grants, {} users; model built in {:.1} ms",
        products.len(),
        products.len() * 2,
        grants_n,
        users_n,
        build_time.as_secs_f64() * 1000.0
    );
    println!(
        "{decisions} decisions ({allowed} allowed): mean {mean:.1} µs, median {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        at(0.5),
        at(0.99),
        at(1.0)
    );
}
